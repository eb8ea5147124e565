package sources

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/pins"
)

// ExportMirror writes everything the lock pins, taken from the cache (fill
// it with Fetch first), into mirrorDir in the layout Options.MirrorDir
// reads: git/<source>.git (bare, the pinned commits under refs/pins/),
// files/<file name from its URL>, <archive>/<pool filename>. Carry the
// directory to an air-gapped machine and fetch with MirrorDir set. A
// pending pin blocks only itself: the rest is exported and the error names
// the gaps.
func ExportMirror(ctx context.Context, l *pins.Lock, o Options, mirrorDir string) error {
	o, err := o.normalized()
	if err != nil {
		return fmt.Errorf("exporting mirror: %w", err)
	}
	g := newGit(nil)
	for _, s := range l.Sources {
		cache := o.cache("git", s.Name+".git")
		ref := "refs/pins/" + s.Commit
		if _, err := g.out(ctx, cache, "rev-parse", "-q", "--verify", ref+"^{commit}"); err != nil {
			return fmt.Errorf("exporting mirror: %s at %s is not in the cache %s: fetch first", s.Name, s.Commit, o.CacheDir)
		}
		dst := filepath.Join(mirrorDir, "git", s.Name+".git")
		if _, err := os.Stat(dst); err != nil {
			f := &gitFetcher{o: o, g: g}
			if err := f.initCache(ctx, dst); err != nil {
				return fmt.Errorf("exporting mirror: %s: %w", s.Name, err)
			}
		}
		if _, err := g.out(ctx, dst, "fetch", "-q", "--no-tags", "--no-write-fetch-head", cache, ref+":"+ref); err != nil {
			return fmt.Errorf("exporting mirror: %s: %w", s.Name, err)
		}
	}
	used := map[string]string{}
	var gaps []Gap
	for _, f := range l.Files {
		if f.Pending != "" {
			gaps = append(gaps, Gap{Input: LedgerName("file", f.Name), Reason: "its pin is pending (" + f.Pending + ")",
				Remedy: fmt.Sprintf("run `go run mage.go pins:update file:%s`, fetch it, and export the mirror again", f.Name)})
			continue
		}
		base, err := urlBase(f.URL)
		if err != nil {
			return fmt.Errorf("exporting mirror: file %s: %w", f.Name, err)
		}
		if other, dup := used[base]; dup {
			return fmt.Errorf("exporting mirror: files %s and %s both end in %s", other, f.Name, base)
		}
		used[base] = f.Name
		if err := o.exportBlob(f.SHA256, f.Size, filepath.Join(mirrorDir, "files", base)); err != nil {
			return fmt.Errorf("exporting mirror: file %s: %w", f.Name, err)
		}
	}
	for _, d := range l.Debs {
		if err := o.exportBlob(d.SHA256, d.Size, filepath.Join(mirrorDir, d.Archive, filepath.FromSlash(d.Filename))); err != nil {
			return fmt.Errorf("exporting mirror: Debian package %s: %w", DebName(d), err)
		}
	}
	if len(gaps) > 0 {
		return fmt.Errorf("exporting mirror: everything else was exported: %w", &GapsError{Gaps: gaps})
	}
	return nil
}

// exportBlob copies a verified cache entry to dst (atomically).
func (o Options) exportBlob(sum string, size int64, dst string) error {
	src := o.cache("sha256", sum)
	n, got, err := fsutil.HashFile(src)
	if err != nil || (size != 0 && n != size) || got != sum {
		return fmt.Errorf("not in the cache %s (or damaged): fetch first", o.CacheDir)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
