package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
	"github.com/halvm/halvm-release/verify/vsa"
)

// VerifyBuilt runs the verification suite on a release already built in
// HALVM_OUT (`go run mage.go verify`), configured by c
// (config.LoadVerification), trusting only the public keys it is given
// (HALVM_PGP_PUBLIC_KEY_FILE, HALVM_COSIGN_PUBLIC_KEY_FILE). It writes
// HALVM_OUT/verify.json and returns an error on any failure or any
// required check not run.
//
// The reproducibility rebuild needs the lock (HALVM_LOCK, or the
// sample.lock a demo leaves in HALVM_OUT) and no private key: it signs
// with the release's own published signatures where they verify over the
// rebuilt bytes (pgp.PublishedSignatures), checked with the public key.
// Images are pulled by digest from the registry the ledger
// records; a demo's throwaway registry is re-served from the signed
// images the release saved (ServeSavedImages).
func VerifyBuilt(ctx context.Context, c config.Verification, progress io.Writer) error {
	return VerifyBuiltWith(ctx, c, progress, VerifyOptions{})
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
func VerifyBuiltWith(ctx context.Context, vc config.Verification, progress io.Writer, vo VerifyOptions) (err error) {
	out := vc.OutDir
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
	env, err = verify.LoadEnvAt(out, vc.RepoRoot, "")
	if err != nil {
		return err
	}
	var errs []error
	cfgPlan, lock, lerr := vc.Config, vc.Lock, vc.LockErr
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
	if c.ArchiveKey, err = readPublicKey(vc.ArchivePublicKeyFile, "HALVM_PGP_PUBLIC_KEY_FILE", demoKeys); err != nil {
		errs = append(errs, err)
	} else if err := env.AddInput("archive-public-key", vc.ArchivePublicKeyFile); err != nil {
		errs = append(errs, err)
	}
	if c.CosignKey, err = readPublicKey(vc.CosignPublicKeyFile, "HALVM_COSIGN_PUBLIC_KEY_FILE", demoKeys); err != nil {
		if _, skipped := c.Skipped["sign"]; !skipped {
			errs = append(errs, err)
		}
	} else if err := env.AddInput("cosign-public-key", vc.CosignPublicKeyFile); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	env.CacheDir = vc.CacheDir
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
		plan, err := pipeline.NewPlan(cfgPlan)
		if err != nil {
			return err
		}
		if vc.MirrorErr != nil {
			return vc.MirrorErr
		}
		o := Options{Lock: lock, RepoURL: vc.RepoURL, Sources: sources.Options{MirrorDir: vc.Mirror.Dir, MirrorMap: vc.Mirror.Map}}
		c.Rebuild = func(ctx context.Context, outDir string, v checks.Variation, from checks.Publications) error {
			return Rebuild(ctx, plan, o, outDir, v, from)
		}
	}
	if dir := vc.RebuildFrom; dir != "" {
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
	verr := verify.Verify(ctx, env, checks.Suite(c), verify.Options{Progress: progress, Log: log, Select: vo.Select, ReportPath: reportPath})
	if ks := vc.VSAKey; ks.KeyFile != "" && lock != nil {
		id := fmt.Sprintf("%s-%d", lock.Release.Version, cfgPlan.Release)
		resource := strings.TrimRight(vc.RepoURL, "/") + "/files/" + id + "/"
		p, err := WriteSummary(env, reportPath, ks, vc.VerifierID, resource, time.Now())
		if err != nil {
			return errors.Join(verr, err)
		}
		fmt.Fprintf(log, "verification summary (SLSA VSA, %s): %s\n  check it: cosign verify-blob-attestation --key <the verifier's public key> --insecure-ignore-tlog --type %s --signature %s %s\n",
			map[bool]string{true: "PASSED", false: "FAILED"}[verr == nil], p, vsa.PredicateType, p, filepath.Join(out, sbom.SumsName))
	}
	return verr
}

// SummaryName is the signed verification summary beside the report.
const SummaryName = "verify.vsa.json"

// WriteSummary writes the signed SLSA verification summary of the
// verification whose report is reportPath (verify.json) next to it: one
// subject per file of the release's SHA256SUMS and SHA256SUMS itself, each
// with its verdict (vsa.FromReport), signed with the verifier's cosign key
// ks. The summary is written whether the verification passed or failed.
func WriteSummary(env *verify.Env, reportPath string, ks cosign.KeySource, verifierID, resourceURI string, now time.Time) (string, error) {
	fail := func(err error) (string, error) { return "", fmt.Errorf("the verification summary: %w", err) }
	sv, err := cosign.LoadSigner(ks)
	if err != nil {
		return fail(fmt.Errorf("the verifier's key (HALVM_VSA_KEY_FILE): %w", err))
	}
	rep, err := os.ReadFile(reportPath)
	if err != nil {
		return fail(err)
	}
	as := env.Ledger.Find(pipeline.KindChecksums, "")
	if len(as) == 0 {
		return fail(errors.New("the release records no SHA256SUMS: nothing to summarise"))
	}
	sumsPath := env.Path(as[0].Path)
	data, err := os.ReadFile(sumsPath)
	if err != nil {
		return fail(err)
	}
	parsed, err := sbom.ParseSums(data)
	if err != nil {
		return fail(err)
	}
	var sums []vsa.Sum
	for _, s := range parsed {
		sums = append(sums, vsa.Sum{Name: s.Name, SHA256: s.SHA256})
	}
	_, sumsDigest, err := fsutil.HashFile(sumsPath)
	if err != nil {
		return fail(err)
	}
	in, err := vsa.FromReport(vsa.Input{VerifierID: verifierID, TimeVerified: now.UTC().Truncate(time.Second), ResourceURI: resourceURI,
		PolicyURI: "https://github.com/halvm/halvm-release/blob/main/RELEASE.md#5-what-verify-checks"}, rep, sums, sumsDigest)
	if err != nil {
		return fail(err)
	}
	st, err := vsa.Statement(in)
	if err != nil {
		return fail(err)
	}
	envelope, err := vsa.Sign(st, sv)
	if err != nil {
		return fail(err)
	}
	p := filepath.Join(filepath.Dir(reportPath), SummaryName)
	if err := fsutil.WriteFileAtomic(p, envelope, 0o644); err != nil {
		return fail(err)
	}
	return p, nil
}

// readPublicKey reads the public key file p the variable named. There is
// no fallback: the verification trusts only the key it is given.
func readPublicKey(p, variable, demoKeys string) ([]byte, error) {
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
