package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Tree is an installed toolchain: Root is the DESTDIR of `make install`,
// Prefix and Libdir the configure prefix and libdir it was installed with
// (absolute, e.g. "/usr" and "/usr/lib64"). Every file under Root must lie
// under Prefix.
type Tree struct {
	Root   string
	Prefix string
	Libdir string
}

// Layout is the tree's install layout.
func (t Tree) Layout() Layout { return Layout{Prefix: t.Prefix, Libdir: t.Libdir} }

// entry is one path of a package: a directory, a symlink or a regular file.
type entry struct {
	Dest   string      // absolute path in the package
	Source string      // file on disk (regular files)
	Link   string      // symlink target
	Mode   fs.FileMode // permission bits (0755/0644) and type
	Size   int64
}

func (e entry) isDir() bool     { return e.Mode.IsDir() }
func (e entry) isSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// systemDirs are directories other packages own: packages never own them
// (rpm) and never remove them.
var systemDirs = map[string]bool{
	"/etc": true, "/etc/apt": true, "/etc/apt/keyrings": true, "/etc/pki": true, "/etc/pki/rpm-gpg": true,
	"/usr": true, "/usr/bin": true, "/usr/sbin": true, "/usr/include": true, "/usr/lib": true, "/usr/lib64": true,
	"/usr/lib/x86_64-linux-gnu": true, "/usr/libexec": true, "/usr/share": true, "/usr/share/doc": true,
	"/usr/share/licenses": true, "/usr/share/man": true, "/usr/share/man/man1": true,
	"/usr/share/lintian": true, "/usr/share/lintian/overrides": true,
}

// normMode is the mode a package gives a file: 0755 for directories and
// files with any execute bit, 0644 otherwise. Set-id, sticky and group/other
// write bits never reach a package.
func normMode(m fs.FileMode) fs.FileMode {
	switch {
	case m.IsDir():
		return fs.ModeDir | 0o755
	case m&fs.ModeSymlink != 0:
		return fs.ModeSymlink | 0o777
	case m&0o111 != 0:
		return 0o755
	default:
		return 0o644
	}
}

// walkTree lists root (a directory) as package entries placed under dest,
// sorted by destination, with normalized modes. skip names destinations to
// leave out. Problems (special files, unreadable entries) are collected.
func walkTree(root, dest string, skip map[string]bool, problems *[]string) []entry {
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("reading %s: %v", p, err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		d2 := path.Join(dest, filepath.ToSlash(rel))
		if skip[d2] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("reading %s: %v", p, err))
			return nil
		}
		m := info.Mode()
		switch {
		case m.IsDir():
			if d2 != "/" && !systemDirs[d2] {
				out = append(out, entry{Dest: d2, Mode: normMode(m)})
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				*problems = append(*problems, fmt.Sprintf("reading link %s: %v", p, err))
				return nil
			}
			out = append(out, entry{Dest: d2, Link: target, Mode: normMode(m)})
		case m.IsRegular():
			out = append(out, entry{Dest: d2, Source: p, Mode: normMode(m), Size: info.Size()})
		default:
			*problems = append(*problems, fmt.Sprintf("%s: %s is not a regular file, directory or symlink: packages carry none", p, m.Type()))
		}
		return nil
	})
	if err != nil {
		*problems = append(*problems, fmt.Sprintf("walking %s: %v", root, err))
	}
	return out
}

// leak is a forbidden string found in a file or link target.
type leak struct{ Path, What string }

// scanLeaks searches every regular file and symlink target of entries for
// any of the forbidden strings, in parallel, and returns the hits sorted.
func scanLeaks(ctx context.Context, entries []entry, forbidden []string) ([]leak, error) {
	var needles [][]byte
	for _, f := range forbidden {
		if f != "" {
			needles = append(needles, []byte(f))
		}
	}
	if len(needles) == 0 {
		return nil, nil
	}
	var (
		mu    sync.Mutex
		leaks []leak
		errs  []error
	)
	add := func(p, what string) {
		mu.Lock()
		leaks = append(leaks, leak{p, what})
		mu.Unlock()
	}
	jobs := make(chan entry)
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				if e.isSymlink() {
					for _, n := range needles {
						if strings.Contains(e.Link, string(n)) {
							add(e.Dest, string(n))
						}
					}
					continue
				}
				what, err := fileContains(e.Source, needles)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				if what != "" {
					add(e.Dest, what)
				}
			}
		}()
	}
	for _, e := range entries {
		if e.isDir() {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(leaks, func(i, j int) bool {
		if leaks[i].Path != leaks[j].Path {
			return leaks[i].Path < leaks[j].Path
		}
		return leaks[i].What < leaks[j].What
	})
	return leaks, nil
}

// fileContains reports the first needle found in the file, reading it in
// chunks that overlap by the longest needle.
func fileContains(name string, needles [][]byte) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("scanning for build-path leaks: %w", err)
	}
	defer f.Close()
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	buf := make([]byte, 1<<20+longest)
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		chunk := buf[:keep+n]
		for _, nd := range needles {
			if bytes.Contains(chunk, nd) {
				return string(nd), nil
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("scanning for build-path leaks: %w", err)
		}
		keep = min(longest-1, len(chunk))
		copy(buf, chunk[len(chunk)-keep:])
	}
}

// describeLeaks renders leaks for an error message: every file, at most
// limit of them named.
func describeLeaks(leaks []leak, limit int) string {
	var parts []string
	for i, l := range leaks {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(leaks)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%s contains %q", l.Path, l.What))
	}
	return strings.Join(parts, "; ")
}
