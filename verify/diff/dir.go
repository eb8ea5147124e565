package diff

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Dirs compares two directory trees: paths on one side only, type, mode,
// size, sha256 and symlink targets, and each differing file by its format
// (a .deb in a release directory is compared member by member). Owners
// and mtimes of files on disk are not compared: the bytes of the
// artifacts are what a release publishes.
func Dirs(a, b string, o Options) (*Listing, error) {
	d := newDiffer(o)
	defer d.close()
	ea, err := d.readDir(a)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	eb, err := d.readDir(b)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	if err := d.compareEntries(nil, ea, eb, nil); err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	return d.listing(a, b, "directory"), nil
}

func (d *differ) readDir(root string) ([]entry, error) {
	var es []entry
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{name: rel}
		add := func(k, v string) { e.attrs = append(e.attrs, attr{k, v}) }
		switch {
		case fi.Mode().IsRegular():
			b, err := d.fileBlob(p)
			if err != nil {
				return err
			}
			sum, err := b.hash()
			if err != nil {
				return err
			}
			add("type", "regular")
			add("mode", fmtMode(int64(fi.Mode().Perm())))
			add("size", strconv.FormatInt(fi.Size(), 10))
			add("sha256", sum)
			e.content, e.size, e.sum, e.blob = true, fi.Size(), sum, b
		case fi.IsDir():
			add("type", "directory")
			add("mode", fmtMode(int64(fi.Mode().Perm())))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			add("type", "symlink")
			add("link", t)
		default:
			add("type", fi.Mode().Type().String())
		}
		es = append(es, e)
		return nil
	})
	return es, err
}
