package debian

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/halvm/halvm-release/internal/ar"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxControl bounds how much of a control archive is read (control files
// are tiny; this only stops a hostile .deb from exhausting memory).
const maxControl = 64 << 20

// ReadControl returns the control paragraph of a .deb: it walks the ar
// archive, checks debian-binary is "2.0", and reads ./control from
// control.tar, control.tar.gz, control.tar.xz or control.tar.zst.
func ReadControl(deb io.Reader) (Paragraph, error) {
	sawBinary := false
	var para Paragraph
	err := ar.Walk(deb, func(name string, _ int64, body io.Reader) error {
		switch {
		case name == "debian-binary":
			b, _ := io.ReadAll(io.LimitReader(body, 64))
			if !strings.HasPrefix(string(b), "2.") {
				return fmt.Errorf("unsupported .deb format version %q, want 2.0", strings.TrimSpace(string(b)))
			}
			sawBinary = true
		case strings.HasPrefix(name, "control.tar"):
			if !sawBinary {
				return errors.New("not a .deb: debian-binary is not the first member")
			}
			p, err := readControlTar(name, body)
			if err != nil {
				return err
			}
			para = p
			return ar.Stop
		}
		return nil
	})
	switch {
	case errors.Is(err, ar.ErrNotAr):
		return nil, errors.New("not a .deb: no ar archive header")
	case err != nil:
		return nil, err
	case para == nil:
		return nil, errors.New("not a .deb: no control.tar member")
	}
	return para, nil
}

func readControlTar(member string, r io.Reader) (Paragraph, error) {
	var tr io.Reader
	switch member {
	case "control.tar":
		tr = r
	case "control.tar.gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		defer zr.Close()
		tr = zr
	case "control.tar.xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		tr = zr
	case "control.tar.zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
		defer zr.Close()
		tr = zr
	default:
		return nil, fmt.Errorf("unsupported control member %q (want control.tar{,.gz,.xz,.zst})", member)
	}
	t := tar.NewReader(io.LimitReader(tr, maxControl))
	for {
		h, err := t.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s has no control file", member)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", member, err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != "control" || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(t)
		if err != nil {
			return nil, fmt.Errorf("reading %s/control: %w", member, err)
		}
		paras, err := ParseParagraphs(b)
		if err != nil {
			return nil, fmt.Errorf("parsing control: %w", err)
		}
		if len(paras) != 1 {
			return nil, fmt.Errorf("control file has %d paragraphs, want 1", len(paras))
		}
		if bytes.Contains(b, []byte("\r")) {
			return nil, errors.New("control file has CR line endings")
		}
		return paras[0], nil
	}
}
