package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/release"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// Verify runs the verification suite on a built release (HALVM_OUT) with only the public keys; exits non-zero on any failure.
//
// Reads dist/ledger.json and the repositories it records, the archive
// public key (HALVM_PGP_PUBLIC_KEY_FILE) and the cosign public key
// (HALVM_COSIGN_PUBLIC_KEY_FILE), and writes dist/verify.json. Downloads
// (the clean Debian rootfs template, the Xen machine) are cached in
// HALVM_VERIFY_CACHE (default <HALVM_CACHE>/verify); with that cache warm
// nothing but 127.0.0.1 is reached. The images are pulled by digest from
// the registry the ledger records, which must be up. It reaches
// no network beyond 127.0.0.1. The reproducibility rebuild needs the lock
// (HALVM_LOCK, or dist/sample.lock of a demo) and the archive signing key
// (HALVM_PGP_KEY_FILE): signed packages are only reproduced with their key;
// without it that required check does not run and the verification fails.
func Verify(ctx context.Context) error {
	out := config.Get(os.Getenv, "HALVM_OUT")
	env, err := verify.LoadEnv(out, "")
	if err != nil {
		return err
	}
	getenv := os.Getenv
	demoLock := filepath.Join(out, "sample.lock")
	if os.Getenv("HALVM_LOCK") == "" {
		if _, err := os.Stat(demoLock); err == nil {
			getenv = func(k string) string {
				if k == "HALVM_LOCK" {
					return demoLock
				}
				return os.Getenv(k)
			}
		}
	}
	var errs []error
	cfgPlan, lock, lerr := config.Load(getenv)
	if lerr != nil {
		errs = append(errs, fmt.Errorf("the lock: %w", lerr))
	}
	c := checks.Config{Lock: lock, Skipped: map[string]string{}}
	for _, s := range env.Ledger.Stages() {
		if s.Status == pipeline.Skipped {
			c.Skipped[s.Name] = s.Reason
		}
	}
	flavours := map[string]bool{}
	for _, a := range env.Ledger.Find(pipeline.KindDeb, "") {
		if a.Flavour != "" && !flavours[a.Flavour] {
			flavours[a.Flavour] = true
			c.Flavours = append(c.Flavours, a.Flavour)
		}
	}
	demoKeys := filepath.Join(cfgPlan.CacheDir, "dev-keys")
	if c.ArchiveKey, err = readKeyFile("HALVM_PGP_PUBLIC_KEY_FILE", demoKeys); err != nil {
		errs = append(errs, err)
	}
	if c.CosignKey, err = readKeyFile("HALVM_COSIGN_PUBLIC_KEY_FILE", demoKeys); err != nil {
		if _, skipped := c.Skipped["sign"]; !skipped {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	env.CacheDir = release.VerifyCacheDir(cfgPlan.CacheDir)
	if lock != nil {
		if ks := config.PGPKey(getenv); ks.File != "" || ks.Env != "" {
			plan, err := pipeline.NewPlan(cfgPlan)
			if err != nil {
				return err
			}
			m, err := config.MirrorFromEnv(getenv)
			if err != nil {
				return err
			}
			// The registry name is part of the images' bytes: the one
			// the release pushed to, unless HALVM_REGISTRY says.
			registry := config.Get(getenv, "HALVM_REGISTRY")
			for _, a := range env.Ledger.Find(pipeline.KindOCIImage, "") {
				if i := strings.LastIndex(a.Ref, "/"); registry == "" && i > 0 {
					registry = a.Ref[:i]
				}
			}
			o := release.Options{Lock: lock, PGPKey: ks, CosignKey: config.CosignKey(getenv), Registry: registry,
				RepoURL: config.Get(getenv, "HALVM_REPO_URL"), Sources: sources.Options{MirrorDir: m.Dir, MirrorMap: m.Map}}
			c.Rebuild = func(ctx context.Context, outDir string, v checks.Variation) error {
				return release.Rebuild(ctx, plan, o, outDir, v)
			}
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return verify.Verify(ctx, env, checks.Suite(c), verify.Options{Progress: os.Stderr})
}

// readKeyFile reads the public key file named by the variable. There is
// no fallback: the verification trusts only the key it is given.
func readKeyFile(variable, demoKeys string) ([]byte, error) {
	p := os.Getenv(variable)
	if p == "" {
		return nil, fmt.Errorf("%s is not set: give the pinned public key to verify with (a demo's development keys are in %s)", variable, demoKeys)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	if variable == "HALVM_PGP_PUBLIC_KEY_FILE" {
		if _, err := pgp.ReadKeyring(b); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", variable, p, err)
		}
	}
	return b, nil
}
