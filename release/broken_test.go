package release

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/publish"
)

// TestBrokenStagePublishesNothing: a snapshot (a run that skipped stages)
// stages its publications and never switches them live; a run whose stage
// fails — early (sources) or after the repositories were staged (verify) —
// leaves the live repositories exactly as they were, leaves nothing in
// publications/ that never went live (the snapshot's staged publication is
// removed at the next run's start, the failed verify run removes its own),
// and records the later stages, publish among them, as not run.
func TestBrokenStagePublishesNothing(t *testing.T) {
	testenv.NeedCommand(t, "autoconf", "autoconf")
	real, dir, cache := demoSetup(t)
	out := filepath.Join(dir, "dist")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// Images, signatures and the verification suite are TestDemo's
	// business: here they are skipped (a trial snapshot) or, for verify,
	// deliberately broken.
	skip := map[string]string{"image": "covered by TestDemo", "sign": "covered by TestDemo", "verify": "covered by TestDemo"}
	demo := func(breakStage string) (*pipeline.Ledger, error) {
		var log bytes.Buffer
		s := map[string]string{}
		for k, v := range skip {
			if k != breakStage {
				s[k] = v
			}
		}
		l, err := Demo(ctx, DemoOptions{OutDir: out, CacheDir: filepath.Join(cache, "demo"), WorkDir: filepath.Join(dir, "work"), RealLock: real,
			Skip: s, Addr: "127.0.0.1:0", Log: &log, breakStage: breakStage, skipRequired: true})
		t.Logf("demo (broken: %q):\n%s", breakStage, log.String())
		return l, err
	}
	if _, err := demo(""); err != nil {
		t.Fatal(err)
	}
	apt, dnf := filepath.Join(out, "repos", "apt"), filepath.Join(out, "repos", "dnf")
	liveApt, _ := publish.Current(apt)
	liveDnf, _ := publish.Current(dnf)
	if liveApt != "" || liveDnf != "" {
		t.Fatalf("a snapshot switched live: apt %q, dnf %q", liveApt, liveDnf)
	}
	if un, _ := publish.Unpublished(apt); len(un) != 1 {
		t.Fatalf("the snapshot staged %v, want one apt publication to look at", un)
	}
	for _, broken := range []string{"sources", "verify"} {
		l, err := demo(broken)
		if name, ok := pipeline.IsStageError(err); !ok || name != broken {
			t.Fatalf("broken %s: err = %v", broken, err)
		}
		for _, s := range l.Stages() {
			if s.Name == "publish" && s.Status != pipeline.NotRun {
				t.Errorf("broken %s: publish is %s, want not-run", broken, s.Status)
			}
		}
		if a, _ := publish.Current(apt); a != liveApt {
			t.Errorf("broken %s: the live apt repository moved from %s to %s", broken, liveApt, a)
		}
		if d, _ := publish.Current(dnf); d != liveDnf {
			t.Errorf("broken %s: the live dnf repository moved from %s to %s", broken, liveDnf, d)
		}
		onDisk, err := pipeline.ReadLedger(filepath.Join(out, "ledger.json"))
		if err != nil {
			t.Fatal(err)
		}
		var failed string
		for _, s := range onDisk.Stages() {
			if s.Status == pipeline.Failed {
				failed = s.Name
			}
		}
		if failed != broken {
			t.Errorf("dist/ledger.json records %q as the failed stage, want %q", failed, broken)
		}
		// History is only what went live.
		for _, root := range []string{apt, dnf} {
			if names, _ := publish.List(root); len(names) != 0 {
				t.Errorf("broken %s: %s/publications holds %v, none of which ever went live", broken, root, names)
			}
		}
	}
}
