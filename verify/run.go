package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options of a verification run.
type Options struct {
	// Concurrency is how many checks run at once; 0 means 2.
	Concurrency int
	// Timeout is the hard limit of a check whose Timeout is 0; 0 means 10
	// minutes.
	Timeout time.Duration
	// Grace is how long, after a check's deadline, the runner waits for it
	// to return before abandoning it and reporting the timeout; 0 means 10
	// seconds.
	Grace time.Duration
	// Select chooses the checks to run; nil runs all. A check not selected
	// is reported as not run; if it is required the verification fails.
	Select func(Check) bool
	// Progress receives a line as each check starts and ends (in the
	// order that happens); nil is silent.
	Progress io.Writer
	// Log receives the summary (Verify only); nil means os.Stderr.
	Log io.Writer
	// ReportPath is where Verify writes the JSON report; "" means
	// <dist>/verify.json.
	ReportPath string
	// Reuse are verdicts an earlier run recorded for exactly the same
	// inputs (the caller decides that), by check name: a check with a
	// passing verdict here is not run again, its result is reported as
	// reused (Result.ReusedFrom names the run). Verdicts that are not a
	// pass are ignored: those checks run.
	Reuse map[string]Result

	now func() time.Time // for tests; nil is time.Now
}

const (
	defaultConcurrency = 2
	defaultTimeout     = 10 * time.Minute
	defaultGrace       = 10 * time.Second
)

// Verify runs the suite against env, writes the JSON report, prints the
// summary and returns nil only when every selected check passed and no
// required check was left unrun.
func Verify(ctx context.Context, env *Env, checks []Check, o Options) error {
	_, err := VerifyReport(ctx, env, checks, o)
	return err
}

// VerifyReport is Verify returning the report too (nil when the suite did
// not run).
func VerifyReport(ctx context.Context, env *Env, checks []Check, o Options) (*Report, error) {
	path := ReportPath(env, o.ReportPath)
	// The report says "running" while the checks run: a stale pass is
	// never left in place by a verification that does not finish.
	if err := WriteRunning(path, env, checks); err != nil {
		return nil, fmt.Errorf("writing the verification report %s: %w", path, err)
	}
	rep, err := Run(ctx, env, checks, o)
	if err != nil {
		if werr := WriteAborted(path, env, err); werr != nil {
			return nil, errors.Join(err, fmt.Errorf("writing the verification report %s: %w", path, werr))
		}
		return nil, err
	}
	if env != nil {
		rep.Inputs, rep.Paths = env.Inputs, env.Paths
	}
	log := o.Log
	if log == nil {
		log = os.Stderr
	}
	werr := rep.WriteFile(path)
	if err := rep.WriteSummary(log); err != nil {
		return rep, fmt.Errorf("writing the verification summary: %w", err)
	}
	if werr != nil {
		return rep, fmt.Errorf("writing the verification report %s: %w", path, werr)
	}
	fmt.Fprintf(log, "report: %s\n", path)
	return rep, rep.Err()
}

// ReportPath is where the JSON report goes: configured, else
// <dist>/verify.json.
func ReportPath(env *Env, configured string) string {
	if configured != "" || env == nil {
		return configured
	}
	return filepath.Join(env.Dist, "verify.json")
}

// Run validates the suite (all problems at once), then runs it and returns
// the report. The error is only for an invalid suite; the verdict is
// Report.Err.
func Run(ctx context.Context, env *Env, checks []Check, o Options) (*Report, error) {
	if err := Validate(checks); err != nil {
		return nil, err
	}
	if env == nil {
		env = &Env{}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.Grace <= 0 {
		o.Grace = defaultGrace
	}
	if o.now == nil {
		o.now = time.Now
	}
	r := &runner{env: env, o: o, sem: make(chan struct{}, o.Concurrency)}
	start := o.now()
	results := make([]Result, len(checks))
	done := make(map[string]chan struct{}, len(checks))
	for _, c := range checks {
		done[c.Name] = make(chan struct{})
	}
	byName := map[string]int{}
	for i, c := range checks {
		byName[c.Name] = i
	}
	var wg sync.WaitGroup
	for i := range checks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := checks[i]
			defer close(done[c.Name])
			// Wait for the checks this one comes after; results[j] is
			// written before done[j] is closed.
			var blocked []string
			for _, dep := range c.After {
				<-done[dep]
				if d := results[byName[dep]]; d.Status != Pass {
					blocked = append(blocked, fmt.Sprintf("%s (%s)", dep, d.Status))
				}
			}
			res := newResult(c)
			prev, reused := o.Reuse[c.Name]
			switch {
			case reused && prev.Status == Pass && prev.ReusedFrom != "" && (o.Select == nil || o.Select(c)):
				res.Status, res.ReusedFrom = Pass, prev.ReusedFrom
				res.Checked, res.Summary, res.Details, res.Verdicts, res.Duration = prev.Checked, prev.Summary, prev.Details, prev.Verdicts, prev.Duration
				r.progress("reused  %s (passed in run %s)", c.Name, prev.ReusedFrom)
			case o.Select != nil && !o.Select(c):
				res.Status, res.Reason = NotRun, "not selected in this run"
				res.Remedy = "run the whole suite (go run mage.go verify)"
			case len(blocked) > 0:
				res.Status = NotRun
				res.Reason = "depends on checks that did not pass: " + strings.Join(blocked, ", ")
				res.Remedy = "fix those first"
			default:
				r.run(ctx, c, &res)
			}
			results[i] = res
		}(i)
	}
	wg.Wait()
	rep := &Report{
		Format:   reportFormat,
		Duration: o.now().Sub(start),
		Results:  sortResults(results, checks),
	}
	if err := ctx.Err(); err != nil {
		rep.Cancelled = err.Error()
	}
	rep.tally()
	return rep, nil
}

// Validate reports every problem of a suite at once: names missing or
// repeated, unknown families, no Run function, unknown or cyclic After.
func Validate(checks []Check) error {
	var problems []string
	seen := map[string]int{}
	for i, c := range checks {
		where := fmt.Sprintf("checks[%d]", i)
		if c.Name != "" {
			where += " (" + c.Name + ")"
		}
		switch {
		case c.Name == "":
			problems = append(problems, where+": no name")
		case strings.ContainsAny(c.Name, " \t\n"):
			problems = append(problems, where+": the name contains white space")
		default:
			if j, dup := seen[c.Name]; dup {
				problems = append(problems, fmt.Sprintf("%s: the name is also used by checks[%d]", where, j))
			} else {
				seen[c.Name] = i
			}
		}
		if !c.Family.Valid() {
			problems = append(problems, fmt.Sprintf("%s: family %d is not one of the six families", where, int(c.Family)))
		}
		if c.Run == nil {
			problems = append(problems, where+": no Run function")
		}
		if c.Timeout < 0 {
			problems = append(problems, where+": negative timeout")
		}
		for k, p := range c.Needs {
			if p.Check == nil || p.What == "" {
				problems = append(problems, fmt.Sprintf("%s: needs[%d]: a prerequisite needs What and Check", where, k))
			}
		}
	}
	for i, c := range checks {
		for _, dep := range c.After {
			if _, ok := seen[dep]; !ok {
				problems = append(problems, fmt.Sprintf("checks[%d] (%s): after %q: no such check", i, c.Name, dep))
			} else if dep == c.Name {
				problems = append(problems, fmt.Sprintf("checks[%d] (%s): comes after itself", i, c.Name))
			}
		}
	}
	if len(problems) == 0 {
		if cyc := findCycle(checks); cyc != "" {
			problems = append(problems, "the After relations form a cycle: "+cyc)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid verification suite (%d problems; fix the check list):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

func findCycle(checks []Check) string {
	after := map[string][]string{}
	for _, c := range checks {
		after[c.Name] = c.After
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) string
	visit = func(n string) string {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range after[n] {
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						return strings.Join(append(append([]string{}, stack[i:]...), d), " -> ")
					}
				}
			case white:
				if c := visit(d); c != "" {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return ""
	}
	for _, c := range checks {
		if color[c.Name] == white {
			if cyc := visit(c.Name); cyc != "" {
				return cyc
			}
		}
	}
	return ""
}

type runner struct {
	env *Env
	o   Options
	sem chan struct{}
	mu  sync.Mutex // serializes progress lines
}

func (r *runner) progress(format string, a ...any) {
	if r.o.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.o.Progress, format+"\n", a...)
}

type outcome struct {
	ev  Evidence
	err error
}

// run evaluates c's prerequisites and runs it under its deadline, filling
// res. It holds a concurrency slot for the whole time.
func (r *runner) run(ctx context.Context, c Check, res *Result) {
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		res.Status, res.Reason = NotRun, "verification cancelled: "+ctx.Err().Error()
		return
	}
	if err := ctx.Err(); err != nil {
		res.Status, res.Reason = NotRun, "verification cancelled: "+err.Error()
		return
	}
	start := r.o.now()
	if reason, remedy := evalNeeds(ctx, c.Needs); reason != "" {
		res.Status, res.Reason, res.Remedy = NotRun, reason, remedy
		res.Duration = r.o.now().Sub(start)
		r.progress("not run %s: %s", c.Name, reason)
		return
	}
	env := *r.env
	scratch, err := os.MkdirTemp("", "halvm-verify-"+safeName(c.Name)+"-")
	if err != nil {
		res.Status, res.Reason = Fail, "creating the check's scratch directory: "+err.Error()
		return
	}
	defer os.RemoveAll(scratch)
	env.Scratch = scratch

	timeout := c.Timeout
	if timeout == 0 {
		timeout = r.o.Timeout
	}
	res.TimeoutSeconds = timeout.Seconds()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.progress("run     %s", c.Name)
	ch := make(chan outcome, 1)
	go func() {
		var out outcome
		defer func() {
			if p := recover(); p != nil {
				out = outcome{err: fmt.Errorf("the check panicked: %v\n%s", p, firstLines(string(debug.Stack()), 12))}
			}
			ch <- out
		}()
		out.ev, out.err = c.Run(cctx, &env)
	}()
	var out outcome
	abandoned := false
	select {
	case out = <-ch:
	case <-cctx.Done():
		select {
		case out = <-ch:
		case <-time.After(r.o.Grace):
			abandoned = true
		}
	}
	res.Duration = r.o.now().Sub(start)
	timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	switch {
	case timedOut:
		res.Status = Fail
		res.TimedOut = true
		res.Reason = fmt.Sprintf("timed out after %s", timeout)
		if abandoned {
			res.Reason += fmt.Sprintf(" (the check did not stop within %s of its deadline and was abandoned)", r.o.Grace)
		} else if out.err != nil {
			res.Reason += ": " + firstLine(out.err.Error())
		}
		res.Remedy = "find what hangs or raise the check's timeout"
		res.addEvidence(out.ev)
		res.addErrDetails(out.err)
	case ctx.Err() != nil:
		res.Status, res.Reason = NotRun, "verification cancelled: "+ctx.Err().Error()
		res.addEvidence(out.ev)
	case out.err != nil:
		res.Status, res.Reason = Fail, firstLine(out.err.Error())
		res.addEvidence(out.ev)
		res.addErrDetails(out.err)
	default:
		res.addEvidence(out.ev)
		if p := out.ev.problem(); p != "" {
			res.Status, res.Reason = Fail, p
		} else {
			res.Status = Pass
		}
	}
	r.progress("%-7s %s (%s)", res.Status.label(), c.Name, res.Duration.Round(time.Millisecond))
}

func (res *Result) addEvidence(ev Evidence) {
	res.Checked = ev.Checked
	res.Summary = strings.TrimSpace(ev.Summary)
	res.Details = append(res.Details, ev.Details...)
	res.Verdicts = ev.Verdicts
}

// addErrDetails keeps the lines of a multi-line error after its first.
func (res *Result) addErrDetails(err error) {
	if err == nil {
		return
	}
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) != "" {
			res.Details = append(res.Details, strings.TrimRight(l, " \t"))
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimRight(s[:i], " :")
	}
	return s
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// sortResults orders results by family, then by their place in the list:
// the same suite always gives the same report order.
func sortResults(results []Result, checks []Check) []Result {
	idx := make([]int, len(results))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return checks[idx[a]].Family < checks[idx[b]].Family })
	out := make([]Result, len(results))
	for i, j := range idx {
		out[i] = results[j]
	}
	return out
}
