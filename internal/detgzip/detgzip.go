// Package detgzip compresses deterministically for repository metadata
// (apt's Packages.gz, dnf's *.xml.gz): best compression, a zero header (no
// file name, no mtime). Go's gzip writer emits the same bytes for the same
// input, so the indexes are byte-identical across runs and machines.
package detgzip

import (
	"bytes"
	"compress/gzip"
)

// Bytes returns b gzip-compressed at the best level with a zero header.
func Bytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
