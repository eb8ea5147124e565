// Package toolchain owns the HaLVM toolchain build: the real upstream recipe
// (bootstrap GHC 8.0.2 in a private prefix, alex/happy/cabal/HsColour in
// their own tool prefix, autoconf, ./configure per flavour, the stage-1
// compiler, each RTS way, the C parts, make install into a staging root,
// halvm-ghc-pkg recache) as a list of steps with declared inputs and
// outputs, run serially in an explicit environment at a fixed build path,
// each cached by the hash of everything that can change its output. After
// the install it normalizes the tree (mtimes clamped to SOURCE_DATE_EPOCH,
// modes normalized), refuses build-path leaks and writes a tree manifest.
//
// Entry points: Preflight (host prerequisites, all missing ones at once),
// NewRecipe (the steps for one flavour), WritePlan (the dry run: every step
// with its command, directory, environment and cache status) and Build.
package toolchain

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/pins"
)

// Defaults of a build's fixed paths.
const (
	// DefaultBuildDir is the fixed build path: paths baked into the
	// toolchain stay the same from build to build.
	DefaultBuildDir = "/var/tmp/halvm-build"
	// DefaultPrefix and DefaultLibDir are the install locations Debian
	// packaging used (halvmlibdir = LibDir/HaLVM-<version>).
	DefaultPrefix = "/usr"
	DefaultLibDir = "/usr/lib/x86_64-linux-gnu"
)

// Ways are the RTS ways, in build order: each is its own step.
var Ways = []string{"v", "p", "thr", "debug", "thr_debug"}

// RTSArchive is the archive name of an RTS way.
func RTSArchive(way string) string {
	if way == "v" {
		return "libHSrts.a"
	}
	return "libHSrts_" + way + ".a"
}

// Config describes one toolchain build of one flavour.
type Config struct {
	Lock    *pins.Lock
	Flavour string    // "halvm" or "halvm-gmp"
	Epoch   time.Time // SOURCE_DATE_EPOCH; zero means the lock's
	// BuildDir is the fixed build path ("" = DefaultBuildDir). Every step
	// runs below it; nothing of it may remain in the installed tree.
	BuildDir string
	CacheDir string // git mirrors of the sources and step snapshots
	// FileCacheDir holds the downloaded files and packages, content-addressed
	// (files/sha256/<hex>), safe to share between builds; "" = CacheDir.
	FileCacheDir string
	OutDir       string // where the tree manifest is written
	Prefix       string // "" = DefaultPrefix
	LibDir       string // "" = DefaultLibDir
	// Mirror, when set, replaces the network: a directory or http(s) URL
	// holding git/<source name>.git and files/<file name>.
	Mirror string
	// Registry, when set, is the shared step cache (HALVM_CACHE_REGISTRY)
	// behind the local one: a step missing locally is pulled from it, and
	// every step built (or found only locally) is pushed to it.
	Registry *regcache.Cache
	// Log receives the output of every step and one line per step; nil
	// discards it.
	Log io.Writer
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Lock == nil {
		errs = append(errs, errors.New("no lock given"))
	}
	if c.BuildDir == "" {
		c.BuildDir = DefaultBuildDir
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.LibDir == "" {
		c.LibDir = DefaultLibDir
	}
	for name, p := range map[string]string{"build dir": c.BuildDir, "prefix": c.Prefix, "libdir": c.LibDir} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsAny(p, " \t\n'\"$\\") {
			errs = append(errs, fmt.Errorf("%s %q: want a clean absolute path without spaces or quotes", name, p))
		}
	}
	if c.CacheDir == "" {
		errs = append(errs, errors.New("no cache dir given"))
	}
	if c.FileCacheDir == "" {
		c.FileCacheDir = c.CacheDir
	}
	if c.Lock != nil {
		if _, ok := c.Lock.Flavour(c.Flavour); !ok {
			errs = append(errs, fmt.Errorf("flavour %q is not in the lock", c.Flavour))
		}
		if c.Epoch.IsZero() {
			c.Epoch = c.Lock.Release.Epoch()
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("toolchain config: %w", errors.Join(errs...))
	}
	c.Epoch = c.Epoch.UTC()
	return c, nil
}

// Layout is where a build puts things below the build dir: the bootstrap
// compiler and the tool prefix (shared by the flavours, which must be built
// one after the other), and per flavour the source tree, the staging root
// (DESTDIR) and the step logs.
type Layout struct{ Root string }

func (l Layout) Bootstrap() string       { return filepath.Join(l.Root, "bootstrap") }
func (l Layout) BootstrapPrefix() string { return filepath.Join(l.Root, "bootstrap", "ghc") }
func (l Layout) Tools() string           { return filepath.Join(l.Root, "tools") }

// ToolPrefix holds alex, happy, cabal and HsColour: upstream's make install
// copies dirname(dirname(alex))/{share,lib}, which must be this, never /usr.
func (l Layout) ToolPrefix() string           { return filepath.Join(l.Root, "tools", "usr") }
func (l Layout) Source(flavour string) string { return filepath.Join(l.Root, flavour, "halvm") }
func (l Layout) Stage(flavour string) string  { return filepath.Join(l.Root, flavour, "stage") }
func (l Layout) Logs(flavour string) string   { return filepath.Join(l.Root, flavour, "logs") }
func (l Layout) Home() string                 { return filepath.Join(l.Root, "home") }
func (l Layout) Tmp() string                  { return filepath.Join(l.Root, "tmp") }

// HaLVMLibDir is halvmlibdir: LibDir/HaLVM-<version>.
func HaLVMLibDir(libDir, version string) string {
	return filepath.Join(libDir, "HaLVM-"+version)
}
