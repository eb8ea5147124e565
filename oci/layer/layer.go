// Package layer owns the bytes of image layers: it reads a root filesystem
// tarball into a normalized Tree (sorted paths, clamped mtimes, numeric
// owners only, no device nodes or run-time leftovers) and writes a Tree as
// a deterministic layer tar, either whole or as the difference to a lower
// Tree (changed entries plus OCI whiteouts for removed ones).
//
// Same tarball content in, same layer bytes out, on any machine.
package layer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one normalized file system object.
type Entry struct {
	Path     string // clean, relative, no leading "./" or "/" (directories without trailing slash)
	Type     byte   // tar.TypeReg, TypeDir, TypeSymlink, TypeLink (hard link: Linkname is the target path)
	Mode     int64  // permission bits incl. setuid/setgid/sticky
	UID, GID int
	Size     int64
	SHA256   string // hex digest of the content of regular files
	Linkname string
	ModTime  time.Time
	Xattrs   map[string]string // SCHILY.xattr.* records (capabilities)
}

// same reports whether two entries describe the same object.
func (e *Entry) same(o *Entry) bool {
	if e.Type != o.Type || e.Mode != o.Mode || e.UID != o.UID || e.GID != o.GID || e.Size != o.Size ||
		e.SHA256 != o.SHA256 || e.Linkname != o.Linkname || !e.ModTime.Equal(o.ModTime) || len(e.Xattrs) != len(o.Xattrs) {
		return false
	}
	for k, v := range e.Xattrs {
		if o.Xattrs[k] != v {
			return false
		}
	}
	return true
}

// Options control normalization.
type Options struct {
	// Epoch is SOURCE_DATE_EPOCH: every later mtime is clamped to it.
	Epoch time.Time
	// Exclude lists path patterns (path.Match syntax, relative, no leading
	// slash) whose entries are dropped. A pattern "dir/*" drops the whole
	// subtree below dir but keeps dir itself.
	Exclude []string
}

// DefaultExclude drops what a container runtime provides or what only
// records when and where a root filesystem was built.
var DefaultExclude = []string{
	"dev/*", "proc/*", "sys/*", "run/*", "tmp/*", "var/tmp/*",
	"var/lib/apt/lists/*", "var/cache/apt/*",
	"var/log/*.log", "var/log/apt/*",
	"var/cache/ldconfig/aux-cache",
	"var/cache/debconf/*-old", "var/lib/dpkg/*-old",
	"etc/resolv.conf", "etc/hostname",
}

// Tree is a normalized root filesystem. File contents live in a
// content-addressed blob directory that several trees may share.
type Tree struct {
	entries map[string]*Entry
	blobs   string
	epoch   time.Time
}

// Entries returns the entries sorted by path.
func (t *Tree) Entries() []*Entry {
	out := make([]*Entry, 0, len(t.entries))
	for _, p := range t.paths() {
		out = append(out, t.entries[p])
	}
	return out
}

// Lookup returns the entry at p (relative, no leading slash).
func (t *Tree) Lookup(p string) (*Entry, bool) {
	e, ok := t.entries[p]
	return e, ok
}

// Open opens the content of the regular file at p.
func (t *Tree) Open(p string) (io.ReadCloser, error) {
	e, ok := t.entries[p]
	if !ok {
		return nil, fmt.Errorf("opening %s: not in the tree", p)
	}
	for e.Type == tar.TypeLink {
		e, ok = t.entries[e.Linkname]
		if !ok {
			return nil, fmt.Errorf("opening %s: dangling hard link", p)
		}
	}
	if e.Type != tar.TypeReg {
		return nil, fmt.Errorf("opening %s: not a regular file", p)
	}
	return os.Open(t.blobPath(e.SHA256))
}

func (t *Tree) paths() []string {
	ps := make([]string, 0, len(t.entries))
	for p := range t.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (t *Tree) blobPath(sum string) string { return filepath.Join(t.blobs, sum) }

// Read reads a root filesystem tarball (as mmdebstrap or tar -C root . write
// it) into a Tree, storing file contents under blobDir.
func Read(r io.Reader, blobDir string, opt Options) (*Tree, error) {
	if opt.Epoch.IsZero() {
		return nil, errors.New("reading root filesystem: no epoch given: set SOURCE_DATE_EPOCH")
	}
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("reading root filesystem: %w", err)
	}
	t := &Tree{entries: map[string]*Entry{}, blobs: blobDir, epoch: opt.Epoch.UTC()}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading root filesystem tarball: %w", err)
		}
		p := cleanPath(h.Name)
		if p == "" || excluded(p, opt.Exclude) {
			continue
		}
		e := &Entry{
			Path: p, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
			ModTime: clamp(h.ModTime, opt.Epoch),
		}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[strings.TrimPrefix(k, "SCHILY.xattr.")] = v
			}
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			e.Type = tar.TypeReg
			sum, n, err := storeBlob(blobDir, tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s from the root filesystem tarball: %w", p, err)
			}
			e.SHA256, e.Size = sum, n
		case tar.TypeDir:
			e.Type = tar.TypeDir
		case tar.TypeSymlink:
			e.Type, e.Linkname, e.Mode = tar.TypeSymlink, h.Linkname, 0o777
		case tar.TypeLink:
			e.Type, e.Linkname = tar.TypeLink, cleanPath(h.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			// Device nodes and fifos belong to the runtime, not to an image.
			continue
		default:
			return nil, fmt.Errorf("reading root filesystem tarball: %s: unsupported entry type %q", p, h.Typeflag)
		}
		t.entries[p] = e
	}
	// Resolve hard links to their content so that a tree compares by what
	// a path holds, not by how the tarball happened to share an inode.
	for _, e := range t.entries {
		if e.Type != tar.TypeLink {
			continue
		}
		target, ok := t.entries[e.Linkname]
		if !ok || target.Type != tar.TypeReg {
			return nil, fmt.Errorf("reading root filesystem tarball: hard link %s points to %s, which is not a regular file in the tarball", e.Path, e.Linkname)
		}
		// Same inode: same content and metadata as the target.
		path := e.Path
		*e = *target
		e.Path = path
	}
	return t, nil
}

// ReadFile is Read on a tarball file.
func ReadFile(tarPath, blobDir string, opt Options) (*Tree, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, fmt.Errorf("reading root filesystem: %w", err)
	}
	defer f.Close()
	return Read(f, blobDir, opt)
}

func storeBlob(dir string, r io.Reader) (string, int64, error) {
	tmp, err := os.CreateTemp(dir, ".blob-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := filepath.Join(dir, sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, n, nil
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, err
	}
	return sum, n, nil
}

func cleanPath(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func excluded(p string, patterns []string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
		// "dir/*" also drops everything deeper below dir.
		if base, ok := strings.CutSuffix(pat, "/*"); ok {
			for a := path.Dir(p); a != "."; a = path.Dir(a) {
				if ok, _ := path.Match(base, a); ok {
					return true
				}
			}
		}
	}
	return false
}

func clamp(t, epoch time.Time) time.Time {
	t = t.Truncate(time.Second)
	if t.After(epoch) || t.IsZero() || t.Unix() < 0 {
		return epoch.UTC()
	}
	return t.UTC()
}

// Stats describes a written layer.
type Stats struct {
	Entries   int   // entries written, whiteouts included
	Whiteouts int   // removed paths
	Bytes     int64 // uncompressed file content bytes
}

// Write writes t as a layer tar to w: all of t when lower is nil, else
// the entries that differ from lower plus whiteouts for paths lower has
// and t does not. Applying the result on top of lower yields t.
func (t *Tree) Write(w io.Writer, lower *Tree) (Stats, error) {
	var st Stats
	type item struct {
		path     string
		whiteout bool
	}
	var items []item
	for p, e := range t.entries {
		if lower != nil {
			if le, ok := lower.entries[p]; ok && le.same(e) {
				continue
			}
		}
		items = append(items, item{path: p})
	}
	if lower != nil {
		for p := range lower.entries {
			if _, ok := t.entries[p]; ok {
				continue
			}
			// One whiteout for a removed directory covers its subtree.
			if parentRemoved(p, t, lower) {
				continue
			}
			items = append(items, item{path: p, whiteout: true})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })

	tw := tar.NewWriter(w)
	// Hard links inside one layer: the first path (in sorted order) with a
	// given content and metadata is written as a file, later identical
	// ones as links to it. Only within the layer being written.
	written := map[string]string{}
	for _, it := range items {
		if it.whiteout {
			dir, base := path.Split(it.path)
			h := &tar.Header{
				Typeflag: tar.TypeReg, Name: dir + ".wh." + base, Mode: 0o644,
				ModTime: t.epoch,
			}
			if err := writeHeader(tw, h); err != nil {
				return st, err
			}
			st.Entries++
			st.Whiteouts++
			continue
		}
		e := t.entries[it.path]
		h := &tar.Header{
			Name: e.Path, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: e.ModTime,
			Typeflag: e.Type, Linkname: e.Linkname,
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if e.Type == tar.TypeDir {
			h.Name += "/"
		}
		if e.Type == tar.TypeReg {
			key := fmt.Sprintf("%s %o %d %d %d %d", e.SHA256, e.Mode, e.UID, e.GID, e.ModTime.Unix(), len(e.Xattrs))
			if first, ok := written[key]; ok && len(e.Xattrs) == 0 && e.Size > 0 {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				if err := writeHeader(tw, h); err != nil {
					return st, err
				}
				st.Entries++
				continue
			}
			written[key] = e.Path
			h.Size = e.Size
		}
		if err := writeHeader(tw, h); err != nil {
			return st, err
		}
		if e.Type == tar.TypeReg {
			f, err := os.Open(t.blobPath(e.SHA256))
			if err != nil {
				return st, fmt.Errorf("writing layer: %s: %w", e.Path, err)
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return st, fmt.Errorf("writing layer: %s: %w", e.Path, err)
			}
			st.Bytes += e.Size
		}
		st.Entries++
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("writing layer: %w", err)
	}
	return st, nil
}

func writeHeader(tw *tar.Writer, h *tar.Header) error {
	// archive/tar picks ustar when it can and PAX only when a header needs it.
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing layer: %s: %w", h.Name, err)
	}
	return nil
}

// parentRemoved reports whether some ancestor directory of p is gone in t
// or replaced by a non-directory: its whiteout or replacement already
// hides p.
func parentRemoved(p string, t, lower *Tree) bool {
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if _, inLower := lower.entries[d]; inLower {
			if te, inT := t.entries[d]; !inT || te.Type != tar.TypeDir {
				return true
			}
		}
	}
	return false
}
