package release

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/testpkg"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/repos"
)

func snapshotPlan(t *testing.T, dir string, skip map[string]string) pipeline.Plan {
	t.Helper()
	p, err := pipeline.NewPlan(pipeline.Config{Version: "2.4.3", Release: 1, Epoch: time.Unix(1700000000, 0), LockPath: filepath.Join(dir, "halvm.lock"),
		OutDir: filepath.Join(dir, "dist"), CacheDir: filepath.Join(dir, "cache"), WorkDir: filepath.Join(dir, "work"), Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSnapshotIsNeverSwitchedLive: a trial that skipped a stage stages its
// publications and stops before the switch, saying how to look at them;
// the next run's start removes them, naming them. Skipping a required
// stage, or any stage in an official release, is refused at the start.
func TestSnapshotIsNeverSwitchedLive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	epoch := time.Unix(1700000000, 0).UTC()
	k, err := pgp.Generate("HaLVM test archive", "test@halvm.invalid", true, epoch)
	if err != nil {
		t.Fatal(err)
	}
	s := testpkg.Spec{Name: "halvm-hello", Version: "1.0.0", Release: "1", Payload: "one", Epoch: epoch, Key: k}
	root := filepath.Join(dir, "repos")
	c := repos.Config{Root: root, URL: "http://127.0.0.1:8619", Key: k, Epoch: epoch, Version: "2.4.3"}
	staged, err := repos.Prepare(ctx, c, []string{testpkg.Deb(t, dir, s)}, []string{testpkg.RPM(t, dir, s)})
	if err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	r := &runner{o: Options{RepoRoot: root, RepoURL: c.URL, Log: &log}, out: results{preflight: &preflightResult{key: k}, repos: &reposResult{staged: staged}}}
	p := snapshotPlan(t, dir, map[string]string{"image": "no registry here"})
	var l pipeline.Ledger
	if err := r.publish(ctx, p, &l); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{c.AptDir(), c.DnfDir()} {
		if cur, err := publish.Current(repo); !errors.Is(err, publish.ErrNothingPublished) {
			t.Fatalf("a snapshot switched %s live (%s, %v)", repo, cur, err)
		}
	}
	apt, _ := c.StagedDirs(staged)
	for _, want := range []string{"SNAPSHOT (skipped: image)", "NOT switched live", apt, "go run mage.go repo:staged"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the snapshot's message lacks %q:\n%s", want, log.String())
		}
	}
	if got, err := repos.Newest(c); err != nil || got != staged {
		t.Fatalf("repo:staged would serve %+v (%v), want %+v", got, err, staged)
	}
	// An official release may skip nothing: refused before anything runs.
	if _, err := Run(ctx, p, Options{RepoRoot: root, Official: true}); err == nil || !strings.Contains(err.Error(), "an official release skips no stage (HALVM_SKIP names image)") {
		t.Fatalf("official snapshot: %v", err)
	}
	if names, _ := publish.List(c.AptDir()); len(names) != 1 {
		t.Fatalf("a refused official run touched the publications: %v", names)
	}
	// The next run's start removes the snapshot's publications, naming
	// them; skipping verify is refused before any stage runs.
	log.Reset()
	_, err = Run(ctx, snapshotPlan(t, dir, map[string]string{"verify": "in a hurry"}), Options{RepoRoot: root, Log: &log})
	if err == nil || !strings.Contains(err.Error(), "required stages cannot be skipped, in any run: verify (nothing unverified") {
		t.Fatalf("skipping verify: %v", err)
	}
	if !strings.Contains(log.String(), "apt/"+staged.Apt) || !strings.Contains(log.String(), "dnf/"+staged.Dnf) {
		t.Errorf("the next run does not name the removed snapshot publications:\n%s", log.String())
	}
	for _, repo := range []string{c.AptDir(), c.DnfDir()} {
		if names, _ := publish.List(repo); len(names) != 0 {
			t.Errorf("%s still holds %v", repo, names)
		}
	}
}
