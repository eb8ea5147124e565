// Package checks owns the release verification suite's real checks: the
// signature, consistency, served-tree, reproducibility, install, upgrade,
// image and boot checks that run against a release directory (dist/) and
// its staged or live repositories with only the pinned public keys. The
// framework (verify.Check, the runner, the report) is package verify;
// Suite returns the list the release's verify stage and `go run mage.go
// verify` run.
package checks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/verify"
)

// SuiteVersion changes whenever what a check verifies changes: a verdict
// recorded by another version is never reused (release: verify resumes).
const SuiteVersion = "checks-1"

// Config is what the suite verifies against.
type Config struct {
	// AptDir and DnfDir are the repository publications to verify (the
	// staged ones during a release). Empty means the ledger's apt-repo and
	// dnf-repo artifacts.
	AptDir, DnfDir string
	// ArchiveKey is the pinned archive public key (armored or binary): it
	// must verify Release, repomd.xml, every rpm and SHA256SUMS.asc.
	ArchiveKey []byte
	// CosignKey is the pinned cosign public key (PEM): SHA256SUMS.sig,
	// image signatures and attestations.
	CosignKey []byte
	// Lock is the lock the release was built from (SBOM consistency).
	Lock *pins.Lock
	// Skipped are the stages this snapshot skipped, with why: checks of
	// what those stages make are then optional and not run, saying so. A
	// release with no skips has every check required.
	Skipped map[string]string
	// Rebuild, when set, rebuilds the release from the lock into outDir
	// under the varied conditions of vary, staging its repositories on top
	// of copies of the publications from (reproducibility check); nil
	// leaves the reproducibility check not run (and failing: it is
	// required).
	Rebuild func(ctx context.Context, outDir string, vary Variation, from Publications) error
	// Flavours are the flavours the release built.
	Flavours []string
	// Programs are the unikernels the boot checks compile and boot; nil
	// is DefaultPrograms (Hello and Null).
	Programs []Program
	// PreviousAptDir is the apt publication of the release before this
	// one (PreviousPublication), the upgrade checks' starting point; ""
	// for a first release, whose upgrade checks are then optional and
	// not run, saying so.
	PreviousAptDir string
	// ServedRoot is the publish root whose served tree (apt/current,
	// dnf/current, files/current) `go run mage.go verify` checks; "" in a
	// release's verify stage, which checks the staged publications before
	// they go live.
	ServedRoot string
}

// stageRan is a prerequisite that the stage making what a check verifies
// was not skipped in this (snapshot) run.
func (c Config) stageRan(stages ...string) verify.Prereq {
	return verify.Prereq{
		What:   "the " + strings.Join(stages, " and ") + " stage(s) of this run",
		Remedy: "run the release without HALVM_SKIP for those stages",
		Check: func(context.Context) error {
			var why []string
			for _, s := range stages {
				if r, ok := c.Skipped[s]; ok {
					why = append(why, fmt.Sprintf("stage %s was skipped in this snapshot (%s)", s, r))
				}
			}
			if len(why) > 0 {
				return fmt.Errorf("%s", strings.Join(why, "; "))
			}
			return nil
		},
	}
}

// requiredUnless is false when any of stages was skipped (a snapshot).
func (c Config) requiredUnless(stages ...string) bool {
	for _, s := range stages {
		if _, ok := c.Skipped[s]; ok {
			return false
		}
	}
	return true
}

// Suite is the verification suite, in report order.
func Suite(c Config) []verify.Check {
	var out []verify.Check
	out = append(out, signatureChecks(c)...)
	out = append(out, consistencyChecks(c)...)
	out = append(out, servedChecks(c)...)
	out = append(out, reproducibilityChecks(c)...)
	out = append(out, installChecks(c)...)
	out = append(out, upgradeChecks(c)...)
	out = append(out, imageChecks(c)...)
	out = append(out, bootChecks(c)...)
	return out
}

// repoDir resolves a repository publication: the configured directory, or
// the ledger's artifact of kind, relative to the publish root
// (Env.RepoRoot; LoadEnv refused one that leaves it).
func repoDir(env *verify.Env, configured string, kind pipeline.Kind) (string, error) {
	if configured != "" {
		return configured, nil
	}
	as, err := env.Artifacts(kind, "")
	if err != nil {
		return "", err
	}
	p := env.RepoPath(as[0].Path)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the %s publication %s recorded in the ledger is not under the publish root %s (looked in %s): give the publish root (HALVM_REPO_ROOT)", kind, as[0].Path, env.RepoRoot, p)
	}
	return p, nil
}

// keyForms returns the archive key as a binary keyring (gpgv and
// rpmkeys accept it; gpgv does not read armored keyrings everywhere) and
// armored (rpmkeys --import).
func keyForms(pub []byte) (binary, armored []byte, fingerprints []string, err error) {
	var el openpgp.EntityList
	if bytes.Contains(pub, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(pub))
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the archive public key: %w (give the pinned archive public key, HALVM_PGP_PUBLIC_KEY_FILE)", err)
	}
	if len(el) == 0 {
		return nil, nil, nil, fmt.Errorf("reading the archive public key: no key in it")
	}
	var bin, arm bytes.Buffer
	w, err := armor.Encode(&arm, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, e := range el {
		if err := e.Serialize(&bin); err != nil {
			return nil, nil, nil, fmt.Errorf("serializing the archive public key: %w", err)
		}
		if err := e.Serialize(w); err != nil {
			return nil, nil, nil, fmt.Errorf("serializing the archive public key: %w", err)
		}
		fingerprints = append(fingerprints, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
	}
	if err := w.Close(); err != nil {
		return nil, nil, nil, err
	}
	sort.Strings(fingerprints)
	return bin.Bytes(), arm.Bytes(), fingerprints, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
