// Package verify owns the release verification suite's core: the model of a
// named check (in the six families Signatures, Consistency,
// Reproducibility, Install, Image and Boot on Xen), the runner that
// evaluates each check's host prerequisites, runs the checks with hard
// timeouts and bounded parallelism, and the report: one human line per
// check on stderr and a JSON report (dist/verify.json).
//
// The suite is honest by construction: a check whose prerequisite is
// missing is "not-run" with the reason and the remedy, never passed; a
// required check that did not run fails the verification; and a check can
// only pass by returning Evidence that names what it verified (a count
// greater than zero and a summary). The individual checks live in
// verify/checks (which calls the packages that own the formats: debian,
// rpm, sbom, oci, verify/xenboot); its Suite is the []Check the release's
// verify stage and `go run mage.go verify` run.
package verify

import (
	"context"
	"errors"
	"fmt"
	"github.com/halvm/halvm-release/verify/vsa"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
)

// Family is one of the six groups of checks, in report order.
type Family int

const (
	Signatures      Family = iota + 1 // every signature verifies with the pinned public keys
	Consistency                       // ledger, checksums, SBOMs and repositories agree with each other
	Reproducibility                   // a rebuild gives the same bytes
	Install                           // the packages install and work with apt and dnf
	Image                             // the OCI image runs and is signed by digest
	Boot                              // a hello unikernel boots on Xen
)

// Families lists the families in report order.
var Families = []Family{Signatures, Consistency, Reproducibility, Install, Image, Boot}

var familyNames = map[Family]string{
	Signatures:      "signatures",
	Consistency:     "consistency",
	Reproducibility: "reproducibility",
	Install:         "install",
	Image:           "image",
	Boot:            "boot",
}

// String is the family's name as the report shows it ("signatures", ...).
func (f Family) String() string {
	if n, ok := familyNames[f]; ok {
		return n
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// Valid reports whether f is one of the six families.
func (f Family) Valid() bool { _, ok := familyNames[f]; return ok }

// Check is one named verification.
type Check struct {
	// Name identifies the check in the report; unique within a suite, e.g.
	// "apt-repository-signature".
	Name   string
	Family Family
	// Doc says in one line what the check proves.
	Doc string
	// Required checks must run and pass: a required check that could not
	// run (missing prerequisite, failed dependency, not selected) fails the
	// whole verification. An optional check that did not run is reported
	// and does not.
	Required bool
	// Needs are host prerequisites evaluated just before the check would
	// run; any missing one makes the check not-run with its reason and
	// remedy.
	Needs []Prereq
	// After names checks that must pass before this one runs (e.g. the
	// install checks after the signature checks). If one of them does not
	// pass, this check is not-run.
	After []string
	// Timeout is the hard limit for Run; 0 means Options.Timeout.
	Timeout time.Duration
	// Run does the work. To pass it must return a nil error and Evidence
	// with Checked > 0 and a Summary; anything less is reported as a
	// failure of the check itself. On failure it returns the error (whose
	// first line is the one-line reason) and may still return Evidence
	// whose Details list what differed.
	Run func(ctx context.Context, env *Env) (Evidence, error)
}

// Evidence is what a check verified: the count of things it checked
// (signatures, files, packages, entries), a one-line summary naming them,
// and optionally a listing.
type Evidence struct {
	Checked int
	Summary string
	Details []string
	// Verdicts are per-artifact verdicts, for a check that judges each
	// artifact (the reproducibility rebuild): what a verification
	// summary (verify/vsa) says of each.
	Verdicts []vsa.Artifact
}

// Checked is a shorthand for Evidence{Checked: n, Summary: fmt.Sprintf(...)}.
func Checked(n int, format string, a ...any) Evidence {
	return Evidence{Checked: n, Summary: fmt.Sprintf(format, a...)}
}

// problem returns why e is not enough evidence for a pass, or "".
func (e Evidence) problem() string {
	var p []string
	if e.Checked <= 0 {
		p = append(p, fmt.Sprintf("it checked %d things", e.Checked))
	}
	if strings.TrimSpace(e.Summary) == "" {
		p = append(p, "it gave no summary of what it verified")
	}
	if len(p) == 0 {
		return ""
	}
	return "the check returned success without evidence (" + strings.Join(p, "; ") +
		"): a check must report what it verified; this is a defect of the check"
}

// Env is what checks read: the release directory and its ledger, the
// publish root of the repositories, a cache directory for downloads, and a
// per-check scratch directory.
//
// Every path the ledger records is relative: to Dist, or, for the
// repository publications (apt-repo, dnf-repo), to RepoRoot. LoadEnv
// refuses a ledger whose paths leave those trees, so a verification reads
// only the tree it was given.
type Env struct {
	// Dist is the release directory (absolute): dist/ with ledger.json,
	// the packages, SBOMs, SHA256SUMS and the image layouts (the
	// repositories are below RepoRoot).
	Dist string
	// RepoRoot is the publish root (absolute): apt/, dnf/ and files/, each
	// with its `current` link.
	RepoRoot string
	// Ledger is dist/ledger.json: a hint of where to look, never evidence.
	Ledger *pipeline.Ledger
	// CacheDir holds content-addressed downloads (e.g. the Xen machine);
	// empty when the caller has none.
	CacheDir string
	// Scratch is an empty directory for this check alone, removed after it
	// ran. The runner sets it; it is empty outside a check.
	Scratch string
	// Inputs are the top-level inputs the verification read (the ledger,
	// the lock, the public keys), recorded in the report with their
	// absolute paths and sha256.
	Inputs []Input
	// Paths are the absolute paths the verification resolved (the release
	// directory, the publish root, the publications it verified), recorded
	// in the report by role.
	Paths map[string]string
}

// Input is one top-level input of a verification.
type Input struct {
	Role   string `json:"role"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// AddInput hashes the file at path and records it as an input (role: e.g.
// "lock", "archive-public-key").
func (e *Env) AddInput(role, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, sum, err := fsutil.HashFile(abs)
	if err != nil {
		return fmt.Errorf("the %s %s: %w", role, abs, err)
	}
	for i, in := range e.Inputs {
		if in.Role == role {
			e.Inputs[i] = Input{Role: role, Path: abs, SHA256: sum}
			return nil
		}
	}
	e.Inputs = append(e.Inputs, Input{Role: role, Path: abs, SHA256: sum})
	return nil
}

// SetPath records an absolute path the verification resolved.
func (e *Env) SetPath(role, path string) {
	if e.Paths == nil {
		e.Paths = map[string]string{}
	}
	e.Paths[role] = path
}

// LoadEnv reads dist/ledger.json, with the repositories published under
// dist/repos.
func LoadEnv(dist, cacheDir string) (*Env, error) {
	return LoadEnvAt(dist, "", cacheDir)
}

// LoadEnvAt reads dist/ledger.json, with the repositories published under
// repoRoot ("" means dist/repos), and refuses a ledger path that points
// outside the tree it belongs to (CheckPaths).
func LoadEnvAt(dist, repoRoot, cacheDir string) (*Env, error) {
	abs, err := filepath.Abs(dist)
	if err != nil {
		return nil, fmt.Errorf("loading release %s: %w", dist, err)
	}
	if repoRoot == "" {
		repoRoot = filepath.Join(abs, "repos")
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, fmt.Errorf("loading release %s: the publish root %s: %w", dist, repoRoot, err)
	}
	ledgerPath := filepath.Join(abs, "ledger.json")
	l, err := pipeline.ReadLedger(ledgerPath)
	if err != nil {
		return nil, fmt.Errorf("loading release %s: %w (build a release first: go run mage.go release)", dist, err)
	}
	e := &Env{Dist: abs, RepoRoot: root, Ledger: l, CacheDir: cacheDir}
	e.SetPath("release", abs)
	e.SetPath("publish-root", root)
	if err := e.AddInput("ledger", ledgerPath); err != nil {
		return nil, err
	}
	if err := e.CheckPaths(); err != nil {
		return nil, err
	}
	return e, nil
}

// RepoKind reports whether an artifact kind is a repository publication,
// recorded relative to the publish root.
func RepoKind(k pipeline.Kind) bool { return k == pipeline.KindAptRepo || k == pipeline.KindDnfRepo }

// CheckPaths refuses every ledger path that is absolute or leaves its tree
// (Dist, or RepoRoot for the repository publications), lexically or
// through a symbolic link. Sources (download locations) and images (in a
// registry) have no path to check.
func (e *Env) CheckPaths() error {
	if e.Ledger == nil {
		return nil
	}
	var bad []string
	for _, a := range e.Ledger.Artifacts() {
		if a.Path == "" || a.Kind == pipeline.KindSource || a.Kind == pipeline.KindOCIImage {
			continue
		}
		root, tree := e.Dist, "HALVM_OUT"
		if RepoKind(a.Kind) {
			root, tree = e.RepoRoot, "the publish root"
		}
		if _, err := within(root, a.Path); err != nil {
			bad = append(bad, fmt.Sprintf("%s %s: path %q %v (%s is %s)", a.Kind, a.Name, a.Path, err, tree, root))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the ledger %s points outside the tree it was given: verify reads only that tree; fix or rebuild the release:\n  %s",
			filepath.Join(e.Dist, "ledger.json"), strings.Join(bad, "\n  "))
	}
	return nil
}

// within resolves rel below root, refusing an absolute path, one that
// climbs out with "..", and one whose existing part leads out through a
// symbolic link.
func within(root, rel string) (string, error) {
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
		return "", errors.New("is absolute (want a path relative to its tree)")
	}
	local := filepath.FromSlash(rel)
	if !filepath.IsLocal(local) {
		return "", errors.New("leaves its tree")
	}
	p := filepath.Join(root, local)
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return p, nil // nothing there yet: the checks report what is missing
	}
	// Resolve the longest existing prefix.
	probe := p
	for {
		if rp, err := filepath.EvalSymlinks(probe); err == nil {
			r, err := filepath.Rel(realRoot, rp)
			if err != nil || !filepath.IsLocal(r) && r != "." {
				return "", fmt.Errorf("leads out of its tree through a symbolic link (to %s)", rp)
			}
			return p, nil
		}
		parent := filepath.Dir(probe)
		if parent == probe || len(parent) < len(root) {
			return p, nil
		}
		probe = parent
	}
}

// Path returns the absolute path of a file recorded relative to Dist.
func (e *Env) Path(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(e.Dist, filepath.FromSlash(rel))
}

// RepoPath returns the absolute path of a publication recorded relative to
// RepoRoot.
func (e *Env) RepoPath(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(e.RepoRoot, filepath.FromSlash(rel))
}

// Artifacts returns the ledger's artifacts of a kind (and flavour when not
// empty), or an error naming what is missing when there are none: a check
// with nothing to check fails, it does not pass vacuously.
func (e *Env) Artifacts(kind pipeline.Kind, flavour string) ([]pipeline.Artifact, error) {
	if e.Ledger == nil {
		return nil, fmt.Errorf("no ledger loaded: verify a release directory with a ledger.json")
	}
	as := e.Ledger.Find(kind, flavour)
	if len(as) == 0 {
		what := string(kind)
		if flavour != "" {
			what += " (" + flavour + ")"
		}
		return nil, fmt.Errorf("the ledger records no %s artifact: the release is incomplete; rebuild it", what)
	}
	return as, nil
}

// Open opens an artifact's file after checking its size and sha256
// against the ledger.
func (e *Env) Open(a pipeline.Artifact) (*os.File, error) {
	p := e.Path(a.Path)
	size, sum, err := fsutil.HashFile(p)
	if err != nil {
		return nil, fmt.Errorf("opening %s %s: %w", a.Kind, a.Name, err)
	}
	if size != a.Size || sum != a.SHA256 {
		return nil, fmt.Errorf("opening %s %s: %s is %d bytes sha256 %s, the ledger says %d bytes sha256 %s",
			a.Kind, a.Name, a.Path, size, sum, a.Size, a.SHA256)
	}
	return os.Open(p)
}
