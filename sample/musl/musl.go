// Package musl owns the one piece of real third-party C the sample upstream
// compiles: musl 1.2.3's libm (src/math), taken from Debian 12's musl source
// package. It fetches the source package with `apt-get source
// --download-only` through a private deb-src list derived from this
// machine's apt configuration (no mirror host is hardcoded), checks every
// file against the sha256 pins below, caches the files content-addressed and
// exposes the libm part of the tree as an fs.FS.
package musl

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
)

// Version is the pinned Debian source package version.
const Version = "1.2.3-1"

// Suite is the Debian suite the source package comes from.
const Suite = "bookworm"

// File is one file of the source package, pinned by size (0 = not pinned)
// and sha256.
type File struct {
	Name   string
	Size   int64
	SHA256 string
}

// Files are the files `apt-get source --download-only musl=1.2.3-1` fetches.
var Files = []File{
	{Name: "musl_1.2.3-1.dsc", SHA256: "243a7462e9c751da662c4c61d4c96b6318c796ba302b72f6cdf74ea5427a9b4f"},
	{Name: "musl_1.2.3.orig.tar.gz", Size: 1058642, SHA256: "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4"},
	{Name: "musl_1.2.3-1.debian.tar.xz", SHA256: "8f12cc808dbec030179a25ce2645a4c0b622ee8011c2afcec53b87ec5867a8cc"},
}

// Orig is the upstream tarball inside the source package.
const Orig = "musl_1.2.3.orig.tar.gz"

// ErrUnreachable marks a fetch that failed because apt could not get the
// source package (no mirror, no network, no deb-src entry).
var ErrUnreachable = errors.New("the Debian source package is unreachable")

// Options of a fetch.
type Options struct {
	// CacheDir holds the content-addressed cache (files/sha256/<hex>).
	CacheDir string
	// AptConfigDir is the apt configuration whose deb lines are turned into
	// deb-src lines: "" is /etc/apt.
	AptConfigDir string
	// Log receives apt's output; nil discards it.
	Log io.Writer
}

// Fetch makes sure every pinned file is in the cache and returns the path of
// each, by name. It calls apt-get only when something is missing.
func Fetch(ctx context.Context, o Options) (map[string]string, error) {
	if o.CacheDir == "" {
		return nil, errors.New("fetching musl source: no cache directory given")
	}
	paths := map[string]string{}
	missing := false
	for _, f := range Files {
		p := cachePath(o.CacheDir, f.SHA256)
		paths[f.Name] = p
		if _, err := os.Stat(p); err != nil {
			missing = true
		}
	}
	if !missing {
		return paths, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("fetching musl source: %w", err)
	}
	dl, err := os.MkdirTemp(o.CacheDir, ".musl-fetch-")
	if err != nil {
		return nil, fmt.Errorf("fetching musl source: %w", err)
	}
	defer os.RemoveAll(dl)
	if err := aptSource(ctx, o, dl); err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range Files {
		src := filepath.Join(dl, f.Name)
		size, sum, err := fsutil.HashFile(src)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("musl %s: not fetched by apt-get source: %w", f.Name, err))
		case sum != f.SHA256:
			errs = append(errs, fmt.Errorf("musl %s: sha256 %s, pinned %s: the mirror serves other bytes than the pin", f.Name, sum, f.SHA256))
		case f.Size != 0 && size != f.Size:
			errs = append(errs, fmt.Errorf("musl %s: %d bytes, pinned %d", f.Name, size, f.Size))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fetching musl %s source: %w", Version, errors.Join(errs...))
	}
	for _, f := range Files {
		dst := paths[f.Name]
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(dl, f.Name), dst); err != nil {
			return nil, fmt.Errorf("caching musl %s: %w", f.Name, err)
		}
	}
	return paths, nil
}

func cachePath(cacheDir, sum string) string {
	return filepath.Join(cacheDir, "files", "sha256", sum)
}

// aptSource runs apt-get update and apt-get source --download-only with a
// private state directory and a deb-src list derived from the machine's apt
// configuration, so the system's apt state is not touched.
func aptSource(ctx context.Context, o Options, dl string) error {
	conf := o.AptConfigDir
	if conf == "" {
		conf = "/etc/apt"
	}
	lines, err := DebSrcLines(os.DirFS(conf), Suite)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	state := filepath.Join(dl, ".apt")
	for _, d := range []string{"lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			return err
		}
	}
	list := filepath.Join(state, "etc", "sources.list")
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	opts := []string{
		"-o", "Dir::Etc::sourcelist=" + list,
		"-o", "Dir::Etc::sourceparts=" + filepath.Join(state, "etc", "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(state, "cache"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Debug::NoLocking=1",
		"-q",
	}
	env := run.BaseEnv()
	var log io.Writer = io.Discard
	if o.Log != nil {
		log = o.Log
	}
	if err := run.Run(ctx, run.Cmd{Args: append(append([]string{"apt-get"}, opts...), "update"), Dir: dl, Env: env, Stdout: log, Stderr: log}); err != nil {
		return fmt.Errorf("fetching musl source: %w: apt-get update with deb-src lines %q (needs the Debian mirror; install apt and check the network): %w", ErrUnreachable, lines, err)
	}
	args := append(append([]string{"apt-get"}, opts...), "source", "--download-only", "musl="+Version)
	if err := run.Run(ctx, run.Cmd{Args: args, Dir: dl, Env: env, Stdout: log, Stderr: log}); err != nil {
		return fmt.Errorf("fetching musl source: %w: apt-get source musl=%s (needs dpkg-dev and the Debian mirror): %w", ErrUnreachable, Version, err)
	}
	return nil
}

// DebSrcLines turns the deb entries of an apt configuration (sources.list,
// sources.list.d/*.list and *.sources) for suite into one-line deb-src
// entries, keeping URIs, components and signed-by. Disabled files (other
// suffixes) are ignored.
func DebSrcLines(conf fs.FS, suite string) ([]string, error) {
	entries, err := deb822.ReadSources(conf)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.Has("deb") || !slices.Contains(e.Suites, suite) {
			continue
		}
		opt := ""
		if e.SignedBy != "" {
			opt = "[signed-by=" + e.SignedBy + "] "
		}
		for _, u := range e.URIs {
			l := fmt.Sprintf("deb-src %s%s %s %s", opt, u, suite, strings.Join(e.Components, " "))
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no deb entry for suite %s in the apt configuration: add a %s line to /etc/apt/sources.list(.d)", suite, suite)
	}
	return out, nil
}

// libmParts are the parts of the musl tree that compiling src/math needs.
var libmParts = []string{"COPYRIGHT", "src/math/", "src/fenv/", "src/internal/", "src/include/", "include/", "arch/x86_64/", "arch/generic/", "tools/mkalltypes.sed"}

// Libm returns musl's libm sources (src/math plus the headers and the
// alltypes generator it needs), read from the pinned orig tarball, with
// paths relative to the musl tree root. Modes are 0644 (0755 for
// directories) and modification times are the epoch given.
func Libm(origTarGz string, mtime time.Time) (fs.FS, error) {
	f, err := os.Open(origTarGz)
	if err != nil {
		return nil, fmt.Errorf("reading musl tarball: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading musl tarball %s: %w", origTarGz, err)
	}
	tr := tar.NewReader(zr)
	out := fstest.MapFS{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading musl tarball %s: %w", origTarGz, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := h.Name
		if i := strings.Index(name, "/"); i >= 0 {
			name = name[i+1:] // strip musl-1.2.3/
		}
		name = path.Clean(name)
		keep := false
		for _, p := range libmParts {
			if name == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(name, p)) {
				keep = true
			}
		}
		if !keep {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[name] = &fstest.MapFile{Data: data, Mode: 0o644, ModTime: mtime}
	}
	if _, ok := out["src/math/sin.c"]; !ok {
		return nil, fmt.Errorf("musl tarball %s has no src/math/sin.c: not musl's source", origTarGz)
	}
	return out, nil
}
