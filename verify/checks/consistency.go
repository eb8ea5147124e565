package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/rpm"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
)

// Names of the consistency checks.
const (
	CheckLedgerDigests = "ledger-digests"
	CheckAptIndex      = "apt-repository-index"
	CheckDnfIndex      = "dnf-repository-index"
	checkSBOMPrefix    = "sbom-"
)

// CheckSBOM is the name of the SBOM consistency check of a flavour.
func CheckSBOM(flavour string) string { return checkSBOMPrefix + flavour }

func consistencyChecks(c Config) []verify.Check {
	out := []verify.Check{
		{
			Name: CheckLedgerDigests, Family: verify.Consistency, Required: true,
			Doc: "every file the ledger records has its recorded size and sha256",
			Run: ledgerDigests,
		},
		{
			Name: CheckAptIndex, Family: verify.Consistency, Required: true,
			Doc: "Release, Packages and the pool agree (debian.Verify) and hold the ledger's .debs byte for byte",
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.AptDir, pipeline.KindAptRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return aptIndex(env, dir, c.ArchiveKey)
			},
		},
		{
			Name: CheckDnfIndex, Family: verify.Consistency, Required: true,
			Doc: "repomd, primary and the packages agree (rpm.Verify) and hold the ledger's .rpms byte for byte",
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.DnfDir, pipeline.KindDnfRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return dnfIndex(env, dir, c.ArchiveKey)
			},
		},
	}
	out = append(out, imageDebsCheck(c))
	for _, fl := range c.Flavours {
		fl := fl
		out = append(out, verify.Check{
			Name: CheckSBOM(fl), Family: verify.Consistency, Required: true,
			Doc: "the SPDX document of " + fl + " is valid, the CycloneDX BOM passes the official 1.5 schema, and SPDX, CycloneDX and provenance agree with the lock and the ledger (sbom.Check)",
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				return sbomConsistency(ctx, env, c, fl)
			},
		})
	}
	return out
}

func ledgerDigests(_ context.Context, env *verify.Env) (verify.Evidence, error) {
	if env.Ledger == nil {
		return verify.Evidence{}, errors.New("no ledger loaded")
	}
	var ev verify.Evidence
	var errs []error
	for _, a := range env.Ledger.Artifacts() {
		if a.Path == "" || a.SHA256 == "" || a.Kind == pipeline.KindSource || a.Kind == pipeline.KindOCIImage || a.Kind == pipeline.KindReport {
			continue // sources live in the cache, images in a registry; reports are rewritten by each verification
		}
		f, err := env.Open(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.Close()
		ev.Checked++
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("%d ledger artifact(s) differ from their files:\n%w", len(errs), errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("%d files in %s have the size and sha256 the ledger records", ev.Checked, filepath.Base(env.Dist))
	return ev, nil
}

// sameBytes checks that the repository holds each ledger artifact of kind
// with the ledger's digest, found by base name anywhere under dir.
func sameBytes(env *verify.Env, dir string, kind pipeline.Kind) (int, []error) {
	byName := map[string][]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			byName[d.Name()] = append(byName[d.Name()], p)
		}
		return nil
	})
	n := 0
	var errs []error
	as, err := env.Artifacts(kind, "")
	if err != nil {
		return 0, []error{err}
	}
	for _, a := range as {
		base := filepath.Base(a.Path)
		paths := byName[base]
		if len(paths) == 0 {
			errs = append(errs, fmt.Errorf("%s %s (%s) is not in the repository %s", kind, a.Name, base, dir))
			continue
		}
		for _, p := range paths {
			size, sum, err := fsutil.HashFile(p)
			switch {
			case err != nil:
				errs = append(errs, err)
			case size != a.Size || sum != a.SHA256:
				errs = append(errs, fmt.Errorf("%s in the repository is sha256 %s (%d bytes), the ledger's %s is %s (%d bytes)", p, sum, size, a.Name, a.SHA256, a.Size))
			default:
				n++
			}
		}
	}
	return n, errs
}

func aptIndex(env *verify.Env, dir string, pub []byte) (verify.Evidence, error) {
	res, err := debian.Verify(dir, pub)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	n, berrs := sameBytes(env, dir, pipeline.KindDeb)
	errs = append(errs, berrs...)
	if len(errs) > 0 {
		return verify.Evidence{Checked: n}, fmt.Errorf("the apt repository is inconsistent:\n%w", errors.Join(errs...))
	}
	var ids []string
	for _, p := range res.Packages {
		ids = append(ids, p.ID())
	}
	ev := verify.Checked(len(res.Files)+n, "%d repository files and %d packages agree with Release/Packages; the %d ledger .debs are in the pool byte for byte", len(res.Files), len(res.Packages), n)
	ev.Details = ids
	return ev, nil
}

func dnfIndex(env *verify.Env, dir string, pub []byte) (verify.Evidence, error) {
	var errs []error
	if err := rpm.Verify(dir, pub); err != nil {
		errs = append(errs, err)
	}
	n, berrs := sameBytes(env, dir, pipeline.KindRPM)
	errs = append(errs, berrs...)
	if len(errs) > 0 {
		return verify.Evidence{Checked: n}, fmt.Errorf("the dnf repository is inconsistent:\n%w", errors.Join(errs...))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "repodata", "*"))
	return verify.Checked(len(files)+n, "repomd.xml and its %d metadata files agree with the packages; the %d ledger .rpms are in the repository byte for byte", len(files)-1, n), nil
}

func sbomConsistency(ctx context.Context, env *verify.Env, c Config, fl string) (verify.Evidence, error) {
	if c.Lock == nil {
		return verify.Evidence{}, errors.New("no lock given: SBOM consistency is checked against the lock the release was built from (HALVM_LOCK)")
	}
	docs := map[pipeline.Kind][]byte{}
	var errs []error
	for _, k := range []pipeline.Kind{pipeline.KindSPDX, pipeline.KindCycloneDX, pipeline.KindProvenance} {
		as, err := env.Artifacts(k, fl)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(as) != 1 {
			errs = append(errs, fmt.Errorf("%s of %s: want one in the ledger, found %d", k, fl, len(as)))
			continue
		}
		f, err := env.Open(as[0])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.Close()
		b, err := os.ReadFile(env.Path(as[0].Path))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		docs[k] = b
	}
	if len(errs) > 0 {
		return verify.Evidence{}, fmt.Errorf("the SBOMs of %s are incomplete:\n%w", fl, errors.Join(errs...))
	}
	var probs []string
	for _, p := range sbom.ValidateSPDX(docs[pipeline.KindSPDX]) {
		probs = append(probs, "SPDX: "+p.Error())
	}
	if err := sbom.ValidateCycloneDX(ctx, docs[pipeline.KindCycloneDX]); err != nil {
		probs = append(probs, "CycloneDX: "+err.Error())
	}
	for _, p := range sbom.Check(c.Lock, env.Ledger, docs[pipeline.KindSPDX], docs[pipeline.KindCycloneDX], docs[pipeline.KindProvenance]) {
		probs = append(probs, p.Error())
	}
	if len(probs) > 0 {
		return verify.Evidence{}, fmt.Errorf("the SBOMs of %s: %d problem(s):\n%s", fl, len(probs), strings.Join(probs, "\n"))
	}
	return verify.Checked(3, "SPDX (valid), CycloneDX (valid against the official 1.5 schema) and SLSA provenance of %s agree with the lock and the ledger", fl), nil
}
