package pins

import (
	"bytes"
	"fmt"
	"os"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// Report is the outcome of checking a lock file offline.
type Report struct {
	Lock      *Lock
	Canonical bool     // the file is byte-identical to its canonical encoding
	Warnings  []string // pending pins and other non-fatal findings
}

// Check loads the lock at path, validates it (every problem at once) and
// reports whether it is in canonical form and which pins are pending.
func Check(path string) (Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Report{}, fmt.Errorf("reading lock file: %w", err)
	}
	l, err := Parse(path, data)
	if err != nil {
		return Report{}, err
	}
	r := Report{Lock: l, Canonical: bytes.Equal(Bytes(l), data)}
	for _, p := range l.Pending() {
		r.Warnings = append(r.Warnings, "pending pin: "+p)
	}
	if !r.Canonical {
		return r, fmt.Errorf("%s is valid but not in canonical form: run `go run mage.go pins:fmt` and commit the result", path)
	}
	return r, nil
}

// Fmt rewrites the lock at path in canonical form. It refuses an invalid lock.
func Fmt(path string) (changed bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("reading lock file: %w", err)
	}
	l, err := Parse(path, data)
	if err != nil {
		return false, err
	}
	out := Bytes(l)
	if bytes.Equal(out, data) {
		return false, nil
	}
	return true, writeLock(path, l)
}

func writeLock(path string, l *Lock) error { return fsutil.WriteFileAtomic(path, Bytes(l), 0o644) }
