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
// greater than zero and a summary). The individual checks live in the
// packages that own the formats (debian, rpm, sbom, oci, verify/xenboot);
// the release wires them into a []Check.
package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// Env is what checks read: the release directory and its ledger, a cache
// directory for downloads, and a per-check scratch directory.
type Env struct {
	// Dist is the release directory (absolute): dist/ with ledger.json,
	// the repositories, the image layout and the public keys.
	Dist string
	// Ledger is dist/ledger.json.
	Ledger *pipeline.Ledger
	// CacheDir holds content-addressed downloads (e.g. the Xen machine);
	// empty when the caller has none.
	CacheDir string
	// Scratch is an empty directory for this check alone, removed after it
	// ran. The runner sets it; it is empty outside a check.
	Scratch string
}

// LoadEnv reads dist/ledger.json.
func LoadEnv(dist, cacheDir string) (*Env, error) {
	abs, err := filepath.Abs(dist)
	if err != nil {
		return nil, fmt.Errorf("loading release %s: %w", dist, err)
	}
	l, err := pipeline.ReadLedger(filepath.Join(abs, "ledger.json"))
	if err != nil {
		return nil, fmt.Errorf("loading release %s: %w (build a release first: go run mage.go release)", dist, err)
	}
	return &Env{Dist: abs, Ledger: l, CacheDir: cacheDir}, nil
}

// Path returns the absolute path of a file recorded relative to Dist.
func (e *Env) Path(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(e.Dist, filepath.FromSlash(rel))
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
	size, sum, err := pipeline.HashFile(p)
	if err != nil {
		return nil, fmt.Errorf("opening %s %s: %w", a.Kind, a.Name, err)
	}
	if size != a.Size || sum != a.SHA256 {
		return nil, fmt.Errorf("opening %s %s: %s is %d bytes sha256 %s, the ledger says %d bytes sha256 %s",
			a.Kind, a.Name, a.Path, size, sum, a.Size, a.SHA256)
	}
	return os.Open(p)
}
