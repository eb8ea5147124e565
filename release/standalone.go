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
	return VerifyBuiltWith(ctx, getenv, progress, VerifyOptions{})
}

// VerifyOptions tune VerifyBuiltWith.
type VerifyOptions struct {
	// Select chooses the checks to run (verify.Options.Select); nil runs
	// all. A required check not selected fails the verification.
	Select func(verify.Check) bool
	// Log receives the summary; nil means progress.
	Log io.Writer
}

// VerifyBuiltWith is VerifyBuilt with options. Every path resolves against
// HALVM_OUT and the publish root (HALVM_REPO_ROOT when set, else
// HALVM_OUT/repos): the repositories verified are what `current` points
// at there, the tree users are served. The report is written as the
// verification starts (status running) and at its end; a verification
// that stops early leaves a failing report naming the cause.
func VerifyBuiltWith(ctx context.Context, getenv func(string) string, progress io.Writer, vo VerifyOptions) (err error) {
	out := absPath(config.Get(getenv, "HALVM_OUT"))
	reportPath := filepath.Join(out, "verify.json")
	var env *verify.Env
	finished := false
	defer func() {
		if err != nil && !finished {
			if _, serr := os.Stat(out); serr != nil {
				return // no release there: nothing to write a report into
			}
			if werr := verify.WriteAborted(reportPath, env, err); werr != nil {
				err = errors.Join(err, fmt.Errorf("writing the verification report %s: %w", reportPath, werr))
			}
		}
	}()
	if _, serr := os.Stat(out); serr == nil {
		if werr := verify.WriteRunning(reportPath, nil, nil); werr != nil {
			return fmt.Errorf("writing the verification report %s: %w", reportPath, werr)
		}
	}
	repoRoot := getenv("HALVM_REPO_ROOT")
	if repoRoot == "" {
		repoRoot = filepath.Join(out, "repos")
	}
	env, err = verify.LoadEnvAt(out, absPath(repoRoot), "")
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
	} else if err := env.AddInput("lock", cfgPlan.LockPath); err != nil {
		errs = append(errs, err)
	}
	c := checks.Config{Lock: lock, Skipped: map[string]string{}, ServedRoot: env.RepoRoot}
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
	} else if err := env.AddInput("archive-public-key", getenv("HALVM_PGP_PUBLIC_KEY_FILE")); err != nil {
		errs = append(errs, err)
	}
	if c.CosignKey, err = readPublicKey(getenv, "HALVM_COSIGN_PUBLIC_KEY_FILE", demoKeys); err != nil {
		if _, skipped := c.Skipped["sign"]; !skipped {
			errs = append(errs, err)
		}
	} else if err := env.AddInput("cosign-public-key", getenv("HALVM_COSIGN_PUBLIC_KEY_FILE")); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	env.CacheDir = config.VerifyCacheDir(getenv, cfgPlan.CacheDir)
	// What users get: the publications `current` points at. When nothing
	// is served the served-tree check says so; the other checks then read
	// the ledger's publications.
	for _, r := range []struct {
		sub string
		dir *string
	}{{"apt", &c.AptDir}, {"dnf", &c.DnfDir}} {
		if d, err := checks.ServedPublication(filepath.Join(env.RepoRoot, r.sub)); err == nil {
			*r.dir = d
			env.SetPath(r.sub+"-publication", d)
		}
	}
	apt := c.AptDir
	if apt == "" {
		apt, _ = checks.AptPublication(env)
	}
	if apt != "" {
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
	if dir := getenv(config.RebuildFromVar); dir != "" {
		c.Rebuild = adoptRebuild(dir)
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
	log := vo.Log
	if log == nil {
		log = progress
	}
	finished = true
	return verify.Verify(ctx, env, checks.Suite(c), verify.Options{Progress: progress, Log: log, Select: vo.Select, ReportPath: reportPath})
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
