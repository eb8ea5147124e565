// Package upstream assembles the sample upstream that the toolchain recipe
// builds, unchanged, where the real HaLVM sources are unreachable:
// sample.Generate with musl 1.2.3's libm (package sample/musl, fetched from
// Debian and pinned by sha256) as the content of the src/openlibm
// submodule, the pvrt runtime (package sample/pvrt) in halvm-ghc/rts/xen,
// and the lock completed with the Debian tool packages the real lock pins
// (alex and HsColour), so the recipe installs them into its tool prefix
// exactly as it does for a release.
package upstream

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"testing/fstest"
	"time"

	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
	"github.com/halvm/halvm-release/sample/musl"
	"github.com/halvm/halvm-release/sample/pvrt"
)

// RuntimeDir is where the pvrt runtime goes in the halvm-ghc repository.
const RuntimeDir = "rts/xen"

// Options of Generate.
type Options struct {
	// CacheDir is the content-addressed download cache (musl's source package).
	CacheDir string
	// ToolDebs are the tool packages to pin (normally the real lock's
	// DebsWithRole(pins.RoleTool)); nil pins none.
	ToolDebs []pins.Deb
	// AptConfigDir is the apt configuration musl's deb-src lines derive
	// from ("" = /etc/apt).
	AptConfigDir string
	Log          io.Writer
	// Extra adds files to repositories of the sample upstream that the
	// musl and pvrt overlay does not touch, keyed by repository name (an
	// extra file replaces the tree file of the same path): tests use it
	// for a deliberately broken upstream.
	Extra map[string]fs.FS
}

// Overlay returns the extra repository content of the sample upstream:
// musl's libm for openlibm and the pvrt runtime for halvm-ghc.
func Overlay(ctx context.Context, o Options) (map[string]fs.FS, error) {
	paths, err := musl.Fetch(ctx, musl.Options{CacheDir: o.CacheDir, AptConfigDir: o.AptConfigDir, Log: o.Log})
	if err != nil {
		return nil, err
	}
	libm, err := musl.Libm(paths[musl.Orig], time.Unix(sample.Epoch, 0))
	if err != nil {
		return nil, err
	}
	rts, err := under(RuntimeDir, pvrt.Sources)
	if err != nil {
		return nil, fmt.Errorf("reading the pvrt sources: %w", err)
	}
	return map[string]fs.FS{sample.RepoOpenlibm: libm, sample.RepoHaLVMGHC: rts}, nil
}

// Generate creates the sample upstream in dir (new or empty) and returns
// it with its lock.
func Generate(ctx context.Context, dir string, o Options) (*sample.Upstream, error) {
	overlay, err := Overlay(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("assembling the sample upstream: %w", err)
	}
	for repo, fsys := range o.Extra {
		if _, taken := overlay[repo]; taken {
			return nil, fmt.Errorf("assembling the sample upstream: extra files for %s, which the musl and pvrt overlay already provides", repo)
		}
		overlay[repo] = fsys
	}
	up, err := sample.Generate(ctx, dir, sample.Options{Overlay: overlay})
	if err != nil {
		return nil, err
	}
	if len(o.ToolDebs) > 0 {
		l := *up.Lock
		l.Debs = append(append([]pins.Deb(nil), l.Debs...), o.ToolDebs...)
		checked, err := pins.Parse("sample.lock", pins.Bytes(&l))
		if err != nil {
			return nil, fmt.Errorf("pinning the tool packages in the sample lock: %w", err)
		}
		up.Lock = checked
	}
	return up, nil
}

// under returns fsys with every file below dir, modes kept.
func under(dir string, fsys fs.FS) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path.Join(dir, p)] = &fstest.MapFile{Data: data, Mode: fi.Mode(), ModTime: time.Unix(sample.Epoch, 0)}
		return nil
	})
	return out, err
}
