// Package release composes every stage of a HaLVM release into one ordered
// list — the whole release, readable on one screen in Stages — and runs it
// against a validated plan, writing dist/ledger.json and dist/events.jsonl.
// A failure anywhere publishes nothing: the repositories are only staged
// until the publish stage, which runs last, after verify.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sources"
)

// Options is everything about a run that is not in the plan.
type Options struct {
	Lock      *pins.Lock
	PGPKey    pgp.KeySource    // archive key: repositories, rpm headers, SHA256SUMS.asc
	CosignKey cosign.KeySource // images, attestations, SHA256SUMS.sig
	RepoRoot  string           // publish root of the repositories
	RepoURL   string           // where users fetch them
	Registry  string           // image repository prefix, e.g. 127.0.0.1:5000/halvm; "" keeps images in dist/ only
	Sources   sources.Options  // mirror settings (CacheDir is set from the plan)
	// Official marks a real release: development keys, pending pins and
	// skipped stages are refused. A run that is not official is a trial.
	Official bool
	Log      io.Writer // one line per stage, progress; nil is silent
	// Keep is how many live publications each repository keeps (0: 5).
	Keep int
	// VerifyCache is the verification's download cache (HALVM_VERIFY_CACHE);
	// "" is <cache>/verify.
	VerifyCache string
	// CacheRegistry, when set, is the shared cache (HALVM_CACHE_REGISTRY)
	// behind the local input and toolchain step caches. The
	// reproducibility rebuild never gets it (see Rebuild).
	CacheRegistry *regcache.Cache
	// RebuildFrom, when set, is a finished independent rebuild
	// (RebuildIndependently's outDir, HALVM_REBUILD_FROM) the verification
	// compares with, instead of rebuilding itself.
	RebuildFrom string
	// ThrowawayRegistry says Registry is new in every run and gone after
	// it (the demo's): where images are pushed is then no input of a
	// stage, and a re-run pushes what it reuses there again.
	ThrowawayRegistry bool

	// breakStage, set by tests, makes the named stage fail deliberately.
	breakStage string
	// skipRequired lets a run skip required stages: set only by the
	// reproducibility rebuild (a child process of verify that builds in
	// scratch, compares bytes and never signs or publishes) and by tests
	// that cover sign and verify elsewhere (TestDemo). Such a run is still
	// a snapshot, never switched live.
	skipRequired bool
}

// runner holds a run's options and the typed results each stage hands to
// the stages after it beyond the ledger (results): every stage reads its
// inputs through its own input function (preflightInput, packagesInput,
// ...), which fails at the stage's start, naming what is missing, which
// stage makes it and what became of that stage. Each stage lives in its
// own file, stage_<name>.go.
type runner struct {
	o   Options
	out results

	tools map[string]string // host package versions by stage (hostTools)
}

// results are the typed results of the stages, each nil until its stage
// ran or, unchanged since an earlier run, was restored from that run's
// memo in the ledger (pipeline.Reuse.Restore).
type results struct {
	preflight *preflightResult
	sources   *sourcesResult
	toolchain *toolchainResult
	image     *imageResult
	repos     *reposResult
	sign      *signResult
	publish   *publishResult
}

// Stages is the release, in order.
func (r *runner) Stages() []pipeline.Stage {
	return []pipeline.Stage{
		{Name: "preflight", Required: true, Why: "it checks the lock, the keys and the host tools before anything is built or signed", Run: r.preflight, Doc: "lock valid and complete, keys usable, host tools present"},
		{Name: "sources", Run: r.sources, Doc: "fetch and verify every pinned input, check out the source tree"},
		{Name: "toolchain", Run: r.toolchain, Reuse: r.toolchainReuse(), Doc: "build the toolchain of each flavour with every RTS way (step cache)"},
		{Name: "packages", Needs: []string{"sources", "toolchain"}, Run: r.packages, Reuse: r.reuseOf("packages", nil, pipeline.Reuse{}), Doc: "signed, reproducible .deb and .rpm of each flavour and the keyring"},
		{Name: "image", Needs: []string{"packages"}, Run: r.image, Reuse: r.imageReuse(), Doc: "OCI image of each flavour from the same .deb, pushed by digest (untagged)"},
		{Name: "sbom", Needs: []string{"toolchain", "packages"}, Run: r.sbom, Reuse: r.reuseOf("sbom", nil, pipeline.Reuse{}), Doc: "SPDX, CycloneDX and SLSA provenance of each flavour"},
		{Name: "repos", Needs: []string{"preflight", "packages"}, Run: r.repos, Reuse: r.reposReuse(), Doc: "stage signed apt and dnf publications (not live yet)"},
		{Name: "sign", Needs: []string{"preflight"}, Required: true, Why: "nothing unsigned is staged: images, attestations and SHA256SUMS are signed in every run", Run: r.sign, Reuse: r.signReuse(), Doc: "cosign signatures and attestations on the images; signed SHA256SUMS"},
		{Name: "verify", Needs: []string{"preflight", "repos"}, Required: true, Why: "nothing unverified is staged for anyone to look at, nor published", Run: r.verify, Doc: "the verification suite on the staged release"},
		{Name: "publish", Needs: []string{"preflight", "repos"}, Run: r.publish, Reuse: r.publishReuse(), Doc: "switch the repositories live and tag the images; a snapshot (a run that skipped stages) stays staged"},
	}
}

// Stages lists the release's stages (for plan and -h).
func Stages() []pipeline.Stage { return (&runner{}).Stages() }

// Run runs the release. The ledger is written to dist/ledger.json whatever
// happens, so a failed run shows which stage failed and why.
func Run(ctx context.Context, p pipeline.Plan, o Options) (*pipeline.Ledger, error) {
	if o.Official && len(p.Skipped()) > 0 {
		return nil, fmt.Errorf("an official release skips no stage (HALVM_SKIP names %s): unset HALVM_SKIP, or run a trial (HALVM_OFFICIAL unset)", strings.Join(p.Skipped(), ", "))
	}
	if err := os.MkdirAll(p.OutDir(), 0o755); err != nil {
		return nil, err
	}
	// dist/ holds the publish root by default: a web server's
	// unprivileged workers must traverse it whatever the umask.
	if err := os.Chmod(p.OutDir(), 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	// History is only what went live: what an earlier run staged and
	// never switched live (it failed, or was a snapshot) goes now.
	// Except what a run that failed at publish staged and verified: a
	// resumed run publishes exactly that when nothing changed.
	prev := previousLedger(p, logf)
	if o.RepoRoot != "" {
		kept := keptForResume(prev)
		removed, err := repos.RemoveUnpublishedExcept(repos.Config{Root: o.RepoRoot}, kept)
		if len(removed) > 0 {
			logf("%-12s removed %s, staged by an earlier run and never live", "start", strings.Join(removed, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("removing publications an earlier run staged and never made live: %w", err)
		}
		if kept != (repos.Staged{}) {
			logf("%-12s kept apt/%s and dnf/%s, staged and verified by the run that failed at publish, for this one to publish", "start", kept.Apt, kept.Dnf)
		}
	}
	ev, err := os.OpenFile(filepath.Join(p.OutDir(), "events.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer ev.Close()
	r := &runner{o: o}
	var l pipeline.Ledger
	stages := r.Stages()
	for i := range stages {
		if o.skipRequired {
			stages[i].Required = false
		}
		if stages[i].Name == o.breakStage {
			stages[i].Reuse = nil
			stages[i].Run = func(context.Context, pipeline.Plan, *pipeline.Ledger) error {
				return errors.New("deliberately broken (test)")
			}
		}
	}
	runErr := pipeline.Run(ctx, p, stages, &l, pipeline.Options{Log: o.Log, Events: pipeline.NewEventLog(ev), Previous: prev})
	failedAt, _ := pipeline.IsStageError(runErr)
	switch staged := unpublishedOf(r.reposConfig(p, nil), r.out.repos.stagedOrNone()); {
	case runErr == nil || staged == (repos.Staged{}):
	case failedAt == "publish":
		// Verified, not live: the next run publishes them if nothing
		// changed (and removes them otherwise).
		logf("%-12s kept this run's staged, verified publications apt/%s and dnf/%s: a re-run publishes them if nothing changed", "cleanup", staged.Apt, staged.Dnf)
	default:
		// A failed run leaves nothing in publications/ that never went live.
		if err := repos.Discard(r.reposConfig(p, nil), staged); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("removing this failed run's staged publications: %w", err))
		} else {
			logf("%-12s removed this failed run's staged publications apt/%s and dnf/%s", "cleanup", staged.Apt, staged.Dnf)
		}
	}
	if err := l.WriteFile(p.LedgerPath()); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing the ledger: %w", err)
	}
	return &l, runErr
}
