// Package diff owns showing WHAT differs between two builds of an
// artifact, for the reproducibility checks: instead of "digest differs" it
// lists, in a bounded and deterministic order, the differing ar members of
// a .deb and the entries inside its control and data tarballs (mode,
// owner, mtime, size, sha256, link target, entries on one side only), the
// header tags and payload files of an .rpm, the entries of tar, tar.gz
// (OCI layers) and cpio archives, the key paths of JSON documents (SBOMs,
// OCI manifests and configs), the lines of text files, the entries of tree
// manifests, and the files of two directories, recursing into a differing
// member by its own format. Formats are recognized by content (magic
// numbers), not by name alone.
//
// diffoscope, when installed, gives a deeper byte-level view (Diffoscope);
// nothing here needs it.
package diff

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Difference is one thing that differs.
type Difference struct {
	// Where locates it, outermost first: e.g. ["data.tar.xz",
	// "./usr/bin/halvm-ghc"], ["header"], ["$.packages[SPDXID=x]"].
	// Empty means the whole file.
	Where []string `json:"where"`
	// Field names what differs: "mtime", "mode", "sha256", "presence",
	// "BUILDTIME", "value", "lines -3,2 +3,2", "bytes", ...
	Field string `json:"field"`
	// A and B are the two values (one line each); for "presence", the
	// side that lacks the entry says "absent".
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
	// Text is a multi-line detail (a unified-style hunk).
	Text string `json:"text,omitempty"`
}

// String renders the difference on one line (plus Text's lines).
func (d Difference) String() string {
	var b strings.Builder
	if len(d.Where) == 0 {
		b.WriteString("(whole file)")
	} else {
		b.WriteString(strings.Join(d.Where, " > "))
	}
	switch {
	case d.Field == "presence" && d.A == "absent":
		fmt.Fprintf(&b, ": only in B (%s)", d.B)
	case d.Field == "presence" && d.B == "absent":
		fmt.Fprintf(&b, ": only in A (%s)", d.A)
	case d.A != "" || d.B != "":
		fmt.Fprintf(&b, ": %s: %s != %s", d.Field, orNone(d.A), orNone(d.B))
	default:
		fmt.Fprintf(&b, ": %s", d.Field)
	}
	if d.Text != "" {
		for _, l := range strings.Split(strings.TrimRight(d.Text, "\n"), "\n") {
			b.WriteString("\n    ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Listing is the result of comparing two artifacts.
type Listing struct {
	A, B   string `json:"-"`
	Format string `json:"format"` // the format recognized at the top level
	// Total counts every difference found; Differences keeps the first
	// Options.Max of them, in deterministic order.
	Total       int          `json:"total"`
	Differences []Difference `json:"differences"`
}

// Identical reports whether the two artifacts are the same bytes.
func (l *Listing) Identical() bool { return l.Total == 0 }

// Truncated is how many differences were found but not kept.
func (l *Listing) Truncated() int { return l.Total - len(l.Differences) }

// Lines renders the listing: a heading, one entry per difference, a count
// of the ones not shown.
func (l *Listing) Lines() []string {
	if l.Identical() {
		return []string{fmt.Sprintf("%s and %s are identical (%s)", l.A, l.B, l.Format)}
	}
	plural := "s"
	if l.Total == 1 {
		plural = ""
	}
	out := []string{fmt.Sprintf("%s and %s differ (%s): %d difference%s", l.A, l.B, l.Format, l.Total, plural)}
	for _, d := range l.Differences {
		out = append(out, strings.Split(d.String(), "\n")...)
	}
	if n := l.Truncated(); n > 0 {
		out = append(out, fmt.Sprintf("... and %d more differences not shown", n))
	}
	out = append(out, "("+DiffoscopeHint+")")
	return out
}

// String is Lines joined with newlines.
func (l *Listing) String() string { return strings.Join(l.Lines(), "\n") + "\n" }

// Options bound the work and the output.
type Options struct {
	// Max is how many differences the listing keeps; 0 means 50.
	Max int
	// MaxNestedSize is the largest archive entry read into memory to
	// compare its content by format; 0 means 16 MiB. (Members of a file on
	// disk, like a .deb's data.tar, are read in place at any size.)
	MaxNestedSize int64
	// MaxNested is how many differing entries per archive are compared by
	// content; 0 means 20. The others are listed by size and sha256.
	MaxNested int
	// MaxHunkLines bounds the lines shown per text hunk; 0 means 40.
	MaxHunkLines int
	// Manifests are the tree manifest formats recognized, tried in order;
	// nil means DefaultManifestFormats().
	Manifests []ManifestFormat
}

func (o Options) withDefaults() Options {
	if o.Max <= 0 {
		o.Max = 50
	}
	if o.MaxNestedSize <= 0 {
		o.MaxNestedSize = 16 << 20
	}
	if o.MaxNested <= 0 {
		o.MaxNested = 20
	}
	if o.MaxHunkLines <= 0 {
		o.MaxHunkLines = 40
	}
	if o.Manifests == nil {
		o.Manifests = DefaultManifestFormats()
	}
	return o
}

// Paths compares two files or two directories.
func Paths(a, b string, o Options) (*Listing, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	switch {
	case fa.IsDir() && fb.IsDir():
		return Dirs(a, b, o)
	case !fa.IsDir() && !fb.IsDir():
		return Files(a, b, o)
	}
	return nil, fmt.Errorf("comparing %s and %s: one is a directory, the other is not", a, b)
}

// Files compares two files of the same artifact.
func Files(a, b string, o Options) (*Listing, error) {
	d := newDiffer(o)
	defer d.close()
	ba, err := d.fileBlob(a)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	bb, err := d.fileBlob(b)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	format, err := d.compare(nil, ba, bb)
	if err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", a, b, err)
	}
	return d.listing(a, b, format), nil
}

// Bytes compares two in-memory artifacts; name hints the format (e.g.
// "manifest.json").
func Bytes(name string, a, b []byte, o Options) (*Listing, error) {
	d := newDiffer(o)
	defer d.close()
	format, err := d.compare(nil, bytesBlob(name, a), bytesBlob(name, b))
	if err != nil {
		return nil, fmt.Errorf("comparing two versions of %s: %w", name, err)
	}
	return d.listing("A/"+name, "B/"+name, format), nil
}

// differ collects differences, bounded, in the order they are found.
type differ struct {
	o       Options
	diffs   []Difference
	total   int
	closers []io.Closer
}

func newDiffer(o Options) *differ { return &differ{o: o.withDefaults()} }

func (d *differ) close() {
	for _, c := range d.closers {
		c.Close()
	}
}

func (d *differ) listing(a, b, format string) *Listing {
	diffs := d.diffs
	if diffs == nil {
		diffs = []Difference{}
	}
	return &Listing{A: a, B: b, Format: format, Total: d.total, Differences: diffs}
}

func (d *differ) add(where []string, field, a, b string) {
	d.addDiff(Difference{Where: where, Field: field, A: a, B: b})
}

func (d *differ) addDiff(diff Difference) {
	d.total++
	if len(d.diffs) < d.o.Max {
		diff.Where = append([]string{}, diff.Where...)
		d.diffs = append(d.diffs, diff)
	}
}

// full reports whether no more differences will be kept: work that only
// produces more of them can stop early (the total is then a lower bound).
func (d *differ) full() bool { return len(d.diffs) >= d.o.Max }

func at(where []string, more ...string) []string {
	return append(append(make([]string, 0, len(where)+len(more)), where...), more...)
}

// blob is one side of a comparison: a file, a member of one, or bytes.
type blob struct {
	name string // base name, a format hint
	size int64  // -1 when unknown (a decompressed stream)
	open func() (io.ReadCloser, error)
	ra   io.ReaderAt // random access when the bytes are on disk or in memory
	data []byte      // the bytes, when in memory

	sum string // sha256, computed once
}

func bytesBlob(name string, b []byte) *blob {
	return &blob{name: name, size: int64(len(b)), data: b, ra: bytes.NewReader(b),
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func (d *differ) fileBlob(path string) (*blob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	d.closers = append(d.closers, f)
	return sectionBlob(filepath.Base(path), f, 0, fi.Size()), nil
}

func sectionBlob(name string, ra io.ReaderAt, off, size int64) *blob {
	return &blob{name: name, size: size, ra: io.NewSectionReader(ra, off, size),
		open: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(ra, off, size)), nil }}
}

// hash returns the blob's sha256 (and fixes its size if it was unknown).
func (b *blob) hash() (string, error) {
	if b.sum != "" {
		return b.sum, nil
	}
	r, err := b.open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", b.name, err)
	}
	b.size = n
	b.sum = hex.EncodeToString(h.Sum(nil))
	return b.sum, nil
}

// head returns up to n first bytes.
func (b *blob) head(n int) ([]byte, error) {
	if b.data != nil {
		if len(b.data) < n {
			return b.data, nil
		}
		return b.data[:n], nil
	}
	r, err := b.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", b.name, err)
	}
	return buf[:k], nil
}

// bytes returns the whole content if it is at most limit bytes.
func (b *blob) bytes(limit int64) ([]byte, error) {
	if b.data != nil {
		return b.data, nil
	}
	r, err := b.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", b.name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", b.name, limit)
	}
	b.data = data
	return data, nil
}

// compare lists how a and b differ at where and returns the format it
// compared them as. Every pair of differing blobs yields at least one
// difference: when the structural comparison finds none, the first
// differing byte is reported.
func (d *differ) compare(where []string, a, b *blob) (string, error) {
	ha, err := a.hash()
	if err != nil {
		return "", err
	}
	hb, err := b.hash()
	if err != nil {
		return "", err
	}
	fa, err := d.detect(a)
	if err != nil {
		return "", err
	}
	if ha == hb {
		return fa.name, nil
	}
	fb, err := d.detect(b)
	if err != nil {
		return "", err
	}
	before := d.total
	if fa.name != fb.name && fa.inner != nil && fb.inner != nil {
		// Compressed differently: say so, then compare what is inside.
		d.add(where, "compression", fa.name, fb.name)
		if _, err := d.compare(where, fa.inner(a), fb.inner(b)); err != nil {
			d.add(where, "unreadable", err.Error(), "")
		}
		return fa.name, nil
	}
	if fa.name != fb.name {
		d.add(where, "format", fa.name, fb.name)
		return fa.name, d.bytesDiff(where, a, b)
	} else if err := fa.compare(d, where, a, b); err != nil {
		d.add(where, "unreadable", err.Error(), "")
	}
	if d.total == before {
		if err := d.bytesDiff(where, a, b); err != nil {
			return "", err
		}
	}
	return fa.name, nil
}

// bytesDiff reports the sizes, digests and first differing offset.
func (d *differ) bytesDiff(where []string, a, b *blob) error {
	ra, err := a.open()
	if err != nil {
		return err
	}
	defer ra.Close()
	rb, err := b.open()
	if err != nil {
		return err
	}
	defer rb.Close()
	off, err := firstDifference(ra, rb)
	if err != nil {
		return err
	}
	d.addDiff(Difference{Where: where, Field: "bytes",
		A:    fmt.Sprintf("%d bytes sha256 %s", a.size, a.sum),
		B:    fmt.Sprintf("%d bytes sha256 %s", b.size, b.sum),
		Text: fmt.Sprintf("first difference at byte offset %d", off)})
	return nil
}

func firstDifference(a, b io.Reader) (int64, error) {
	bufA := make([]byte, 64<<10)
	bufB := make([]byte, 64<<10)
	var off int64
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		n := min(na, nb)
		for i := 0; i < n; i++ {
			if bufA[i] != bufB[i] {
				return off + int64(i), nil
			}
		}
		if na != nb {
			return off + int64(n), nil
		}
		off += int64(n)
		endA := errA == io.EOF || errA == io.ErrUnexpectedEOF
		endB := errB == io.EOF || errB == io.ErrUnexpectedEOF
		if errA != nil && !endA {
			return 0, errA
		}
		if errB != nil && !endB {
			return 0, errB
		}
		if endA || endB {
			return off, nil
		}
	}
}
