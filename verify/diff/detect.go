package diff

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// format is a recognized kind of content and how to compare two of them.
type format struct {
	name    string
	compare func(d *differ, where []string, a, b *blob) error
	// inner decompresses, for compression formats.
	inner func(b *blob) *blob
}

const sniffLen = 4096

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicRPM   = []byte{0xed, 0xab, 0xee, 0xdb}
	magicAr    = []byte("!<arch>\n")
)

// detect recognizes a blob's format by its first bytes and its name.
func (d *differ) detect(b *blob) (format, error) {
	h, err := b.head(sniffLen)
	if err != nil {
		return format{}, err
	}
	switch {
	case bytes.HasPrefix(h, magicGzip):
		return compressed("gzip", ".gz", func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }), nil
	case bytes.HasPrefix(h, magicXz):
		return compressed("xz", ".xz", func(r io.Reader) (io.ReadCloser, error) {
			zr, err := xz.NewReader(r)
			return io.NopCloser(zr), err
		}), nil
	case bytes.HasPrefix(h, magicZstd):
		return compressed("zstd", ".zst", func(r io.Reader) (io.ReadCloser, error) {
			zr, err := zstd.NewReader(r)
			if err != nil {
				return nil, err
			}
			return zr.IOReadCloser(), nil
		}), nil
	case bytes.HasPrefix(h, magicBzip2) && len(h) > 3 && h[3] >= '1' && h[3] <= '9':
		return compressed("bzip2", ".bz2", func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(bzip2.NewReader(r)), nil }), nil
	case bytes.HasPrefix(h, magicRPM):
		return format{name: "rpm", compare: compareRPM}, nil
	case bytes.HasPrefix(h, magicAr):
		name := "ar"
		if strings.HasSuffix(b.name, ".deb") || bytes.HasPrefix(h[len(magicAr):], []byte("debian-binary")) {
			name = "deb"
		}
		return format{name: name, compare: compareAr}, nil
	case len(h) >= 262 && bytes.Equal(h[257:262], []byte("ustar")):
		return format{name: "tar", compare: compareTar}, nil
	case bytes.HasPrefix(h, []byte("070701")) || bytes.HasPrefix(h, []byte("070702")):
		return format{name: "cpio", compare: compareCpio}, nil
	}
	for _, m := range d.o.Manifests {
		if m.Match != nil && m.Match(b.name, h) {
			return format{name: "manifest (" + m.Name + ")", compare: manifestComparer(m)}, nil
		}
	}
	if looksJSON(b, h) {
		return format{name: "json", compare: compareJSON}, nil
	}
	if looksText(h) {
		return format{name: "text", compare: compareText}, nil
	}
	return format{name: "binary", compare: func(*differ, []string, *blob, *blob) error { return nil }}, nil
}

func looksJSON(b *blob, h []byte) bool {
	t := bytes.TrimLeft(h, " \t\r\n")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return false
	}
	if strings.HasSuffix(b.name, ".json") {
		return true
	}
	// Without the name, only a complete, valid document counts.
	if b.size > 64<<20 {
		return false
	}
	data, err := b.bytes(64 << 20)
	return err == nil && json.Valid(data)
}

func looksText(h []byte) bool {
	if bytes.IndexByte(h, 0) >= 0 {
		return false
	}
	// The sniffed prefix may end inside a multi-byte character.
	for i := 0; i < 4 && len(h) > 0 && !utf8.Valid(h); i++ {
		h = h[:len(h)-1]
	}
	return utf8.Valid(h)
}

// compressed compares the decompressed contents; when they are equal the
// compressed bytes still differ, and that is what is reported.
func compressed(name, suffix string, decode func(io.Reader) (io.ReadCloser, error)) format {
	return format{name: name, inner: func(b *blob) *blob { return decompressed(b, suffix, decode) }, compare: func(d *differ, where []string, a, b *blob) error {
		ia, ib := decompressed(a, suffix, decode), decompressed(b, suffix, decode)
		before := d.total
		inner, err := d.compare(where, ia, ib)
		if err != nil {
			return fmt.Errorf("decompressing (%s): %w", name, err)
		}
		if d.total == before {
			d.addDiff(Difference{Where: where, Field: name + " stream",
				A: fmt.Sprintf("%d bytes sha256 %s", a.size, a.sum), B: fmt.Sprintf("%d bytes sha256 %s", b.size, b.sum),
				Text: fmt.Sprintf("the decompressed contents (%s) are identical: only the compression differs (level, settings or tool version)", inner)})
		}
		return nil
	}}
}

func decompressed(b *blob, suffix string, decode func(io.Reader) (io.ReadCloser, error)) *blob {
	name := strings.TrimSuffix(b.name, suffix)
	if strings.HasSuffix(b.name, ".tgz") {
		name = strings.TrimSuffix(b.name, ".tgz") + ".tar"
	}
	return &blob{name: name, size: -1, open: func() (io.ReadCloser, error) {
		r, err := b.open()
		if err != nil {
			return nil, err
		}
		zr, err := decode(r)
		if err != nil {
			r.Close()
			return nil, err
		}
		return multiCloser{zr, r}, nil
	}}
}

type multiCloser struct {
	io.ReadCloser
	under io.Closer
}

func (m multiCloser) Close() error {
	err := m.ReadCloser.Close()
	if e := m.under.Close(); err == nil {
		err = e
	}
	return err
}
