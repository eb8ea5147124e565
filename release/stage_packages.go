package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/toolchain/testprog"
)

// packagesInput is what packages reads: the installed trees of the
// toolchain stage and the source tree the sources stage checked out.
type packagesInput struct {
	trees  map[string]map[string]string // flavour -> format -> directory
	srcDir string
}

func (r *runner) packagesInput(p pipeline.Plan, l *pipeline.Ledger) (packagesInput, error) {
	var errs []error
	var in packagesInput
	if r.out.toolchain == nil {
		errs = append(errs, pipeline.MissingInput(p, l, "packages", "the installed toolchain trees", "toolchain"))
	} else {
		in.trees = r.out.toolchain.trees
	}
	if r.out.sources == nil {
		errs = append(errs, pipeline.MissingInput(p, l, "packages", "the checked-out source tree (its LICENSE)", "sources"))
	} else {
		in.srcDir = r.out.sources.srcDir
	}
	return in, errors.Join(errs...)
}

func (r *runner) packages(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	in, err := r.packagesInput(p, l)
	if err != nil {
		return err
	}
	trees := map[string]map[packaging.Format]packaging.Tree{}
	var forbidden []string
	for fl, byFormat := range in.trees {
		trees[fl] = map[packaging.Format]packaging.Tree{}
		for f, dir := range byFormat {
			lay := packaging.Layouts[packaging.Format(f)]
			trees[fl][packaging.Format(f)] = packaging.Tree{Root: dir, Prefix: lay.Prefix, Libdir: lay.Libdir}
			forbidden = append(forbidden, filepath.Join(buildDir(p), f))
		}
	}
	sort.Strings(forbidden)
	// The project's verification programs (not upstream's examples).
	hello := filepath.Join(p.WorkDir(), "verify-programs")
	if err := os.RemoveAll(hello); err != nil {
		return err
	}
	for _, name := range []string{testprog.Hello, testprog.Null} {
		if err := fsutil.WriteFileAtomic(filepath.Join(hello, name), testprog.Source(name), 0o644); err != nil {
			return err
		}
	}
	pk := packaging.Inputs{Trees: trees, Hello: hello, LicenseFile: filepath.Join(in.srcDir, "LICENSE"), Forbidden: forbidden, Key: r.o.PGPKey}
	if fi, err := os.Stat(filepath.Join(in.srcDir, "examples")); err == nil && fi.IsDir() {
		pk.Examples = filepath.Join(in.srcDir, "examples")
	}
	return packaging.BuildAll(ctx, p, pk, l)
}
