package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// memoFixture is a two-stage pipeline: "build" writes out/a.txt from the
// input file in its inputs, "pack" writes out/b.txt from a.txt; both
// memoized. ran counts the runs of each.
type memoFixture struct {
	t     *testing.T
	input string // the content build reads
	ran   map[string]int
	state string // what build hands to pack beyond the ledger
}

func (f *memoFixture) stages() []Stage {
	write := func(p Plan, l *Ledger, name, content string) error {
		path := filepath.Join(p.OutDir(), name)
		if err := fsutil.WriteFileAtomic(path, []byte(content), 0o644); err != nil {
			return err
		}
		_, err := l.AddFile(KindDeb, name, "", path, name)
		return err
	}
	return []Stage{
		{Name: "build", Run: func(_ context.Context, p Plan, l *Ledger) error {
			f.ran["build"]++
			f.state = "tree-of-" + f.input
			return write(p, l, "a.txt", "built "+f.input)
		}, Reuse: &Reuse{
			Inputs: func(context.Context, Plan, *Ledger) (map[string]string, error) {
				return map[string]string{"input": f.input}, nil
			},
			State: func() (json.RawMessage, error) { return json.Marshal(f.state) },
			Restore: func(_ context.Context, _ Plan, _ *Ledger, m Memo) error {
				return json.Unmarshal(m.State, &f.state)
			},
		}},
		{Name: "pack", Run: func(_ context.Context, p Plan, l *Ledger) error {
			f.ran["pack"]++
			if f.state == "" {
				return errors.New("no state handed over")
			}
			return write(p, l, "b.txt", "packed "+f.state)
		}, Reuse: &Reuse{Inputs: func(_ context.Context, _ Plan, l *Ledger) (map[string]string, error) {
			return LedgerInputs(l), nil
		}}},
	}
}

// run runs the fixture against the ledger the previous run left on disk.
func (f *memoFixture) run(p Plan) (*Ledger, string) {
	f.t.Helper()
	prev, _ := ReadLedger(p.LedgerPath())
	f.state = ""
	var l Ledger
	var log bytes.Buffer
	if err := Run(context.Background(), p, f.stages(), &l, Options{Log: &log, Previous: prev}); err != nil {
		f.t.Fatalf("run: %v\n%s", err, log.String())
	}
	if err := l.WriteFile(p.LedgerPath()); err != nil {
		f.t.Fatal(err)
	}
	return &l, log.String()
}

func TestMemoSkipsUnchangedStagesAndRunsChangedOnes(t *testing.T) {
	cfg := testConfig(t)
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &memoFixture{t: t, input: "v1", ran: map[string]int{}}
	first, _ := f.run(p)
	if f.ran["build"] != 1 || f.ran["pack"] != 1 {
		t.Fatalf("cold run ran %v", f.ran)
	}

	// Nothing changed: both stages are reused, the state is restored, the
	// ledger holds the same artifacts and says since which run.
	l, log := f.run(p)
	if f.ran["build"] != 1 || f.ran["pack"] != 1 {
		t.Fatalf("no-op run ran %v:\n%s", f.ran, log)
	}
	if want := "build        unchanged since " + first.Run(); !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
	for _, s := range l.Stages() {
		if s.Status != Passed || s.Unchanged != first.Run() || s.Memo == nil || s.Memo.Run != first.Run() {
			t.Errorf("stage %s: %+v", s.Name, s)
		}
	}
	if len(l.Artifacts()) != 2 || f.state != "tree-of-v1" {
		t.Errorf("reused run: artifacts %v, state %q", l.Artifacts(), f.state)
	}
	// A third run still names the run that produced the outputs.
	if _, log := f.run(p); !strings.Contains(log, "pack         unchanged since "+first.Run()) {
		t.Errorf("a second reuse does not name the first run:\n%s", log)
	}

	// An output changed on disk: that stage runs again, and so does
	// nothing else (its rebuilt output is the same).
	os.WriteFile(filepath.Join(p.OutDir(), "b.txt"), []byte("tampered"), 0o644)
	_, log = f.run(p)
	if f.ran["build"] != 1 || f.ran["pack"] != 2 || !strings.Contains(log, "pack         runs: outputs changed on disk: deb b.txt changed") {
		t.Errorf("after b.txt changed: ran %v\n%s", f.ran, log)
	}
	// An output gone: likewise.
	os.Remove(filepath.Join(p.OutDir(), "a.txt"))
	_, log = f.run(p)
	if f.ran["build"] != 2 || f.ran["pack"] != 2 {
		t.Errorf("after a.txt went: ran %v\n%s", f.ran, log)
	}

	// An input changed: the stage runs, and the stage reading its output
	// runs too (its artifact inputs changed).
	f.input = "v2"
	_, log = f.run(p)
	if f.ran["build"] != 3 || f.ran["pack"] != 3 || !strings.Contains(log, "build        runs: inputs changed since run") ||
		!strings.Contains(log, "pack         runs: inputs changed since run") || !strings.Contains(log, "artifact deb a.txt") {
		t.Errorf("after the input changed: ran %v\n%s", f.ran, log)
	}

	// HALVM_FRESH forces a stage.
	cfg.Fresh = []string{"pack"}
	pf, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, log = f.run(pf)
	if f.ran["build"] != 3 || f.ran["pack"] != 4 || !strings.Contains(log, "pack         runs: forced by HALVM_FRESH") {
		t.Errorf("HALVM_FRESH=pack: ran %v\n%s", f.ran, log)
	}
	cfg.Fresh = []string{FreshAll}
	pa, _ := NewPlan(cfg)
	f.run(pa)
	if f.ran["build"] != 4 || f.ran["pack"] != 5 {
		t.Errorf("HALVM_FRESH=all: ran %v", f.ran)
	}
}

func TestMemoIsNotReusedAfterAFailureOrAFailedRestore(t *testing.T) {
	p, _ := NewPlan(testConfig(t))
	f := &memoFixture{t: t, input: "v1", ran: map[string]int{}}
	f.run(p)
	// A recorded failure is never reused.
	prev, _ := ReadLedger(p.LedgerPath())
	rec, _ := prev.stage("pack")
	rec.Status = Failed
	prev.RecordStage(rec)
	prev.WriteFile(p.LedgerPath())
	_, log := f.run(p)
	if f.ran["pack"] != 2 || !strings.Contains(log, "pack         runs: it did not pass in the run before (failed)") {
		t.Errorf("a failed stage was reused: %v\n%s", f.ran, log)
	}
	// A memo whose state cannot be restored runs the stage.
	prev, _ = ReadLedger(p.LedgerPath())
	rec, _ = prev.stage("build")
	rec.Memo.State = json.RawMessage(`{"not":"a string"}`)
	prev.RecordStage(rec)
	prev.WriteFile(p.LedgerPath())
	_, log = f.run(p)
	if f.ran["build"] != 2 || !strings.Contains(log, "build        runs: its outputs cannot be restored") {
		t.Errorf("an unrestorable memo was reused: %v\n%s", f.ran, log)
	}
}

func TestFreshIsStrict(t *testing.T) {
	cfg := testConfig(t)
	for _, bad := range [][]string{{"all", "verify"}, {"verify", "verify"}, {" "}} {
		cfg.Fresh = bad
		if _, err := NewPlan(cfg); err == nil || !strings.Contains(err.Error(), "plan: fresh") {
			t.Errorf("Fresh %q: err = %v", bad, err)
		}
	}
	cfg.Fresh = []string{"typo"}
	p, err := NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &memoFixture{t: t, ran: map[string]int{}}
	err = Run(context.Background(), p, f.stages(), &Ledger{}, Options{})
	if err == nil || !strings.Contains(err.Error(), `HALVM_FRESH names unknown stage "typo" (stages: build, pack, or all)`) || len(f.ran) != 0 {
		t.Fatalf("err = %v, ran %v", err, f.ran)
	}
}

func TestTreeDigestSeesContentModeAndLinks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	os.Symlink("f", filepath.Join(dir, "l"))
	d1, err := TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []func(){
		func() { os.WriteFile(filepath.Join(dir, "f"), []byte("y"), 0o644) },
		func() { os.Chmod(filepath.Join(dir, "f"), 0o755) },
		func() { os.Remove(filepath.Join(dir, "l")); os.Symlink("g", filepath.Join(dir, "l")) },
	} {
		change()
		d2, err := TreeDigest(dir)
		if err != nil || d2 == d1 {
			t.Fatalf("a change went unseen: %v", err)
		}
		d1 = d2
	}
}
