package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new", "dir", "f")
	if err := WriteFileAtomic(p, []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	fi, serr := os.Stat(p)
	if err != nil || serr != nil || string(b) != "data" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("wrote %q (%v), mode %v (%v)", b, err, fi.Mode(), serr)
	}
	n, sum, err := HashFile(p)
	if err != nil || n != 4 || sum != "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7" {
		t.Errorf("HashFile = %d %s %v", n, sum, err)
	}
}

// TestWriteAtomicFailureLeavesNothing: a failed fill leaves the old file
// as it was and no temporary file beside it.
func TestWriteAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteAtomic(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteAtomic = %v, want the fill's error", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("the old file became %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if _, _, err := HashFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("HashFile of a missing file succeeded")
	}
}
