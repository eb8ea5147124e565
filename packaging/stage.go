package packaging

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
)

// Inputs are what the packages stage needs besides the plan.
type Inputs struct {
	// Trees maps flavour -> format -> installed tree (installed with
	// Layouts[format]).
	Trees       map[string]map[Format]Tree
	Examples    string   // upstream examples/ (optional)
	Hello       string   // the verification hello program directory (optional)
	LicenseFile string   // upstream LICENSE (optional)
	Forbidden   []string // build directories that must not leak into packages
	Key         pgp.KeySource
	SignDeb     bool
}

// Dir is where the stage writes packages, under the plan's output directory.
const Dir = "packages"

// BuildAll builds every package of the plan: for each flavour a deb and an
// rpm, plus halvm-archive-keyring in both formats, into OutDir/packages,
// and records them in the ledger (kind deb/rpm, name = package name). The
// key is loaded first; the two formats build concurrently, within a
// memory budget of the host's available memory (HostMemoryBudget).
func BuildAll(ctx context.Context, p pipeline.Plan, in Inputs, l *pipeline.Ledger) error {
	key, err := pgp.LoadKey(in.Key)
	if err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	mem, err := HostMemoryBudget()
	if err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	o := Options{Key: key, SignDeb: in.SignDeb, Memory: mem}
	var missing []error
	for _, fl := range p.Flavours() {
		for _, f := range Formats {
			if _, ok := in.Trees[fl][f]; !ok {
				missing = append(missing, fmt.Errorf("packages: no %s tree for flavour %s", f, fl))
			}
		}
	}
	if len(missing) > 0 {
		return errors.Join(missing...)
	}
	out := filepath.Join(p.OutDir(), Dir)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	record := func(f Format, name, flavour, path string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		kind := pipeline.KindDeb
		if f == RPM {
			kind = pipeline.KindRPM
		}
		rel, _ := filepath.Rel(p.OutDir(), path)
		if _, err := l.AddFile(kind, name, flavour, path, rel); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range Formats {
		wg.Add(1)
		go func(f Format) {
			defer wg.Done()
			kr := Keyring{Version: p.Version(), Release: p.Release(), Epoch: p.Epoch()}
			path, err := BuildKeyring(ctx, f, kr, o, out)
			record(f, KeyringName, "", path, err)
			for _, fl := range p.Flavours() {
				tc := Toolchain{
					Flavour: fl, Version: p.Version(), Release: p.Release(), Epoch: p.Epoch(),
					Tree: in.Trees[fl][f], Examples: in.Examples, Hello: in.Hello,
					LicenseFile: in.LicenseFile, Forbidden: in.Forbidden,
				}
				path, err := BuildToolchain(ctx, f, tc, o, out)
				record(f, fl, fl, path, err)
			}
		}(f)
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("packages: %w", errors.Join(errs...))
	}
	return nil
}
