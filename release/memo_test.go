package release

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/verify"
)

// TestHostToolsAreInstalledVersions: a stage's host tools are the versions
// dpkg reports for the table's packages of that stage, a package that is
// not installed included, and the same on a second asking.
func TestHostToolsAreInstalledVersions(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-query")
	r := &runner{}
	v, err := r.hostTools(context.Background(), "toolchain")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v, "make=") || !strings.Contains(v, "gcc=") {
		t.Errorf("toolchain's host tools: %q", v)
	}
	if v2, _ := (&runner{}).hostTools(context.Background(), "toolchain"); v2 != v {
		t.Errorf("asked twice: %q then %q", v, v2)
	}
	if v, err := r.hostTools(context.Background(), "no-such-stage"); err != nil || v != "none" {
		t.Errorf("a stage with no host packages: %q, %v", v, err)
	}
}

// TestKeptForResume: only a run whose publish failed (everything before it
// passed) hands its staged publications to the next run.
func TestKeptForResume(t *testing.T) {
	staged := repos.Staged{Apt: "0002-aaaa", Dnf: "0002-bbbb"}
	state, _ := json.Marshal(staged)
	ledger := func(publish pipeline.Status) *pipeline.Ledger {
		var l pipeline.Ledger
		l.RecordStage(pipeline.StageRecord{Name: "repos", Status: pipeline.Passed, Memo: &pipeline.Memo{Run: "r1", State: state}})
		l.RecordStage(pipeline.StageRecord{Name: "verify", Status: pipeline.Passed})
		l.RecordStage(pipeline.StageRecord{Name: "publish", Status: publish})
		return &l
	}
	if got := keptForResume(ledger(pipeline.Failed)); got != staged {
		t.Errorf("failed at publish: kept %+v", got)
	}
	for _, st := range []pipeline.Status{pipeline.Passed, pipeline.NotRun, pipeline.Skipped} {
		if got := keptForResume(ledger(st)); got != (repos.Staged{}) {
			t.Errorf("publish %s: kept %+v", st, got)
		}
	}
	if got := keptForResume(nil); got != (repos.Staged{}) {
		t.Errorf("no earlier run: kept %+v", got)
	}
}

// TestVerdictItemsKeepWhereEachVerdictCameFrom: only passes are recorded,
// each under the run that produced it.
func TestVerdictItemsKeepWhereEachVerdictCameFrom(t *testing.T) {
	rep := &verify.Report{Results: []verify.Result{
		{Name: "a", Status: verify.Pass, Checked: 2, Summary: "two"},
		{Name: "b", Status: verify.Pass, Checked: 1, Summary: "one", ReusedFrom: "r0"},
		{Name: "c", Status: verify.Fail, Reason: "bad"},
		{Name: "d", Status: verify.NotRun},
	}}
	items := verdictItems(rep, "k", "r1")
	if len(items) != 2 || items["a"].Run != "r1" || items["b"].Run != "r0" || items["a"].Key != "k" {
		t.Fatalf("items: %+v", items)
	}
	var a verify.Result
	if err := json.Unmarshal(items["a"].Data, &a); err != nil || a.Summary != "two" || a.Checked != 2 {
		t.Errorf("a: %+v %v", a, err)
	}
}

// TestVerdictReusePolicy: passing verdicts recorded for exactly the same
// inputs are reused, naming their run; changed inputs, HALVM_FRESH=verify
// and an official release reuse none.
func TestVerdictReusePolicy(t *testing.T) {
	inputs := map[string]string{"artifact deb halvm halvm": "abc", "host xen machine": "x1"}
	key := pipeline.MemoKey(inputs)
	rep := &verify.Report{Results: []verify.Result{{Name: "sig", Status: verify.Pass, Checked: 1, Summary: "s"}, {Name: "boot", Status: verify.Fail}}}
	prev := pipeline.StageRecord{Name: "verify", Status: pipeline.Failed, Memo: &pipeline.Memo{Run: "r1", Key: key, Inputs: inputs, Items: verdictItems(rep, key, "r1")}}
	reuse, why := reusableVerdicts(prev, inputs, false, false)
	if why != "" || len(reuse) != 1 || reuse["sig"].ReusedFrom != "r1" {
		t.Fatalf("same inputs: %v %q", reuse, why)
	}
	changed := map[string]string{"artifact deb halvm halvm": "abc", "host xen machine": "x2"}
	if reuse, why := reusableVerdicts(prev, changed, false, false); len(reuse) != 0 || !strings.Contains(why, "inputs changed since run r1: host xen machine") {
		t.Errorf("another Xen machine: %v %q", reuse, why)
	}
	if reuse, why := reusableVerdicts(prev, inputs, false, true); len(reuse) != 0 || why != "HALVM_FRESH" {
		t.Errorf("HALVM_FRESH=verify: %v %q", reuse, why)
	}
	if reuse, why := reusableVerdicts(prev, inputs, true, false); len(reuse) != 0 || !strings.Contains(why, "official release never reuses") {
		t.Errorf("official: %v %q", reuse, why)
	}
}
