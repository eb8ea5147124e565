package rootfs

import (
	"io/fs"
	"path/filepath"
	"sort"
)

// stateDirs are the package managers' own state, caches and logs, and the
// kernel's pseudo file systems: what installing and removing a package may
// change without leaving anything behind.
var stateDirs = map[string]bool{"proc": true, "dev": true, "sys": true, "run": true, "tmp": true,
	"var/log": true, "var/cache": true, "var/lib/apt": true, "var/lib/dpkg": true, "var/lib/rpm": true,
	"var/lib/dnf": true, "usr/lib/sysimage": true}

// Paths lists, sorted, every path below root that a package may touch,
// leaving out the package managers' state (see stateDirs).
func Paths(root string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if stateDirs[rel] {
			return fs.SkipDir
		}
		paths = append(paths, rel)
		return nil
	})
	sort.Strings(paths)
	return paths, err
}

// DiffPaths returns what after adds to before and what it removes: what an
// install-and-remove cycle left behind or took away.
func DiffPaths(before, after []string) (added, removed []string) {
	b := map[string]bool{}
	for _, p := range before {
		b[p] = true
	}
	a := map[string]bool{}
	for _, p := range after {
		a[p] = true
		if !b[p] {
			added = append(added, p)
		}
	}
	for _, p := range before {
		if !a[p] {
			removed = append(removed, p)
		}
	}
	return added, removed
}
