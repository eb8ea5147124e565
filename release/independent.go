package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/verify/checks"
)

// RebuildIndependently is the independent reproducibility rebuild as a job
// of its own (`go run mage.go ci:rebuild`, the CI workflow's rebuild job, in
// parallel with the toolchain cells): the same Rebuild the verification
// runs — a separate process, no network, a fresh step cache, the inputs
// only from <cache>/inputs (verified by their pins; run `sources` first),
// varied conditions — into outDir, on top of the publications live in
// o.RepoRoot. It never reads the shared cache: o.CacheRegistry is refused.
// A release then verifies against outDir with HALVM_REBUILD_FROM.
func RebuildIndependently(ctx context.Context, p pipeline.Plan, o Options, outDir string) error {
	if o.CacheRegistry != nil {
		return fmt.Errorf("the independent rebuild never reads the shared cache: unset %s for it", config.CacheRegistryVar)
	}
	outDir = absPath(outDir)
	if err := os.MkdirAll(filepath.Dir(outDir), 0o755); err != nil {
		return err
	}
	scratch, err := os.MkdirTemp(filepath.Dir(outDir), ".rebuild-scratch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	from := checks.Publications{Independent: true}
	if o.RepoRoot != "" {
		from.Apt, _ = checks.ServedPublication(filepath.Join(o.RepoRoot, "apt"))
		from.Dnf, _ = checks.ServedPublication(filepath.Join(o.RepoRoot, "dnf"))
	}
	return Rebuild(ctx, p, o, outDir, checks.DefaultVariation(scratch), from)
}

// adoptRebuild is the verification's rebuild when an independent rebuild
// already ran (HALVM_REBUILD_FROM=dir, its outDir): the check compares
// the release with dir instead of building again.
func adoptRebuild(dir string) func(context.Context, string, checks.Variation, checks.Publications) error {
	return func(_ context.Context, outDir string, _ checks.Variation, _ checks.Publications) error {
		dir := absPath(dir)
		if _, err := os.Stat(filepath.Join(dir, "ledger.json")); err != nil {
			return fmt.Errorf("HALVM_REBUILD_FROM=%s holds no finished rebuild (no ledger.json): run `go run mage.go ci:rebuild` there, or unset it to rebuild here: %w", dir, err)
		}
		if err := os.Symlink(dir, outDir); err != nil {
			return errors.Join(fmt.Errorf("using the independent rebuild %s", dir), err)
		}
		return nil
	}
}
