package diff

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// entry is one member of an archive (or file of a tree) reduced to what
// is compared: ordered attributes and, for regular files, the content's
// size and sha256.
type entry struct {
	name    string
	attrs   []attr
	content bool // a regular file whose content can be compared by format
	size    int64
	sum     string
	blob    *blob // random access to the content; nil when it needs a second pass
}

type attr struct{ key, val string }

// contentAttrs are the attributes that only restate the content; they are
// not listed when the content itself is compared entry by entry.
var contentAttrs = map[string]bool{"size": true, "sha256": true, "digest": true}

// fetchFunc reads the contents of the named entries of one side (a second
// pass over a stream archive). side is 0 for A, 1 for B.
type fetchFunc func(side int, names map[string]bool) (map[string][]byte, error)

// keyed gives entries unique keys (a repeated name gets "#2", "#3") and
// returns them with the keys in archive order.
func keyed(es []entry) (map[string]*entry, []string) {
	m := make(map[string]*entry, len(es))
	order := make([]string, 0, len(es))
	seen := map[string]int{}
	for i := range es {
		k := es[i].name
		seen[k]++
		if n := seen[k]; n > 1 {
			k = fmt.Sprintf("%s#%d", k, n)
		}
		m[k] = &es[i]
		order = append(order, k)
	}
	return m, order
}

// compareEntries lists entries on one side only, attributes that differ,
// the archive order when only it differs, and compares differing contents
// by their own format (up to MaxNested of them per archive).
func (d *differ) compareEntries(where []string, ea, eb []entry, fetch fetchFunc) error {
	ma, orderA := keyed(ea)
	mb, orderB := keyed(eb)
	if sameKeys(ma, mb) && strings.Join(orderA, "\x00") != strings.Join(orderB, "\x00") {
		for i := range orderA {
			if orderA[i] != orderB[i] {
				d.addDiff(Difference{Where: where, Field: "entry order",
					A: fmt.Sprintf("entry %d is %s", i+1, orderA[i]), B: fmt.Sprintf("entry %d is %s", i+1, orderB[i])})
				break
			}
		}
	}
	keys := unionKeys(ma, mb)
	type pending struct {
		key   string
		attrs []Difference
		nest  bool
	}
	var plan []pending
	nested := 0
	wantA, wantB := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		a, b := ma[k], mb[k]
		p := pending{key: k}
		switch {
		case a == nil:
			p.attrs = append(p.attrs, Difference{Where: at(where, k), Field: "presence", A: "absent", B: describe(b)})
		case b == nil:
			p.attrs = append(p.attrs, Difference{Where: at(where, k), Field: "presence", A: describe(a), B: "absent"})
		default:
			contentDiffers := a.content && b.content && a.sum != b.sum
			if contentDiffers && nested < d.o.MaxNested &&
				((a.blob != nil && b.blob != nil) || (fetch != nil && a.size <= d.o.MaxNestedSize && b.size <= d.o.MaxNestedSize)) {
				p.nest = true
				nested++
				if a.blob == nil {
					wantA[a.name], wantB[b.name] = true, true
				}
			}
			p.attrs = attrDiffs(at(where, k), a.attrs, b.attrs, p.nest)
		}
		if len(p.attrs) > 0 || p.nest {
			plan = append(plan, p)
		}
	}
	var gotA, gotB map[string][]byte
	if len(wantA) > 0 {
		var err error
		if gotA, err = fetch(0, wantA); err != nil {
			return err
		}
		if gotB, err = fetch(1, wantB); err != nil {
			return err
		}
	}
	for _, p := range plan {
		for _, diff := range p.attrs {
			d.addDiff(diff)
		}
		if !p.nest {
			continue
		}
		a, b := ma[p.key], mb[p.key]
		ba, bb := a.blob, b.blob
		if ba == nil {
			da, okA := gotA[a.name]
			db, okB := gotB[b.name]
			if !okA || !okB {
				// Could not read them back: list what is known.
				for _, diff := range attrDiffs(at(where, p.key), a.attrs, b.attrs, false) {
					if contentAttrs[diff.Field] {
						d.addDiff(diff)
					}
				}
				continue
			}
			ba, bb = bytesBlob(baseName(a.name), da), bytesBlob(baseName(b.name), db)
		}
		if _, err := d.compare(at(where, p.key), ba, bb); err != nil {
			return err
		}
	}
	return nil
}

func attrDiffs(where []string, a, b []attr, skipContent bool) []Difference {
	var out []Difference
	mb := map[string]string{}
	for _, x := range b {
		mb[x.key] = x.val
	}
	ma := map[string]string{}
	for _, x := range a {
		ma[x.key] = x.val
	}
	var keys []string
	for _, x := range a {
		keys = append(keys, x.key)
	}
	for _, x := range b {
		if _, ok := ma[x.key]; !ok {
			keys = append(keys, x.key)
		}
	}
	for _, k := range keys {
		if skipContent && contentAttrs[k] {
			continue
		}
		if ma[k] != mb[k] {
			out = append(out, Difference{Where: where, Field: k, A: ma[k], B: mb[k]})
		}
	}
	return out
}

func describe(e *entry) string {
	var parts []string
	for _, x := range e.attrs {
		switch x.key {
		case "type", "size", "link":
			parts = append(parts, x.key+" "+x.val)
		}
	}
	if len(parts) == 0 {
		return "present"
	}
	return strings.Join(parts, ", ")
}

func sameKeys(a, b map[string]*entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func unionKeys(a, b map[string]*entry) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// fmtTime shows a timestamp as UTC RFC 3339 and its Unix seconds.
func fmtTime(t time.Time) string {
	if t.Nanosecond() != 0 {
		return fmt.Sprintf("%s (%d.%09d)", t.UTC().Format(time.RFC3339Nano), t.Unix(), t.Nanosecond())
	}
	return fmt.Sprintf("%s (%d)", t.UTC().Format(time.RFC3339), t.Unix())
}

func fmtMode(m int64) string { return fmt.Sprintf("%04o", m) }

func hashReader(r io.Reader, keep bool, limit int64) (int64, string, []byte, error) {
	h := sha256.New()
	var buf *bytes.Buffer
	w := io.Writer(h)
	if keep {
		buf = &bytes.Buffer{}
		w = io.MultiWriter(h, &limitedBuffer{buf: buf, limit: limit})
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return 0, "", nil, err
	}
	var data []byte
	if keep && int64(buf.Len()) == n {
		data = buf.Bytes()
	}
	return n, hex.EncodeToString(h.Sum(nil)), data, nil
}

// limitedBuffer keeps at most limit bytes and silently drops the rest.
type limitedBuffer struct {
	buf   *bytes.Buffer
	limit int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.limit - int64(l.buf.Len()); room > 0 {
		if int64(len(p)) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

// --- tar ---

func compareTar(d *differ, where []string, a, b *blob) error {
	ea, _, err := readTar(a, nil, 0)
	if err != nil {
		return fmt.Errorf("reading tar A: %w", err)
	}
	eb, _, err := readTar(b, nil, 0)
	if err != nil {
		return fmt.Errorf("reading tar B: %w", err)
	}
	fetch := func(side int, names map[string]bool) (map[string][]byte, error) {
		src := a
		if side == 1 {
			src = b
		}
		_, got, err := readTar(src, names, d.o.MaxNestedSize)
		return got, err
	}
	return d.compareEntries(where, ea, eb, fetch)
}

var tarTypes = map[byte]string{
	tar.TypeReg: "regular", tar.TypeLink: "hardlink", tar.TypeSymlink: "symlink", tar.TypeChar: "char",
	tar.TypeBlock: "block", tar.TypeDir: "directory", tar.TypeFifo: "fifo", tar.TypeCont: "contiguous",
	tar.TypeGNUSparse: "sparse",
}

// paxShown are PAX records already shown through a header field.
var paxShown = map[string]bool{"path": true, "linkpath": true, "size": true, "uid": true, "gid": true,
	"uname": true, "gname": true, "mtime": true, "atime": true, "ctime": true}

// readTar lists a tar's entries; the contents of the entries named in want
// are returned too (when at most limit bytes).
func readTar(b *blob, want map[string]bool, limit int64) ([]entry, map[string][]byte, error) {
	r, err := b.open()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var es []entry
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		typ, ok := tarTypes[h.Typeflag]
		if h.Typeflag == tar.TypeRegA {
			typ, ok = "regular", true
		}
		if !ok {
			typ = fmt.Sprintf("type %q", h.Typeflag)
		}
		e := entry{name: h.Name}
		add := func(k, v string) { e.attrs = append(e.attrs, attr{k, v}) }
		add("type", typ)
		add("mode", fmtMode(h.Mode))
		add("uid", strconv.Itoa(h.Uid))
		add("gid", strconv.Itoa(h.Gid))
		add("uname", h.Uname)
		add("gname", h.Gname)
		add("mtime", fmtTime(h.ModTime))
		if !h.AccessTime.IsZero() {
			add("atime", fmtTime(h.AccessTime))
		}
		if !h.ChangeTime.IsZero() {
			add("ctime", fmtTime(h.ChangeTime))
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			add("device", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor))
		}
		if h.Linkname != "" {
			add("link", h.Linkname)
		}
		var pax []string
		for k := range h.PAXRecords {
			if !paxShown[k] {
				pax = append(pax, k)
			}
		}
		sort.Strings(pax)
		for _, k := range pax {
			add("pax "+k, h.PAXRecords[k])
		}
		add("header format", h.Format.String())
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
			keep := want[h.Name] && h.Size <= limit
			n, sum, data, err := hashReader(tr, keep, limit)
			if err != nil {
				return nil, nil, fmt.Errorf("reading %s: %w", h.Name, err)
			}
			e.content, e.size, e.sum = true, n, sum
			add("size", strconv.FormatInt(n, 10))
			add("sha256", sum)
			if keep && data != nil {
				if _, dup := got[h.Name]; !dup {
					got[h.Name] = data
				}
			}
		} else if h.Size != 0 {
			add("size", strconv.FormatInt(h.Size, 10))
		}
		es = append(es, e)
	}
	return es, got, nil
}

// --- cpio (newc, as in initramfs and rpm payloads) ---

func compareCpio(d *differ, where []string, a, b *blob) error {
	ea, _, err := readCpio(a, nil, 0)
	if err != nil {
		return fmt.Errorf("reading cpio A: %w", err)
	}
	eb, _, err := readCpio(b, nil, 0)
	if err != nil {
		return fmt.Errorf("reading cpio B: %w", err)
	}
	fetch := func(side int, names map[string]bool) (map[string][]byte, error) {
		src := a
		if side == 1 {
			src = b
		}
		_, got, err := readCpio(src, names, d.o.MaxNestedSize)
		return got, err
	}
	return d.compareEntries(where, ea, eb, fetch)
}

func cpioType(mode uint64) string {
	switch mode & 0o170000 {
	case 0o100000:
		return "regular"
	case 0o040000:
		return "directory"
	case 0o120000:
		return "symlink"
	case 0o020000:
		return "char"
	case 0o060000:
		return "block"
	case 0o010000:
		return "fifo"
	case 0o140000:
		return "socket"
	}
	return fmt.Sprintf("type %06o", mode&0o170000)
}

// readCpio reads a newc ("070701") or crc ("070702") cpio archive; it
// stops at the TRAILER!!! entry (a Linux initramfs may concatenate several
// archives; only the first is read).
func readCpio(b *blob, want map[string]bool, limit int64) ([]entry, map[string][]byte, error) {
	rc, err := b.open()
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	r := &countReader{r: rc}
	var es []entry
	got := map[string][]byte{}
	hdr := make([]byte, 110)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, nil, fmt.Errorf("reading a header at offset %d: %w", r.n, err)
		}
		magic := string(hdr[:6])
		if magic != "070701" && magic != "070702" {
			return nil, nil, fmt.Errorf("bad magic %q at offset %d", magic, r.n-110)
		}
		var f [13]uint64
		for i := range f {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, nil, fmt.Errorf("bad header field at offset %d: %w", r.n-110, err)
			}
			f[i] = v
		}
		ino, mode, uid, gid, nlink, mtime, size := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
		devMaj, devMin, rdevMaj, rdevMin, nameSize := f[7], f[8], f[9], f[10], f[11]
		nameBuf := make([]byte, nameSize)
		if _, err := io.ReadFull(r, nameBuf); err != nil {
			return nil, nil, err
		}
		name := string(bytes.TrimRight(nameBuf, "\x00"))
		if err := r.skip(pad4(r.n)); err != nil {
			return nil, nil, err
		}
		if name == "TRAILER!!!" {
			break
		}
		e := entry{name: name}
		add := func(k, v string) { e.attrs = append(e.attrs, attr{k, v}) }
		typ := cpioType(mode)
		add("type", typ)
		add("mode", fmtMode(int64(mode&0o7777)))
		add("uid", strconv.FormatUint(uid, 10))
		add("gid", strconv.FormatUint(gid, 10))
		add("nlink", strconv.FormatUint(nlink, 10))
		add("mtime", fmtTime(time.Unix(int64(mtime), 0)))
		add("inode", strconv.FormatUint(ino, 10))
		add("dev", fmt.Sprintf("%d,%d", devMaj, devMin))
		if typ == "char" || typ == "block" {
			add("rdev", fmt.Sprintf("%d,%d", rdevMaj, rdevMin))
		}
		body := io.LimitReader(r, int64(size))
		switch typ {
		case "symlink":
			t, err := io.ReadAll(body)
			if err != nil {
				return nil, nil, err
			}
			add("link", string(t))
		case "regular":
			keep := want[name] && int64(size) <= limit
			n, sum, data, err := hashReader(body, keep, limit)
			if err != nil {
				return nil, nil, fmt.Errorf("reading %s: %w", name, err)
			}
			if n != int64(size) {
				return nil, nil, fmt.Errorf("%s: truncated (%d of %d bytes)", name, n, size)
			}
			e.content, e.size, e.sum = true, n, sum
			add("size", strconv.FormatUint(size, 10))
			add("sha256", sum)
			if keep && data != nil {
				got[name] = data
			}
		default:
			if _, err := io.Copy(io.Discard, body); err != nil {
				return nil, nil, err
			}
			if size != 0 {
				add("size", strconv.FormatUint(size, 10))
			}
		}
		if err := r.skip(pad4(r.n)); err != nil {
			return nil, nil, err
		}
		es = append(es, e)
	}
	return es, got, nil
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) skip(n int64) error {
	if n == 0 {
		return nil
	}
	_, err := io.CopyN(io.Discard, c, n)
	return err
}

// --- ar (.deb, .a) ---

func compareAr(d *differ, where []string, a, b *blob) error {
	ea, err := d.readAr(a)
	if err != nil {
		return fmt.Errorf("reading ar A: %w", err)
	}
	eb, err := d.readAr(b)
	if err != nil {
		return fmt.Errorf("reading ar B: %w", err)
	}
	pairDebMembers(ea, eb)
	return d.compareEntries(where, ea, eb, nil)
}

// pairDebMembers lets control.tar.* and data.tar.* members compressed
// differently on the two sides be compared with each other: both get the
// key "<prefix>.*" and their real names become a "name" attribute.
func pairDebMembers(ea, eb []entry) {
	for _, prefix := range []string{"control.tar", "data.tar"} {
		ia, ib := memberIndex(ea, prefix), memberIndex(eb, prefix)
		if ia < 0 || ib < 0 || ea[ia].name == eb[ib].name {
			continue
		}
		for _, e := range []*entry{&ea[ia], &eb[ib]} {
			e.attrs = append([]attr{{"name", e.name}}, e.attrs...)
			e.name = prefix + ".*"
		}
	}
}

// memberIndex finds the one member named prefix or prefix.<ext>, or -1.
func memberIndex(es []entry, prefix string) int {
	found := -1
	for i, e := range es {
		if e.name == prefix || strings.HasPrefix(e.name, prefix+".") {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// readAr lists the members of a common (GNU or BSD) ar archive, each with
// random access to its content.
func (d *differ) readAr(b *blob) ([]entry, error) {
	ra := b.ra
	size := b.size
	if ra == nil {
		data, err := b.bytes(d.o.MaxNestedSize)
		if err != nil {
			return nil, err
		}
		ra, size = bytes.NewReader(data), int64(len(data))
	}
	magic := make([]byte, len(magicAr))
	if _, err := ra.ReadAt(magic, 0); err != nil || !bytes.Equal(magic, magicAr) {
		return nil, errors.New("not an ar archive")
	}
	var es []entry
	var longNames []byte
	off := int64(len(magicAr))
	hdr := make([]byte, 60)
	for off < size {
		if _, err := ra.ReadAt(hdr, off); err != nil {
			return nil, fmt.Errorf("reading the member header at offset %d: %w", off, err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, fmt.Errorf("bad member header at offset %d", off)
		}
		field := func(i, j int) string { return strings.TrimRight(string(hdr[i:j]), " ") }
		msize, err := strconv.ParseInt(field(48, 58), 10, 64)
		if err != nil || msize < 0 || off+60+msize > size {
			return nil, fmt.Errorf("bad member size %q at offset %d", field(48, 58), off)
		}
		dataOff := off + 60
		name := field(0, 16)
		switch {
		case name == "//": // GNU long-name table
			longNames = make([]byte, msize)
			if _, err := ra.ReadAt(longNames, dataOff); err != nil {
				return nil, err
			}
		case strings.HasPrefix(name, "#1/"): // BSD: the name follows the header
			n, err := strconv.Atoi(name[3:])
			if err != nil || int64(n) > msize {
				return nil, fmt.Errorf("bad BSD member name %q", name)
			}
			nb := make([]byte, n)
			if _, err := ra.ReadAt(nb, dataOff); err != nil {
				return nil, err
			}
			name = string(bytes.TrimRight(nb, "\x00"))
			dataOff += int64(n)
			msize -= int64(n)
		case len(name) > 1 && name[0] == '/' && name[1] >= '0' && name[1] <= '9' && longNames != nil:
			i, err := strconv.Atoi(name[1:])
			if err == nil && i < len(longNames) {
				rest := longNames[i:]
				if j := bytes.Index(rest, []byte("/\n")); j >= 0 {
					rest = rest[:j]
				}
				name = string(rest)
			}
		case name != "/" && strings.HasSuffix(name, "/"):
			name = strings.TrimSuffix(name, "/")
		}
		if name != "//" {
			mb := sectionBlob(name, ra, dataOff, msize)
			sum, err := mb.hash()
			if err != nil {
				return nil, err
			}
			e := entry{name: name, content: true, size: msize, sum: sum, blob: mb}
			e.attrs = []attr{
				{"mtime", arTime(field(16, 28))}, {"uid", field(28, 34)}, {"gid", field(34, 40)},
				{"mode", field(40, 48)}, {"size", strconv.FormatInt(msize, 10)}, {"sha256", sum},
			}
			es = append(es, e)
		}
		off = dataOff + msize
		off += off % 2
	}
	return es, nil
}

func arTime(s string) string {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return fmtTime(time.Unix(n, 0))
	}
	return s
}
