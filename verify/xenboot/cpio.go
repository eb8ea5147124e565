package xenboot

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// cpioEntry is one member of a newc cpio archive.
type cpioEntry struct {
	Name  string      // path without a leading slash, e.g. "bin/busybox"
	Mode  fs.FileMode // permission bits plus fs.ModeDir, fs.ModeSymlink or fs.ModeCharDevice
	Data  []byte      // file contents, or the link target of a symlink
	Major uint32      // device numbers of a character device
	Minor uint32
}

// writeCPIO writes entries as a deterministic newc ("070701") archive:
// sorted by name, missing parent directories added, uid/gid 0, mtime 0,
// inode numbers in order, then the TRAILER!!! record.
func writeCPIO(w io.Writer, entries []cpioEntry) error {
	byName := map[string]cpioEntry{}
	for _, e := range entries {
		e.Name = strings.TrimPrefix(path.Clean("/"+e.Name), "/")
		if e.Name == "" {
			return fmt.Errorf("writing cpio: an entry has an empty name")
		}
		if old, dup := byName[e.Name]; dup && !(old.Mode.IsDir() && e.Mode.IsDir()) {
			return fmt.Errorf("writing cpio: %s appears twice", e.Name)
		}
		byName[e.Name] = e
		for dir := path.Dir(e.Name); dir != "."; dir = path.Dir(dir) {
			if _, ok := byName[dir]; !ok {
				byName[dir] = cpioEntry{Name: dir, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		if err := writeCPIOHeader(w, byName[n], ino); err != nil {
			return err
		}
		ino++
	}
	return writeCPIOHeader(w, cpioEntry{Name: "TRAILER!!!"}, 0)
}

func writeCPIOHeader(w io.Writer, e cpioEntry, ino uint32) error {
	var mode uint32 = uint32(e.Mode.Perm())
	nlink := uint32(1)
	data := e.Data
	switch {
	case e.Name == "TRAILER!!!":
		mode, nlink = 0, 1
	case e.Mode.IsDir():
		mode |= 0o040000
		nlink = 2
		data = nil
	case e.Mode&fs.ModeSymlink != 0:
		mode |= 0o120000
	case e.Mode&fs.ModeCharDevice != 0:
		mode |= 0o020000
		data = nil
	default:
		mode |= 0o100000
	}
	var rmaj, rmin uint32
	if e.Mode&fs.ModeCharDevice != 0 {
		rmaj, rmin = e.Major, e.Minor
	}
	name := e.Name + "\x00"
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name), 0)
	buf := make([]byte, 0, len(hdr)+len(name)+3+len(data)+3)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing cpio entry %s: %w", e.Name, err)
	}
	return nil
}

// pad4 pads b with NULs to a multiple of 4 bytes (entries start aligned,
// so aligning the running length of each entry's bytes aligns the stream).
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// writeCPIOGzip writes the archive gzip-compressed with a fixed header (no
// name, no mtime): the same entries give the same bytes.
func writeCPIOGzip(w io.Writer, entries []cpioEntry) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := writeCPIO(zw, entries); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing cpio: %w", err)
	}
	return nil
}
