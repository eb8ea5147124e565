package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// VerifyBuilt runs the verification suite on a release already built in
// HALVM_OUT (`go run mage.go verify`), configured by getenv (the
// variables of config.Vars), trusting only the public keys it is given
// (HALVM_PGP_PUBLIC_KEY_FILE, HALVM_COSIGN_PUBLIC_KEY_FILE). It writes
// HALVM_OUT/verify.json and returns an error on any failure or any
// required check not run.
//
// The reproducibility rebuild needs the lock (HALVM_LOCK, or the
// sample.lock a demo leaves in HALVM_OUT) and the archive signing key
// (HALVM_PGP_KEY_FILE): signed packages are only reproduced with their
// key; without it that required check does not run and the verification
// fails. Images are pulled by digest from the registry the ledger
// records; a demo's throwaway registry is re-served from the signed
// images the release saved (ServeSavedImages).
func VerifyBuilt(ctx context.Context, getenv func(string) string, progress io.Writer) error {
	out := config.Get(getenv, "HALVM_OUT")
	env, err := verify.LoadEnv(out, "")
	if err != nil {
		return err
	}
	if getenv("HALVM_LOCK") == "" {
		demoLock := filepath.Join(out, "sample.lock")
		if _, err := os.Stat(demoLock); err == nil {
			outer := getenv
			getenv = func(k string) string {
				if k == "HALVM_LOCK" {
					return demoLock
				}
				return outer(k)
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
	seen := map[string]bool{}
	for _, a := range env.Ledger.Find(pipeline.KindDeb, "") {
		if a.Flavour != "" && !seen[a.Flavour] {
			seen[a.Flavour] = true
			c.Flavours = append(c.Flavours, a.Flavour)
		}
	}
	demoKeys := filepath.Join(cfgPlan.CacheDir, "dev-keys")
	if c.ArchiveKey, err = readPublicKey(getenv, "HALVM_PGP_PUBLIC_KEY_FILE", demoKeys); err != nil {
		errs = append(errs, err)
	}
	if c.CosignKey, err = readPublicKey(getenv, "HALVM_COSIGN_PUBLIC_KEY_FILE", demoKeys); err != nil {
		if _, skipped := c.Skipped["sign"]; !skipped {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	env.CacheDir = config.VerifyCacheDir(getenv, cfgPlan.CacheDir)
	if apt, err := checks.AptPublication(env); err == nil {
		c.PreviousAptDir = checks.PreviousPublication(apt)
	}
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
			o := Options{Lock: lock, PGPKey: ks, CosignKey: config.CosignKey(getenv),
				RepoURL: config.Get(getenv, "HALVM_REPO_URL"), Sources: sources.Options{MirrorDir: m.Dir, MirrorMap: m.Map}}
			c.Rebuild = func(ctx context.Context, outDir string, v checks.Variation, from checks.Publications) error {
				return Rebuild(ctx, plan, o, outDir, v, from)
			}
		}
	}
	scratch, err := os.MkdirTemp("", "halvm-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	stop, err := ServeSavedImages(ctx, env, scratch, progress)
	if err != nil {
		return err
	}
	defer stop()
	return verify.Verify(ctx, env, checks.Suite(c), verify.Options{Progress: progress})
}

// readPublicKey reads the public key file named by the variable. There is
// no fallback: the verification trusts only the key it is given.
func readPublicKey(getenv func(string) string, variable, demoKeys string) ([]byte, error) {
	p := getenv(variable)
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
