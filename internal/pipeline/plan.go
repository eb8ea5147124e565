// Package pipeline owns the shape of a release run: the read-only Plan that
// every stage reads, the ordered Stages that run against it, and the typed
// Ledger of artifacts they produce (dist/ledger.json). It knows nothing of
// how a stage does its work.
package pipeline

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Flavours are the two toolchain builds a HaLVM release ships.
var Flavours = []string{"halvm", "halvm-gmp"}

// Config is what a user asks for; NewPlan validates it into a Plan.
type Config struct {
	Version  string            // upstream version, e.g. "2.4.3"
	Release  int               // package release number (the "-1" of 2.4.3-1)
	Flavours []string          // subset of Flavours; empty means all
	Epoch    time.Time         // SOURCE_DATE_EPOCH
	LockPath string            // pins/halvm.lock
	OutDir   string            // dist/
	CacheDir string            // content-addressed cache
	WorkDir  string            // fixed build root
	Skip     map[string]string // stage name -> why it is skipped
	// Fresh are the stages that run even when an earlier run's outputs
	// could be reused (HALVM_FRESH); FreshAll ("all") is every stage.
	Fresh []string
}

// FreshAll in Config.Fresh forces every stage to run.
const FreshAll = "all"

// Plan is the validated, read-only description of one run. Its accessors
// return copies: no stage can change what another stage reads.
type Plan struct {
	version  string
	release  int
	flavours []string
	epoch    time.Time
	lockPath string
	outDir   string
	cacheDir string
	workDir  string
	skip     map[string]string
	fresh    map[string]bool
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// NewPlan validates cfg, reporting every problem at once, and returns the
// plan. Paths are made absolute.
func NewPlan(cfg Config) (Plan, error) {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("plan: %s: %s", field, fmt.Sprintf(format, a...)))
	}
	if !versionRE.MatchString(cfg.Version) {
		bad("version", "want dotted decimal digits like 2.4.3, got %q", cfg.Version)
	}
	if cfg.Release < 1 {
		bad("release", "want a package release number of at least 1, got %d", cfg.Release)
	}
	flavours := cfg.Flavours
	if len(flavours) == 0 {
		flavours = Flavours
	}
	seen := map[string]bool{}
	for _, f := range flavours {
		if !contains(Flavours, f) {
			bad("flavours", "unknown flavour %q: want one of %s", f, strings.Join(Flavours, ", "))
		}
		if seen[f] {
			bad("flavours", "flavour %q listed twice", f)
		}
		seen[f] = true
	}
	if cfg.Epoch.IsZero() || cfg.Epoch.Unix() < 0 {
		bad("epoch", "SOURCE_DATE_EPOCH is not set: it comes from the lock or the environment")
	}
	paths := map[string]*string{"lock": &cfg.LockPath, "out": &cfg.OutDir, "cache": &cfg.CacheDir, "work": &cfg.WorkDir}
	for _, name := range []string{"lock", "out", "cache", "work"} {
		p := paths[name]
		if *p == "" {
			bad(name, "path is empty")
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			bad(name, "%v", err)
			continue
		}
		*p = abs
	}
	for stage, why := range cfg.Skip {
		if strings.TrimSpace(why) == "" {
			bad("skip", "stage %q is skipped without a reason", stage)
		}
	}
	fresh := map[string]bool{}
	for _, f := range cfg.Fresh {
		switch {
		case strings.TrimSpace(f) == "":
			bad("fresh", "an empty stage name")
		case fresh[f]:
			bad("fresh", "stage %q listed twice", f)
		case f == FreshAll && len(cfg.Fresh) > 1:
			bad("fresh", "%q forces every stage: list it alone", FreshAll)
		}
		fresh[f] = true
	}
	if len(errs) > 0 {
		return Plan{}, errors.Join(errs...)
	}
	fl := append([]string(nil), flavours...)
	sort.SliceStable(fl, func(i, j int) bool { return index(Flavours, fl[i]) < index(Flavours, fl[j]) })
	skip := map[string]string{}
	for k, v := range cfg.Skip {
		skip[k] = v
	}
	return Plan{
		version: cfg.Version, release: cfg.Release, flavours: fl, epoch: cfg.Epoch.UTC(),
		lockPath: cfg.LockPath, outDir: cfg.OutDir, cacheDir: cfg.CacheDir, workDir: cfg.WorkDir, skip: skip, fresh: fresh,
	}, nil
}

func (p Plan) Version() string { return p.version }
func (p Plan) Release() int    { return p.release }

// PackageVersion is the version packages carry: "2.4.3-1".
func (p Plan) PackageVersion() string { return fmt.Sprintf("%s-%d", p.version, p.release) }
func (p Plan) Flavours() []string     { return append([]string(nil), p.flavours...) }
func (p Plan) Epoch() time.Time       { return p.epoch }
func (p Plan) LockPath() string       { return p.lockPath }
func (p Plan) OutDir() string         { return p.outDir }
func (p Plan) CacheDir() string       { return p.cacheDir }
func (p Plan) WorkDir() string        { return p.workDir }
func (p Plan) LedgerPath() string     { return filepath.Join(p.outDir, "ledger.json") }
func (p Plan) SkipReason(stage string) (string, bool) {
	r, ok := p.skip[stage]
	return r, ok
}

// Fresh reports whether a stage must run even when an earlier run's
// outputs could be reused (HALVM_FRESH names it, or "all").
func (p Plan) Fresh(stage string) bool { return p.fresh[FreshAll] || p.fresh[stage] }

// FreshStages returns the stages HALVM_FRESH names, sorted ("all" alone
// for every stage).
func (p Plan) FreshStages() []string {
	var s []string
	for k := range p.fresh {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Skipped returns the skipped stages, sorted.
func (p Plan) Skipped() []string {
	var s []string
	for k := range p.skip {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
