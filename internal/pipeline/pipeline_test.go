package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T) Config {
	d := t.TempDir()
	return Config{Version: "2.4.3", Release: 1, Epoch: time.Unix(1544054400, 0), LockPath: "pins/halvm.lock",
		OutDir: filepath.Join(d, "dist"), CacheDir: filepath.Join(d, "cache"), WorkDir: filepath.Join(d, "work")}
}

func TestNewPlanReportsEveryProblem(t *testing.T) {
	_, err := NewPlan(Config{Version: "two", Flavours: []string{"halvm", "halvm", "ghcjs"}, Skip: map[string]string{"sign": " "}})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"version", "release", `flavour "halvm" listed twice`, `unknown flavour "ghcjs"`, "SOURCE_DATE_EPOCH", "lock: path is empty", "out: path is empty", `stage "sign" is skipped without a reason`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPlanDefaultsAndCopies(t *testing.T) {
	p, err := NewPlan(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Flavours(), ","); got != "halvm,halvm-gmp" {
		t.Fatalf("flavours = %s", got)
	}
	p.Flavours()[0] = "mutated"
	if p.Flavours()[0] != "halvm" || p.PackageVersion() != "2.4.3-1" || !filepath.IsAbs(p.LockPath()) {
		t.Fatal("plan is not read-only or not normalized")
	}
}

func TestRunRecordsSkipsAndFailures(t *testing.T) {
	cfg := testConfig(t)
	cfg.Skip = map[string]string{"sign": "local trial without keys"}
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	stage := func(name string, err error) Stage {
		return Stage{Name: name, Run: func(context.Context, Plan, *Ledger) error { ran = append(ran, name); return err }}
	}
	var l Ledger
	var log, events bytes.Buffer
	err = Run(context.Background(), p, []Stage{
		stage("preflight", nil), stage("sign", nil), stage("build", errors.New("boom")), stage("publish", nil),
	}, &l, Options{Log: &log, Events: NewEventLog(&events)})
	if name, ok := IsStageError(err); !ok || name != "build" {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(ran, ",") != "preflight,build" {
		t.Fatalf("ran %v", ran)
	}
	got := map[string]Status{}
	for _, s := range l.Stages() {
		got[s.Name] = s.Status
	}
	want := map[string]Status{"preflight": Passed, "sign": Skipped, "build": Failed, "publish": NotRun}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stage %s: %s, want %s", k, got[k], v)
		}
	}
	if !l.Snapshot() {
		t.Error("a run with a skipped stage is not marked as a snapshot")
	}
	if !strings.Contains(log.String(), "sign         skipped: local trial without keys") || strings.Count(events.String(), "\n") != 5 {
		t.Errorf("log:\n%s\nevents:\n%s", log.String(), events.String())
	}
}

func TestRunRejectsUnknownSkip(t *testing.T) {
	cfg := testConfig(t)
	cfg.Skip = map[string]string{"typo": "x"}
	p, _ := NewPlan(cfg)
	if err := Run(context.Background(), p, []Stage{{Name: "a", Run: func(context.Context, Plan, *Ledger) error { return nil }}}, &Ledger{}, Options{}); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Fatalf("err = %v", err)
	}
}

func TestLedgerRoundTripIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.deb")
	os.WriteFile(f, []byte("hello"), 0o644)
	var l Ledger
	l.Add(Artifact{Kind: KindRPM, Name: "z"})
	if _, err := l.AddFile(KindDeb, "halvm", "halvm", f, "a.deb"); err != nil {
		t.Fatal(err)
	}
	l.RecordStage(StageRecord{Name: "packages", Status: Passed})
	path := filepath.Join(dir, "ledger.json")
	if err := l.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	l2, err := ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	l.Encode(&a)
	l2.Encode(&b)
	if a.String() != b.String() {
		t.Fatalf("round trip changed the ledger:\n%s\n%s", a.String(), b.String())
	}
	deb := l2.Find(KindDeb, "halvm")
	if len(deb) != 1 || deb[0].Size != 5 || deb[0].SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("deb = %+v", deb)
	}
	if !strings.Contains(a.String(), `"kind": "deb"`) || strings.Index(a.String(), `"deb"`) > strings.Index(a.String(), `"rpm"`) {
		t.Fatal("artifacts not sorted by kind")
	}
}

// TestRequiredStagesCannotBeSkipped: skipping a required stage is refused
// before any stage runs, naming the stage and why it is required; other
// stages may be skipped (a snapshot).
func TestRequiredStagesCannotBeSkipped(t *testing.T) {
	ran := 0
	stages := []Stage{
		{Name: "preflight", Required: true, Why: "it checks the keys", Run: func(context.Context, Plan, *Ledger) error { ran++; return nil }},
		{Name: "image", Run: func(context.Context, Plan, *Ledger) error { ran++; return nil }},
		{Name: "verify", Required: true, Why: "nothing unverified is published", Run: func(context.Context, Plan, *Ledger) error { ran++; return nil }},
	}
	cfg := testConfig(t)
	cfg.Skip = map[string]string{"verify": "too slow", "image": "no registry"}
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var l Ledger
	err = Run(context.Background(), p, stages, &l, Options{})
	if err == nil || !strings.Contains(err.Error(), "verify (nothing unverified is published)") || strings.Contains(err.Error(), "image") || ran != 0 {
		t.Fatalf("skipping verify: err = %v, %d stage(s) ran", err, ran)
	}
	cfg.Skip = map[string]string{"image": "no registry"}
	if p, err = NewPlan(cfg); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), p, stages, &l, Options{}); err != nil || ran != 2 || !l.Snapshot() {
		t.Fatalf("skipping image: err = %v, %d ran, snapshot %v", err, ran, l.Snapshot())
	}
}

// TestNeedsOfARunningStageCannotBeSkipped: a run that skips a stage whose
// results a running stage needs is refused before any stage runs, naming
// both, why the needed one is skipped and the remedy (a required stage's
// needs included); skipping the needing stage too is accepted, and a need
// on a stage not listed before is a programming error.
func TestNeedsOfARunningStageCannotBeSkipped(t *testing.T) {
	ran := 0
	run := func(context.Context, Plan, *Ledger) error { ran++; return nil }
	stages := []Stage{
		{Name: "preflight", Required: true, Why: "keys", Run: run},
		{Name: "toolchain", Run: run},
		{Name: "packages", Needs: []string{"toolchain"}, Run: run},
		{Name: "repos", Needs: []string{"packages"}, Run: run},
		{Name: "verify", Required: true, Why: "nothing unverified", Needs: []string{"preflight", "repos"}, Run: run},
	}
	plan := func(skip map[string]string) Plan {
		cfg := testConfig(t)
		cfg.Skip = skip
		p, err := NewPlan(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	err := Run(context.Background(), plan(map[string]string{"toolchain": "built elsewhere"}), stages, &Ledger{}, Options{})
	if err == nil || ran != 0 {
		t.Fatalf("skipping toolchain that packages needs: err = %v, %d stage(s) ran", err, ran)
	}
	for _, want := range []string{"packages needs toolchain (skipped: built elsewhere)", "remove the needed stages from HALVM_SKIP, or skip the stages that need them too"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q:\n%v", want, err)
		}
	}
	err = Run(context.Background(), plan(map[string]string{"repos": "no publish root"}), stages, &Ledger{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "verify, a required stage, needs repos (skipped: no publish root)") || ran != 0 {
		t.Fatalf("skipping repos that the required verify needs: err = %v, %d ran", err, ran)
	}
	// Skipping packages and repos too leaves no running stage without
	// its needs... except verify, which is required: still refused.
	err = Run(context.Background(), plan(map[string]string{"toolchain": "x", "packages": "x", "repos": "x"}), stages, &Ledger{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "verify, a required stage, needs repos") || strings.Contains(err.Error(), "packages needs") || ran != 0 {
		t.Fatalf("skipping the chain below a required stage: err = %v, %d ran", err, ran)
	}
	var l Ledger
	if err := Run(context.Background(), plan(map[string]string{"toolchain": "x", "packages": "x", "repos": "x"}), stages[:4], &l, Options{}); err != nil || ran != 1 {
		t.Fatalf("skipping toolchain and everything that needs it: err = %v, %d ran", err, ran)
	}
	bad := []Stage{{Name: "a", Needs: []string{"b"}, Run: run}, {Name: "b", Run: run}}
	if err := Run(context.Background(), plan(nil), bad, &Ledger{}, Options{}); err == nil || !strings.Contains(err.Error(), `stage "a" needs "b", which is not listed before it`) {
		t.Fatalf("a need on a later stage: %v", err)
	}
}

// TestMissingInputSaysWhatWhyAndHow: a stage started without an earlier
// stage's result names the input, the stage that makes it, what became of
// that stage (skipped with its reason, failed, not run) and the remedy.
func TestMissingInputSaysWhatWhyAndHow(t *testing.T) {
	cfg := testConfig(t)
	cfg.Skip = map[string]string{"image": "no registry"}
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var l Ledger
	l.RecordStage(StageRecord{Name: "repos", Status: Failed, Reason: "disk full"})
	for _, c := range []struct {
		from, want string
	}{
		{"image", "sign cannot start: it needs the pushed images from the image stage, which was skipped (no registry): remove image from HALVM_SKIP, or skip sign too"},
		{"repos", "sign cannot start: it needs the pushed images from the repos stage, which failed (disk full): run the stages in order, as the release does"},
		{"preflight", "sign cannot start: it needs the pushed images from the preflight stage, which has not run: run the stages in order"},
	} {
		err := error(MissingInput(p, &l, "sign", "the pushed images", c.from))
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("from %s:\n got %v\nwant %s", c.from, err, c.want)
		}
		var mi *MissingInputError
		if !errors.As(err, &mi) || mi.Stage != "sign" || mi.From != c.from {
			t.Errorf("from %s: not a MissingInputError naming both stages: %#v", c.from, err)
		}
	}
}
