package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/halvm/halvm-release/verify/vsa"
	"io"
	"math"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// Status of a check. Only Pass is a pass.
type Status string

const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	NotRun Status = "not-run"
	// Running is the status of a report written as a verification
	// starts: a report left "running" is from a verification that never
	// finished, and is no pass.
	Running Status = "running"
)

func (s Status) label() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case NotRun:
		return "NOT RUN"
	}
	return strings.ToUpper(string(s))
}

// Result is the outcome of one check.
type Result struct {
	Name     string
	Family   Family
	Doc      string
	Required bool
	Status   Status
	// Reason is one line: why it failed or did not run.
	Reason string
	// Remedy says what to do when the check did not run or timed out.
	Remedy string
	// TimedOut is set when the check exceeded its hard timeout.
	TimedOut bool
	// Checked and Summary are the check's evidence; Details its listing
	// (what was checked or what differed) and the rest of a multi-line
	// error.
	Checked        int
	Summary        string
	Details        []string
	Verdicts       []vsa.Artifact
	Duration       time.Duration
	TimeoutSeconds float64
	// ReusedFrom, on a pass, names the earlier run whose verdict was
	// reused for exactly the same inputs (Options.Reuse): the check did
	// not run again.
	ReusedFrom string
}

func newResult(c Check) Result {
	return Result{Name: c.Name, Family: c.Family, Doc: c.Doc, Required: c.Required, Status: NotRun}
}

// Report is the outcome of a verification run, in deterministic order
// (by family, then in suite order).
type Report struct {
	Format    int
	Results   []Result
	Duration  time.Duration
	Cancelled string // why the run was cancelled, if it was
	// Aborted says why the verification stopped before or while running
	// its checks (a ledger pointing outside its tree, a saved image whose
	// blob does not match its digest, ...): the report then fails.
	Aborted string
	// Running marks the report written at the start.
	Running bool
	// Inputs and Paths are what the verification read, absolutely
	// (Env.Inputs, Env.Paths).
	Inputs []Input
	Paths  map[string]string

	passed, failed, notRun, requiredNotRun int
}

const reportFormat = 1

func (r *Report) tally() {
	r.passed, r.failed, r.notRun, r.requiredNotRun = 0, 0, 0, 0
	for _, res := range r.Results {
		switch res.Status {
		case Pass:
			r.passed++
		case Fail:
			r.failed++
		default:
			r.notRun++
			if res.Required {
				r.requiredNotRun++
			}
		}
	}
}

// Passed reports whether the verification passed: nothing failed, no
// required check was left unrun, the run was not cancelled and at least
// one check passed.
func (r *Report) Passed() bool {
	r.tally()
	return r.failed == 0 && r.requiredNotRun == 0 && r.Cancelled == "" && r.Aborted == "" && !r.Running && r.passed > 0
}

// FailedError is the verdict of a failed verification.
type FailedError struct {
	Failed         []string // names of failed checks
	RequiredNotRun []string // names of required checks that did not run
	Cancelled      string
	Aborted        string
	NothingPassed  bool
}

func (e *FailedError) Error() string {
	var parts []string
	if len(e.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d failed (%s)", len(e.Failed), strings.Join(e.Failed, ", ")))
	}
	if len(e.RequiredNotRun) > 0 {
		parts = append(parts, fmt.Sprintf("%d required not run (%s)", len(e.RequiredNotRun), strings.Join(e.RequiredNotRun, ", ")))
	}
	if e.Cancelled != "" {
		parts = append(parts, "cancelled: "+e.Cancelled)
	}
	if e.Aborted != "" {
		parts = append(parts, "aborted: "+e.Aborted)
	}
	if e.NothingPassed && len(parts) == 0 {
		parts = append(parts, "no check passed")
	}
	return "verification failed: " + strings.Join(parts, "; ") + " (see the summary above and verify.json)"
}

// Err returns nil when the verification passed, else a *FailedError.
func (r *Report) Err() error {
	if r.Passed() {
		return nil
	}
	e := &FailedError{Cancelled: r.Cancelled, Aborted: r.Aborted, NothingPassed: r.passed == 0}
	for _, res := range r.Results {
		switch {
		case res.Status == Fail:
			e.Failed = append(e.Failed, res.Name)
		case res.Status != Pass && res.Required:
			e.RequiredNotRun = append(e.RequiredNotRun, res.Name)
		}
	}
	return e
}

// maxSummaryDetails bounds the detail lines the human summary prints per
// failed check (the JSON report keeps them all).
const maxSummaryDetails = 20

// WriteSummary writes one line per check (PASS / FAIL / NOT RUN, family,
// name, duration, one-line reason or evidence), the details of failures
// (bounded), and a verdict line.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	nameW := 0
	for _, res := range r.Results {
		if n := len(res.Family.String()) + 1 + len(res.Name); n > nameW {
			nameW = n
		}
	}
	for _, res := range r.Results {
		line := res.Summary
		if res.Status != Pass {
			line = res.Reason
			if res.Remedy != "" {
				line += " (remedy: " + res.Remedy + ")"
			}
		} else if res.Checked > 0 {
			line = fmt.Sprintf("%s [%d checked]", res.Summary, res.Checked)
		}

		tag := ""
		if res.Status == NotRun {
			if res.Required {
				tag = " [required]"
			} else {
				tag = " [optional]"
			}
		}
		if res.ReusedFrom != "" {
			tag = " [reused: passed in run " + res.ReusedFrom + " for the same inputs]"
		}
		fmt.Fprintf(&b, "%-7s %-*s %8s  %s%s\n", res.Status.label(), nameW, res.Family.String()+"/"+res.Name,
			fmtDuration(res.Duration), oneLine(line), tag)
		if res.Status == Fail {
			for i, d := range res.Details {
				if i == maxSummaryDetails {
					fmt.Fprintf(&b, "          ... %d more lines in verify.json\n", len(res.Details)-i)
					break
				}
				fmt.Fprintf(&b, "          %s\n", d)
			}
		}
	}
	r.tally()
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "verify: %s: %d checks, %d passed, %d failed, %d not run (%d required) in %s",
		verdict, len(r.Results), r.passed, r.failed, r.notRun, r.requiredNotRun, fmtDuration(r.Duration))
	if r.Cancelled != "" {
		fmt.Fprintf(&b, "; cancelled: %s", r.Cancelled)
	}
	if r.Aborted != "" {
		fmt.Fprintf(&b, "; aborted: %s", oneLine(r.Aborted))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// JSON shapes: field names are stable; Encode sorts every object's keys.
type jsonReport struct {
	Format          int               `json:"format"`
	Status          Status            `json:"status"`
	Cancelled       string            `json:"cancelled,omitempty"`
	Aborted         string            `json:"aborted,omitempty"`
	Inputs          []Input           `json:"inputs"`
	Paths           map[string]string `json:"paths"`
	DurationSeconds float64           `json:"duration_seconds"`
	Counts          jsonCounts        `json:"counts"`
	Checks          []jsonResult      `json:"checks"`
}

type jsonCounts struct {
	Total          int `json:"total"`
	Passed         int `json:"passed"`
	Failed         int `json:"failed"`
	NotRun         int `json:"not_run"`
	RequiredNotRun int `json:"required_not_run"`
}

type jsonResult struct {
	Name            string         `json:"name"`
	Family          string         `json:"family"`
	FamilyNumber    int            `json:"family_number"`
	Doc             string         `json:"doc,omitempty"`
	Required        bool           `json:"required"`
	Status          Status         `json:"status"`
	Reason          string         `json:"reason,omitempty"`
	Remedy          string         `json:"remedy,omitempty"`
	TimedOut        bool           `json:"timed_out,omitempty"`
	Checked         int            `json:"checked"`
	Summary         string         `json:"summary,omitempty"`
	Details         []string       `json:"details,omitempty"`
	Verdicts        []vsa.Artifact `json:"verdicts,omitempty"`
	DurationSeconds float64        `json:"duration_seconds"`
	TimeoutSeconds  float64        `json:"timeout_seconds,omitempty"`
	ReusedFrom      string         `json:"reused_from,omitempty"`
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// Encode writes the report as indented JSON with every object's keys
// sorted and durations in seconds (millisecond precision).
func (r *Report) Encode(w io.Writer) error {
	r.tally()
	status := Pass
	switch {
	case r.Running:
		status = Running
	case !r.Passed():
		status = Fail
	}
	inputs := r.Inputs
	if inputs == nil {
		inputs = []Input{}
	}
	paths := r.Paths
	if paths == nil {
		paths = map[string]string{}
	}
	jr := jsonReport{
		Format: r.Format, Status: status, Cancelled: r.Cancelled, Aborted: r.Aborted, Inputs: inputs, Paths: paths,
		DurationSeconds: seconds(r.Duration),
		Counts:          jsonCounts{Total: len(r.Results), Passed: r.passed, Failed: r.failed, NotRun: r.notRun, RequiredNotRun: r.requiredNotRun},
		Checks:          []jsonResult{},
	}
	for _, res := range r.Results {
		jr.Checks = append(jr.Checks, jsonResult{
			Name: res.Name, Family: res.Family.String(), FamilyNumber: int(res.Family), Doc: res.Doc,
			Required: res.Required, Status: res.Status, Reason: res.Reason, Remedy: res.Remedy, TimedOut: res.TimedOut,
			Checked: res.Checked, Summary: res.Summary, Details: res.Details, Verdicts: res.Verdicts,
			DurationSeconds: seconds(res.Duration), TimeoutSeconds: res.TimeoutSeconds, ReusedFrom: res.ReusedFrom,
		})
	}
	// Marshal, then re-marshal through generic maps: encoding/json sorts
	// map keys, so every object's keys come out sorted.
	raw, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(generic)
}

// WriteFile writes the JSON report atomically.
func (r *Report) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := r.Encode(&buf); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// WriteAborted writes the report of a verification that stopped before
// its checks ran (or while they ran): status fail, naming the cause, with
// what env had read so far (env may be nil). It replaces any earlier
// report at path, so a stale pass never survives an abort.
func WriteAborted(path string, env *Env, cause error) error {
	r := &Report{Format: reportFormat, Aborted: cause.Error()}
	if env != nil {
		r.Inputs, r.Paths = env.Inputs, env.Paths
	}
	return r.WriteFile(path)
}

// WriteRunning writes the report a verification starts with: status
// running, the checks it is about to run (not run yet) and what env read.
func WriteRunning(path string, env *Env, checks []Check) error {
	r := &Report{Format: reportFormat, Running: true}
	for _, c := range checks {
		res := newResult(c)
		res.Reason = "the verification is running"
		r.Results = append(r.Results, res)
	}
	r.Results = sortResults(r.Results, checks)
	if env != nil {
		r.Inputs, r.Paths = env.Inputs, env.Paths
	}
	return r.WriteFile(path)
}
