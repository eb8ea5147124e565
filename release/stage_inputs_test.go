package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci"
	"github.com/halvm/halvm-release/pins"
)

// inputsPlan is a plan in dir that skips skip.
func inputsPlan(t *testing.T, lock *pins.Lock, dir string, skip map[string]string) pipeline.Plan {
	t.Helper()
	p, err := pipeline.NewPlan(pipeline.Config{Version: lock.Release.Version, Release: 1, Epoch: lock.Release.Epoch(), LockPath: "../pins/halvm.lock",
		OutDir: filepath.Join(dir, "dist"), CacheDir: filepath.Join(dir, "cache"), WorkDir: filepath.Join(dir, "work"), Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStageWithoutItsInputFailsAtOnce: each stage started without what an
// earlier stage hands it (a typed result, or the ledger's artifacts) fails
// at its start, before it writes anything, with a MissingInputError for
// each missing input that names the input, the stage that makes it, what
// became of that stage and the remedy.
func TestStageWithoutItsInputFailsAtOnce(t *testing.T) {
	lock, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	key, err := pgp.Generate("HaLVM test archive", "test@halvm.invalid", true, lock.Release.Epoch())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := name.NewDigest("127.0.0.1:5000/halvm/halvm@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	withKey := results{preflight: &preflightResult{key: key}}
	for _, c := range []struct {
		name  string
		stage func(*runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error
		out   results
		skip  map[string]string
		want  []string // each in the error
	}{
		{name: "packages", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.packages },
			want: []string{"packages cannot start: it needs the installed toolchain trees from the toolchain stage, which has not run: run the stages in order",
				"it needs the checked-out source tree (its LICENSE) from the sources stage"}},
		{name: "packages, toolchain skipped", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.packages },
			out: results{sources: &sourcesResult{srcDir: "src"}}, skip: map[string]string{"toolchain": "built by CI"},
			want: []string{"packages cannot start: it needs the installed toolchain trees from the toolchain stage, which was skipped (built by CI): remove toolchain from HALVM_SKIP, or skip packages too"}},
		{name: "image", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.image },
			want: []string{`image cannot start: it needs the .deb "halvm" (ledger kind deb) from the packages stage`, `the .deb "halvm-gmp"`}},
		{name: "sbom", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.sbom },
			want: []string{"sbom cannot start: it needs the halvm tree manifest (ledger kind tree-manifest) from the toolchain stage"}},
		{name: "repos", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.repos },
			want: []string{"repos cannot start: it needs the archive key from the preflight stage", "it needs the .deb and .rpm packages (ledger kinds deb, rpm) from the packages stage"}},
		{name: "sign", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.sign },
			want: []string{"sign cannot start: it needs the archive key from the preflight stage", "it needs the pushed images from the image stage, which has not run"}},
		{name: "sign, no sbom", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.sign },
			out:  results{preflight: withKey.preflight, image: &imageResult{pushed: []oci.Pushed{{Flavour: "halvm", Digest: digest}}}},
			want: []string{"sign cannot start: it needs the SPDX SBOM of halvm (ledger kind sbom-spdx) from the sbom stage, which has not run", "(ledger kind provenance) from the sbom stage"}},
		{name: "verify", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.verify },
			want: []string{"verify cannot start: it needs the archive key from the preflight stage", "it needs the staged publications from the repos stage"}},
		{name: "publish", stage: func(r *runner) func(context.Context, pipeline.Plan, *pipeline.Ledger) error { return r.publish },
			out:  withKey,
			want: []string{"publish cannot start: it needs the staged publications from the repos stage, which has not run"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := inputsPlan(t, lock, dir, c.skip)
			r := &runner{o: Options{Lock: lock, RepoRoot: filepath.Join(dir, "repos"), RepoURL: "http://127.0.0.1:8619"}, out: c.out}
			var l pipeline.Ledger
			err := c.stage(r)(context.Background(), p, &l)
			var mi *pipeline.MissingInputError
			if !errors.As(err, &mi) {
				t.Fatalf("want a MissingInputError, got %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error lacks %q:\n%v", w, err)
				}
			}
			for _, d := range []string{p.OutDir(), p.WorkDir(), p.CacheDir(), r.o.RepoRoot} {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the stage wrote %s before it failed (%v)", d, err)
				}
			}
		})
	}
	// preflight reads the lock itself.
	dir := t.TempDir()
	if err := (&runner{}).preflight(context.Background(), inputsPlan(t, lock, dir, nil), &pipeline.Ledger{}); err == nil || err.Error() != "no lock loaded" {
		t.Errorf("preflight without a lock: %v", err)
	}
}

// TestReleaseRefusesSkippingWhatARunningStageNeeds: the release's stages
// declare what they read (Needs): a run that skips a stage whose results a
// running stage needs is refused before any stage runs, naming each pair
// and the remedy; skipping what a required stage needs is refused too.
func TestReleaseRefusesSkippingWhatARunningStageNeeds(t *testing.T) {
	lock, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		skip map[string]string
		want []string
	}{
		{map[string]string{"toolchain": "built by CI"}, []string{"packages needs toolchain (skipped: built by CI)", "sbom needs toolchain (skipped: built by CI)", "remove the needed stages from HALVM_SKIP, or skip the stages that need them too"}},
		{map[string]string{"repos": "no publish root", "publish": "no publish root"}, []string{"verify, a required stage, needs repos (skipped: no publish root)"}},
	} {
		dir := t.TempDir()
		l, err := Run(context.Background(), inputsPlan(t, lock, dir, c.skip), Options{Lock: lock})
		if err == nil {
			t.Fatalf("skipping %v: accepted", c.skip)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("skipping %v: the refusal lacks %q:\n%v", c.skip, w, err)
			}
		}
		if l != nil && len(l.Stages()) > 0 {
			t.Errorf("skipping %v: stages ran before the refusal: %+v", c.skip, l.Stages())
		}
	}
}
