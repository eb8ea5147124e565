package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

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
		RealLock: lock, Skip: release.DemoSkips, Fresh: cfg.Fresh, Addr: config.Get(os.Getenv, "HALVM_REPO_ADDR"), Log: os.Stderr, Install: install}, nil
}

// Release runs every stage from the lock to a verified, published release.
//
// Configuration comes from the environment (`go run mage.go env`). With
// HALVM_SKIP the run is a snapshot (staged, never switched live);
// HALVM_OFFICIAL=1 (or true, yes) refuses skips, pending pins and
// development keys.
func Release(ctx context.Context) error {
	plan, lock, err := config.Plan(os.Getenv)
	if err != nil {
		return err
	}
	official, err := config.Official(os.Getenv)
	if err != nil {
		return err
	}
	keep, err := config.Keep(os.Getenv)
	if err != nil {
		return err
	}
	m, err := config.MirrorFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	_, err = release.Run(ctx, plan, release.Options{Lock: lock, PGPKey: config.PGPKey(os.Getenv), CosignKey: config.CosignKey(os.Getenv),
		RepoRoot: config.Get(os.Getenv, "HALVM_REPO_ROOT"), RepoURL: config.Get(os.Getenv, "HALVM_REPO_URL"), Registry: config.Get(os.Getenv, "HALVM_REGISTRY"),
		Sources: sources.Options{MirrorDir: m.Dir, MirrorMap: m.Map}, Official: official, Keep: keep,
		VerifyCache: config.VerifyCacheDir(os.Getenv, plan.CacheDir()), Log: os.Stderr})
	return err
}

// Plan prints the release's stages and every toolchain step with its cache hit or miss and why, running nothing.
func Plan(ctx context.Context) error {
	plan, lock, err := config.Plan(os.Getenv)
	if err != nil {
		return err
	}
	for i, s := range release.Stages() {
		state := "runs"
		if why, ok := plan.SkipReason(s.Name); ok {
			state = "SKIPPED: " + why
		}
		fmt.Printf("%2d. %-10s %s [%s]\n", i+1, s.Name, s.Doc, state)
	}
	m, err := config.MirrorFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	for _, fl := range plan.Flavours() {
		fmt.Printf("\ntoolchain %s:\n", fl)
		c := release.ToolchainConfig(plan, lock, fl)
		c.Mirror = m.Dir // which steps can run here counts the mirror's git sources
		if err := toolchain.Plan(ctx, os.Stdout, c); err != nil {
			return err
		}
	}
	return nil
}

// Toolchain builds the toolchain of each flavour (HALVM_FLAVOURS) through the step cache.
//
// Against the real lock on a machine that cannot reach the upstream hosts it
// fails before the first step, saying what is unreachable and the remedy.
func Toolchain(ctx context.Context) error {
	plan, lock, err := config.Plan(os.Getenv)
	if err != nil {
		return err
	}
	for _, fl := range plan.Flavours() {
		c := release.ToolchainConfig(plan, lock, fl)
		c.Log = os.Stderr
		res, err := toolchain.Build(ctx, c)
		if err != nil {
			return err
		}
		fmt.Printf("toolchain %s: %s (manifest %s)\n", fl, res.StageDir, filepath.Base(res.Manifest))
	}
	return nil
}
