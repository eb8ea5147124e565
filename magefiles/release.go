package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/release"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/toolchain"
)

// Demo runs the release pipeline offline on the bundled sample upstream with development keys.
//
// First it checks everything the whole run needs from the host and, as
// root on Debian, installs what is missing in one apt-get install
// (HALVM_INSTALL=no only prints the command). Then it generates the sample
// upstream (not the HaLVM: a stand-in with its shape whose build compiles
// real C), runs every stage of `release` unchanged on it, and serves the
// repositories on HALVM_REPO_ADDR while it runs.
func Demo(ctx context.Context) error {
	o, err := demoOptions()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	_, err = release.Demo(ctx, o)
	return err
}

// demoOptions are the demo's options from the environment. As root on
// Debian it installs missing host prerequisites unless HALVM_INSTALL=no.
func demoOptions() (release.DemoOptions, error) {
	cfg, lock, err := config.Load(os.Getenv)
	if err != nil {
		return release.DemoOptions{}, err
	}
	install, err := config.Install(os.Getenv)
	if err != nil {
		return release.DemoOptions{}, err
	}
	return release.DemoOptions{OutDir: cfg.OutDir, CacheDir: cfg.CacheDir, WorkDir: cfg.WorkDir,
		RealLock: lock, Fresh: cfg.Fresh, Addr: config.Get(os.Getenv, "HALVM_REPO_ADDR"), Log: os.Stderr, Install: install}, nil
}

// Release runs every stage from the lock to a verified, published release.
//
// Configuration comes from the environment (`go run mage.go env`). With
// HALVM_SKIP the run is a snapshot (staged, never switched live);
// HALVM_OFFICIAL=1 (or true, yes) refuses skips, pending pins and
// development keys.
func Release(ctx context.Context) error {
	b, err := config.LoadBuild(os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	plan, lock := b.Plan, b.Lock
	official, err := config.Official(os.Getenv)
	if err != nil {
		return err
	}
	keep, err := config.Keep(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	_, err = release.Run(ctx, plan, release.Options{CacheRegistry: b.Registry, RebuildFrom: config.Get(os.Getenv, config.RebuildFromVar), Lock: lock, PGPKey: config.PGPKey(os.Getenv), CosignKey: config.CosignKey(os.Getenv),
		RepoRoot: config.Get(os.Getenv, "HALVM_REPO_ROOT"), RepoURL: config.Get(os.Getenv, "HALVM_REPO_URL"), Registry: config.Get(os.Getenv, "HALVM_REGISTRY"),
		Sources: sources.Options{MirrorDir: b.Mirror.Dir, MirrorMap: b.Mirror.Map}, Official: official, Keep: keep,
		VerifyCache: config.VerifyCacheDir(os.Getenv, plan.CacheDir()), Log: os.Stderr})
	return err
}

// Plan prints the release's stages and every toolchain step with its cache hit or miss and why, running nothing.
func Plan(ctx context.Context) error {
	b, err := config.LoadBuild(os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	plan, lock := b.Plan, b.Lock
	for i, s := range release.Stages() {
		state := "runs"
		if why, ok := plan.SkipReason(s.Name); ok {
			state = "SKIPPED: " + why
		}
		fmt.Printf("%2d. %-10s %s [%s]\n", i+1, s.Name, s.Doc, state)
	}
	for _, fl := range plan.Flavours() {
		fmt.Printf("\ntoolchain %s:\n", fl)
		c := release.ToolchainConfig(plan, lock, fl)
		c.Mirror = b.Mirror.Dir // which steps can run here counts the mirror's git sources
		c.Registry = b.Registry // a step in the shared cache is a hit
		if err := toolchain.Plan(ctx, os.Stdout, c); err != nil {
			return err
		}
	}
	return nil
}

// Toolchain builds the toolchain of each selected flavour in each selected layout (HALVM_FLAVOURS x HALVM_LAYOUTS) through the step cache.
//
// These are the CI matrix's cells: with HALVM_CACHE_REGISTRY every step
// built is pushed to the shared cache (and every step found there is
// pulled instead of built); each cell prints the bytes it pushed and
// pulled. Against the real lock on a machine that cannot reach the
// upstream hosts it fails before the first step, saying what is
// unreachable and the remedy.
func Toolchain(ctx context.Context) error {
	b, err := config.LoadBuild(os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	plan, lock := b.Plan, b.Lock
	layouts, err := config.Layouts(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	cells, err := release.BuildCells(ctx, plan, release.Options{Lock: lock, CacheRegistry: b.Registry, Sources: sources.Options{MirrorDir: b.Mirror.Dir, MirrorMap: b.Mirror.Map}, Log: os.Stderr}, layouts)
	for _, c := range cells {
		fmt.Printf("toolchain %s (%s layout): %s (manifest %s), %d steps ran, %d restored (%d from the shared cache), %d bytes pushed, %d pulled, %s\n",
			c.Flavour, c.Layout, c.Result.StageDir, filepath.Base(c.Result.Manifest), len(c.Result.Ran), len(c.Result.Restored), len(c.Result.Pulled), c.Pushed, c.Pulled, c.Duration.Round(time.Millisecond))
	}
	if b.Registry != nil {
		fmt.Println(b.Registry.Summary())
	}
	return err
}

// Rebuild rebuilds a published release from its URL (<base>/files/<version>-<release>/) with public keys only and writes a report and a signed verification summary.
//
// It fetches the published keyring (<base>/apt/halvm-archive-keyring.gpg)
// and accepts it only with the fingerprint HALVM_PGP_FINGERPRINT (else the
// pinned key HALVM_PGP_PUBLIC_KEY_FILE); downloads SHA256SUMS, its
// signatures (SHA256SUMS.sig checked with HALVM_COSIGN_PUBLIC_KEY_FILE when
// given) and the lock, and refuses before any build when they do not
// verify; downloads every listed file and the apt and dnf repositories;
// rebuilds from the lock exactly as verify's reproducibility check does
// (inputs from HALVM_CACHE/inputs or HALVM_MIRROR, no network for the
// build); and judges every published artifact IDENTICAL or DIFFERS, the
// images by digest in HALVM_REBUILD_REGISTRY when set. Writes
// HALVM_OUT/rebuild-report.txt and, with HALVM_VSA_KEY_FILE (your own
// cosign key), HALVM_OUT/rebuild.vsa.json (SLSA VSA, PASSED or FAILED).
// HALVM_REBUILD_FROM compares with a finished rebuild instead. Exits
// non-zero unless every artifact is IDENTICAL.
func Rebuild(ctx context.Context, url string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return release.RebuildFromURL(ctx, url, config.LoadRemote(os.Getenv), os.Stderr)
}

// Rebuild runs the independent reproducibility rebuild into HALVM_OUT: the CI's rebuild job, beside the toolchain cells.
//
// The same rebuild verify runs (a separate process without network, a
// fresh step cache, varied conditions), from the lock and the inputs in
// HALVM_CACHE/inputs only (run `go run mage.go sources` first). It runs
// before the release exists, so there are no published signatures to
// reuse: it signs with the archive key from a file (HALVM_PGP_KEY_FILE,
// HALVM_PGP_PASSPHRASE_FILE; a rebuild of a published release, `rebuild
// <URL>` or verify, holds no private key). It
// never reads the shared cache: it refuses to run with
// HALVM_CACHE_REGISTRY set. A release then compares with it:
// HALVM_REBUILD_FROM=<this HALVM_OUT> go run mage.go release.
func (CI) Rebuild(ctx context.Context) error {
	b, err := config.LoadBuild(os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	plan, lock := b.Plan, b.Lock
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	err = release.RebuildIndependently(ctx, plan, release.Options{Lock: lock, PGPKey: config.PGPKey(os.Getenv),
		RepoRoot: config.Get(os.Getenv, "HALVM_REPO_ROOT"), RepoURL: config.Get(os.Getenv, "HALVM_REPO_URL"), CacheRegistry: b.Registry,
		Sources: sources.Options{MirrorDir: b.Mirror.Dir, MirrorMap: b.Mirror.Map}}, plan.OutDir())
	if err == nil {
		fmt.Printf("rebuild: %s (compare with it: %s=%s)\n", plan.OutDir(), config.RebuildFromVar, plan.OutDir())
	}
	return err
}
