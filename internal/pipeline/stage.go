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
	Run func(ctx context.Context, p Plan, l *Ledger) error
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
		names[s.Name] = true
	}
	for _, name := range p.Skipped() {
		if !names[name] {
			return fmt.Errorf("pipeline: cannot skip unknown stage %q", name)
		}
	}
	var refused []string
	for _, s := range stages {
		if _, skip := p.SkipReason(s.Name); skip && s.Required {
			refused = append(refused, fmt.Sprintf("%s (%s)", s.Name, s.Why))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("pipeline: required stages cannot be skipped, in any run: %s; remove them from HALVM_SKIP", strings.Join(refused, "; "))
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
		o.Events.Emit(Event{Type: "stage-start", Stage: s.Name})
		err := s.Run(ctx, p, l)
		d := now().Sub(start)
		if err != nil {
			failed = &StageError{Stage: s.Name, Err: err}
			l.RecordStage(StageRecord{Name: s.Name, Status: Failed, Reason: err.Error()})
			o.Events.Emit(Event{Type: "stage-failed", Stage: s.Name, Seconds: d.Seconds(), Message: err.Error()})
			logf("%-12s FAILED after %s: %v", s.Name, d.Round(time.Millisecond), err)
			continue
		}
		l.RecordStage(StageRecord{Name: s.Name, Status: Passed})
		o.Events.Emit(Event{Type: "stage-passed", Stage: s.Name, Seconds: d.Seconds()})
		logf("%-12s ok (%s)", s.Name, d.Round(time.Millisecond))
	}
	if failed != nil {
		return failed
	}
	return nil
}

// IsStageError reports the failed stage's name, if err is one.
func IsStageError(err error) (string, bool) {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage, true
	}
	return "", false
}
