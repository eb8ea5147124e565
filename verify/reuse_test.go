package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReuseSkipsOnlyPassingVerdicts: a passing verdict handed in is reported
// as reused from its run without running the check, and checks after it
// run; a failed or not-run verdict is never reused, its check runs.
func TestReuseSkipsOnlyPassingVerdicts(t *testing.T) {
	ran := map[string]int{}
	count := func(c Check) Check {
		run := c.Run
		c.Run = func(ctx context.Context, env *Env) (Evidence, error) { ran[c.Name]++; return run(ctx, env) }
		return c
	}
	after := passing("after", Install)
	after.After = []string{"sig"}
	checks := []Check{count(passing("sig", Signatures)), count(passing("cons", Consistency)), count(passing("boot", Boot)), count(after)}
	prev := map[string]Result{
		"sig":  {Name: "sig", Status: Pass, Checked: 7, Summary: "7 signatures", ReusedFrom: "run-1"},
		"cons": {Name: "cons", Status: Fail, Reason: "mismatch", ReusedFrom: "run-1"},
		"boot": {Name: "boot", Status: NotRun, ReusedFrom: "run-1"},
	}
	dir := t.TempDir()
	var log bytes.Buffer
	rep, err := VerifyReport(context.Background(), &Env{Dist: dir}, checks, Options{Reuse: prev, Log: &log, Progress: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if ran["sig"] != 0 || ran["cons"] != 1 || ran["boot"] != 1 || ran["after"] != 1 {
		t.Errorf("ran %v", ran)
	}
	if r := byName(t, rep, "sig"); r.Status != Pass || r.ReusedFrom != "run-1" || r.Checked != 7 || r.Summary != "7 signatures" {
		t.Errorf("sig: %+v", r)
	}
	if r := byName(t, rep, "cons"); r.ReusedFrom != "" {
		t.Errorf("cons ran and is marked reused: %+v", r)
	}
	if !strings.Contains(log.String(), "reused  sig (passed in run run-1)") || !strings.Contains(log.String(), "[reused: passed in run run-1 for the same inputs]") {
		t.Errorf("the summary does not say what was reused:\n%s", log.String())
	}
	var js struct{ Checks []map[string]any }
	b, _ := os.ReadFile(filepath.Join(dir, "verify.json"))
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	reused := 0
	for _, c := range js.Checks {
		if c["reused_from"] == "run-1" {
			reused++
		}
	}
	if reused != 1 {
		t.Errorf("verify.json marks %d checks reused, want 1:\n%s", reused, b)
	}
	// A reused pass of a check not selected is not run and not reused.
	rep, _ = Run(context.Background(), nil, checks, Options{Reuse: prev, Select: func(c Check) bool { return c.Name != "sig" }})
	if r := byName(t, rep, "sig"); r.Status != NotRun {
		t.Errorf("unselected sig: %+v", r)
	}
}
