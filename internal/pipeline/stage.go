package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Stage is one step of the release, run in list order against the plan.
type Stage struct {
	Name string
	// Doc says in one line what the stage does.
	Doc string
	// Required stages run in every run, a trial's included: skipping one
	// is refused before any stage runs, saying Why. Any other stage may be
	// skipped in a trial, which makes the run a snapshot: its publications
	// are staged, verified as far as they can be, and never switched live.
	// An official release skips nothing.
	Required bool
	// Why says why a required stage cannot be skipped.
	Why string
	// Needs are the earlier stages whose results this stage reads. A run
	// that skips one of them and runs this stage is refused before any
	// stage runs, naming both (a required stage's needs are thereby
	// required too); the stage itself checks at its start that each
	// result is there (see MissingInputError).
	Needs []string
	Run   func(ctx context.Context, p Plan, l *Ledger) error
	// Reuse, when set, lets a re-run skip the stage when nothing it reads
	// changed and its outputs are still there (see Reuse).
	Reuse *Reuse
}

// StageError is a failed stage: its name, the cause and, where the user can
// act, the remedy.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return fmt.Sprintf("stage %s failed: %v", e.Stage, e.Err) }
func (e *StageError) Unwrap() error { return e.Err }

// Options of a pipeline run.
type Options struct {
	Log    io.Writer        // one human line per stage; nil is silent
	Events *EventLog        // machine-readable events; nil writes none
	Now    func() time.Time // clock for durations (tests); nil is time.Now
	// Previous is the ledger of the run before (nil: none): stages whose
	// inputs are unchanged reuse its outputs.
	Previous *Ledger
	// RunID names this run in the memos it records; "" is NewRunID.
	RunID string
}

// Run runs stages in order. A stage named in the plan's skip list is
// recorded as skipped with its reason; after a failure the remaining stages
// are recorded as not run. It returns the first failure as a *StageError.
func Run(ctx context.Context, p Plan, stages []Stage, l *Ledger, o Options) error {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	names := map[string]bool{}
	for _, s := range stages {
		if names[s.Name] {
			return fmt.Errorf("pipeline: stage %q listed twice", s.Name)
		}
		for _, n := range s.Needs {
			if !names[n] {
				return fmt.Errorf("pipeline: stage %q needs %q, which is not listed before it", s.Name, n)
			}
		}
		names[s.Name] = true
	}
	for _, name := range p.Skipped() {
		if !names[name] {
			return fmt.Errorf("pipeline: cannot skip unknown stage %q", name)
		}
	}
	for _, name := range p.FreshStages() {
		if !names[name] && name != FreshAll {
			return fmt.Errorf("pipeline: HALVM_FRESH names unknown stage %q (stages: %s, or %s)", name, strings.Join(stageNames(stages), ", "), FreshAll)
		}
	}
	if o.RunID == "" {
		o.RunID = NewRunID(now())
	}
	l.SetRun(o.RunID)
	l.SetPrevious(o.Previous)
	var refused []string
	for _, s := range stages {
		if _, skip := p.SkipReason(s.Name); skip && s.Required {
			refused = append(refused, fmt.Sprintf("%s (%s)", s.Name, s.Why))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("pipeline: required stages cannot be skipped, in any run: %s; remove them from HALVM_SKIP", strings.Join(refused, "; "))
	}
	if err := checkNeeds(p, stages); err != nil {
		return err
	}
	var failed *StageError
	for _, s := range stages {
		if failed != nil {
			l.RecordStage(StageRecord{Name: s.Name, Status: NotRun, Reason: "an earlier stage (" + failed.Stage + ") failed"})
			continue
		}
		if why, ok := p.SkipReason(s.Name); ok {
			l.RecordStage(StageRecord{Name: s.Name, Status: Skipped, Reason: why})
			o.Events.Emit(Event{Type: "stage-skipped", Stage: s.Name, Message: why})
			logf("%-12s skipped: %s", s.Name, why)
			continue
		}
		if err := ctx.Err(); err != nil {
			failed = &StageError{Stage: s.Name, Err: err}
			l.RecordStage(StageRecord{Name: s.Name, Status: NotRun, Reason: err.Error()})
			continue
		}
		start := now()
		var inputs map[string]string
		if s.Reuse != nil {
			var why string
			inputs, why = reuse(ctx, p, l, s)
			if why == "" {
				d := now().Sub(start)
				rec, _ := l.stage(s.Name)
				o.Events.Emit(Event{Type: "stage-unchanged", Stage: s.Name, Seconds: d.Seconds(), Message: rec.Unchanged})
				logf("%-12s unchanged since %s (%s)", s.Name, rec.Unchanged, d.Round(time.Millisecond))
				continue
			}
			if o.Previous != nil {
				logf("%-12s runs: %s", s.Name, why)
			}
		}
		l.setCurrent(s.Name)
		o.Events.Emit(Event{Type: "stage-start", Stage: s.Name})
		err := s.Run(ctx, p, l)
		l.setCurrent("")
		d := now().Sub(start)
		if err != nil {
			failed = &StageError{Stage: s.Name, Err: err}
			rec := StageRecord{Name: s.Name, Status: Failed, Reason: err.Error()}
			// What a self-memoizing stage did finish (the verdicts of the
			// checks that passed) a later run may reuse.
			if m, ok := l.takeMemo(s.Name); ok {
				m.Run = l.Run()
				rec.Memo = &m
			}
			l.RecordStage(rec)
			o.Events.Emit(Event{Type: "stage-failed", Stage: s.Name, Seconds: d.Seconds(), Message: err.Error()})
			logf("%-12s FAILED after %s: %v", s.Name, d.Round(time.Millisecond), err)
			continue
		}
		rec := StageRecord{Name: s.Name, Status: Passed}
		if m, ok := l.takeMemo(s.Name); ok {
			m.Run = l.Run()
			rec.Memo = &m
		}
		if s.Reuse != nil && inputs != nil {
			m, err := record(ctx, p, l, s, inputs)
			if err != nil {
				logf("%-12s its outputs are not recorded for reuse: %v", s.Name, err)
				rec.Memo = nil
			} else {
				if rec.Memo != nil {
					m.Items = rec.Memo.Items
				}
				rec.Memo = &m
			}
		}
		l.RecordStage(rec)
		o.Events.Emit(Event{Type: "stage-passed", Stage: s.Name, Seconds: d.Seconds()})
		logf("%-12s ok (%s)", s.Name, d.Round(time.Millisecond))
	}
	if failed != nil {
		return failed
	}
	return nil
}

// reuse decides whether stage s may be skipped and, if so, restores its
// outputs into the ledger and records it as unchanged; it returns the
// stage's inputs and why it must run ("" when it was reused).
func reuse(ctx context.Context, p Plan, l *Ledger, s Stage) (map[string]string, string) {
	inputs, err := s.Reuse.Inputs(ctx, p, l)
	if err != nil {
		return nil, "its inputs cannot be digested: " + err.Error()
	}
	prev, why := reusable(ctx, p, l, s, inputs)
	if why != "" {
		return inputs, why
	}
	for _, a := range prev.Artifacts {
		l.Add(a)
	}
	if s.Reuse.Restore != nil {
		l.setCurrent(s.Name)
		err := s.Reuse.Restore(ctx, p, l, prev)
		l.setCurrent("")
		if err != nil {
			for _, a := range prev.Artifacts {
				l.remove(a)
			}
			return inputs, "its outputs cannot be restored: " + err.Error()
		}
	}
	l.RecordStage(StageRecord{Name: s.Name, Status: Passed, Unchanged: prev.Run, Memo: &prev})
	return inputs, ""
}

// record makes the memo of stage s after it ran and passed.
func record(ctx context.Context, p Plan, l *Ledger, s Stage, inputs map[string]string) (Memo, error) {
	m := Memo{Run: l.Run(), Key: MemoKey(inputs), Inputs: inputs, Artifacts: l.byStage(s.Name)}
	if s.Reuse.State != nil {
		st, err := s.Reuse.State()
		if err != nil {
			return Memo{}, err
		}
		m.State = st
	}
	if s.Reuse.Outputs != nil {
		out, err := s.Reuse.Outputs(ctx, p, m.State)
		if err != nil {
			return Memo{}, err
		}
		m.Outputs = out
	}
	return m, nil
}

// checkNeeds refuses a plan that skips a stage whose results a stage that
// runs reads.
func checkNeeds(p Plan, stages []Stage) error {
	var unmet []string
	for _, s := range stages {
		if _, skip := p.SkipReason(s.Name); skip {
			continue
		}
		for _, n := range s.Needs {
			if why, skip := p.SkipReason(n); skip {
				req := ""
				if s.Required {
					req = ", a required stage,"
				}
				unmet = append(unmet, fmt.Sprintf("%s%s needs %s (skipped: %s)", s.Name, req, n, why))
			}
		}
	}
	if len(unmet) == 0 {
		return nil
	}
	return fmt.Errorf("pipeline: a stage that runs needs the results of a skipped stage: %s; remove the needed stages from HALVM_SKIP, or skip the stages that need them too", strings.Join(unmet, "; "))
}

// MissingInputError is a stage started without a result an earlier stage
// hands it: it fails at its start, before doing any work.
type MissingInputError struct {
	Stage string // the stage that cannot start
	Input string // what it lacks, in words
	From  string // the stage that makes it
	State string // what became of that stage ("was skipped (why)", ...)
}

func (e *MissingInputError) Error() string {
	remedy := "run the stages in order, as the release does"
	if strings.HasPrefix(e.State, "was skipped") {
		remedy = fmt.Sprintf("remove %s from HALVM_SKIP, or skip %s too", e.From, e.Stage)
	}
	return fmt.Sprintf("%s cannot start: it needs %s from the %s stage, which %s: %s", e.Stage, e.Input, e.From, e.State, remedy)
}

// MissingInput is the error of stage started without input, which stage
// from makes: it says what became of from, by the plan and the ledger.
func MissingInput(p Plan, l *Ledger, stage, input, from string) *MissingInputError {
	state := "has not run"
	if why, skip := p.SkipReason(from); skip {
		state = "was skipped (" + why + ")"
	} else if l != nil {
		if rec, ok := l.stage(from); ok {
			why := ""
			if rec.Reason != "" {
				why = " (" + rec.Reason + ")"
			}
			switch rec.Status {
			case Passed:
				state = "passed without leaving it"
			case Failed:
				state = "failed" + why
			case Skipped:
				state = "was skipped" + why
			default:
				state = "did not run" + why
			}
		}
	}
	return &MissingInputError{Stage: stage, Input: input, From: from, State: state}
}

func stageNames(stages []Stage) []string {
	var n []string
	for _, s := range stages {
		n = append(n, s.Name)
	}
	return n
}

// IsStageError reports the failed stage's name, if err is one.
func IsStageError(err error) (string, bool) {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage, true
	}
	return "", false
}
