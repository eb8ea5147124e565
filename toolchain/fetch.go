package toolchain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
)

// InputPaths are where the fetched, verified files and packages live in
// the cache (package sources' layout, <cache>/sha256/<hex>). They follow
// from the lock alone, so the plan can name them before any fetch.
type InputPaths struct {
	Files map[string]string // file name -> cached file
	Debs  map[string]string // deb name -> cached file
}

func inputPaths(c Config) (InputPaths, error) {
	p := InputPaths{Files: map[string]string{}, Debs: map[string]string{}}
	for _, f := range c.Lock.Files {
		sum := f.SHA256
		if sum == "" {
			sum = "pending-" + f.Name
		}
		p.Files[f.Name] = filepath.Join(c.FileCacheDir, "sha256", sum)
	}
	for _, d := range c.Lock.Debs {
		p.Debs[d.Name] = filepath.Join(c.FileCacheDir, "sha256", d.SHA256)
	}
	return p, nil
}

// ErrInputsUnreachable wraps every failure to fetch a pinned input.
var ErrInputsUnreachable = errors.New("pinned inputs are unreachable")

// sourcesOptions are the options of package sources for this build: the
// cache and, when set, the mirror directory.
func (c Config) sourcesOptions() sources.Options {
	return sources.Options{CacheDir: c.FileCacheDir, MirrorDir: c.Mirror, Registry: c.Registry}
}

// Fetch makes every input of the build available in the cache, verified
// against the lock by package sources: the bootstrap bindist and the tool
// files, the tool packages, the superproject and every pinned submodule. It
// tries everything and reports every failure at once, with the remedy, so
// a build against unreachable pins fails before its first step.
func Fetch(ctx context.Context, c Config) (InputPaths, error) {
	c, err := c.withDefaults()
	if err != nil {
		return InputPaths{}, err
	}
	paths, _ := inputPaths(c)
	o := c.sourcesOptions()
	// Pending pins first: no network work for a lock a build must refuse.
	var errs []error
	var build []pins.File
	for _, f := range c.Lock.Files {
		if f.Role == pins.RoleBootstrapGHC || f.Role == pins.RoleTool {
			build = append(build, f)
		}
	}
	remedy := "run on a machine that reaches the pinned hosts (then `sources.ExportMirror` carries them elsewhere), " +
		"or give the build a mirror directory (toolchain.Config.Mirror, the layout sources.ExportMirror writes: git/<source>.git, files/<file>, <archive>/<pool file>)"
	if err := sources.RefusePending(build); err != nil {
		return paths, fmt.Errorf("%w (pins pending, nothing fetched): %w\nremedy: record the pending pins; then %s", ErrInputsUnreachable, err, remedy)
	}
	for _, f := range c.Lock.Files {
		if f.Role != pins.RoleBootstrapGHC && f.Role != pins.RoleTool {
			continue
		}
		if _, err := sources.FetchFile(ctx, f, o); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range c.Lock.DebsWithRole(pins.RoleTool) {
		if _, err := sources.FetchDebs(ctx, []pins.Deb{d}, o); err != nil {
			errs = append(errs, err)
		}
	}
	// The git sources: fetched and verified by a throwaway checkout (the
	// build's own checkout, step prepare-sources, then comes from the cache).
	if err := os.MkdirAll(c.CacheDir, 0o755); err != nil {
		return paths, err
	}
	tmp, err := os.MkdirTemp(c.CacheDir, ".fetch-check-")
	if err != nil {
		return paths, err
	}
	defer os.RemoveAll(tmp)
	if _, err := sources.FetchSources(ctx, c.Lock, filepath.Join(tmp, "tree"), o); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return paths, fmt.Errorf("%w (%d problems): %w\nremedy: %s", ErrInputsUnreachable, len(errs), errors.Join(errs...), remedy)
	}
	return paths, nil
}

// checkout is step prepare-sources' first action: the pinned tree from the
// cache, every gitlink and .gitmodules entry verified by package sources.
func (r *Recipe) checkout(ctx context.Context) error {
	src := r.SourceDir()
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if _, err := sources.FetchSources(ctx, r.Lock, src, r.Config.sourcesOptions()); err != nil {
		return err
	}
	return nil
}
