package detgzip

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestBytesIsDeterministicWithZeroHeader(t *testing.T) {
	in := bytes.Repeat([]byte("Package: halvm\n"), 100)
	a, err := Bytes(in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bytes(in)
	if !bytes.Equal(a, b) {
		t.Fatal("two compressions differ")
	}
	r, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "" || !r.ModTime.IsZero() {
		t.Fatalf("header carries name %q / mtime %v", r.Name, r.ModTime)
	}
	out, _ := io.ReadAll(r)
	if !bytes.Equal(out, in) {
		t.Fatal("round trip changed the data")
	}
}
