package ar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func archive(members ...string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for i := 0; i+1 < len(members); i += 2 {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", members[i], 0, 0, 0, "100644", len(members[i+1]))
		b.WriteString(members[i+1])
		if len(members[i+1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func TestWalk(t *testing.T) {
	a := archive("debian-binary", "2.0\n", "_gpgorigin/", "sig", "data.tar", "odd")
	var got []string
	err := Walk(bytes.NewReader(a), func(name string, size int64, body io.Reader) error {
		b, _ := io.ReadAll(io.LimitReader(body, 2)) // read part only
		got = append(got, fmt.Sprintf("%s:%d:%s", name, size, b))
		return nil
	})
	if err != nil || strings.Join(got, " ") != "debian-binary:4:2. _gpgorigin:3:si data.tar:3:od" {
		t.Errorf("walk: %v %q", err, got)
	}
	n := 0
	if err := Walk(bytes.NewReader(a), func(string, int64, io.Reader) error { n++; return Stop }); err != nil || n != 1 {
		t.Errorf("Stop: %v after %d members", err, n)
	}
	boom := errors.New("boom")
	if err := Walk(bytes.NewReader(a), func(string, int64, io.Reader) error { return boom }); err != boom {
		t.Errorf("a callback's error: %v", err)
	}
	if err := Walk(strings.NewReader("not an archive"), nil); err != ErrNotAr {
		t.Errorf("not ar: %v", err)
	}
	bad := archive("x", "y")
	bad[8+58] = 'X'
	if err := Walk(bytes.NewReader(bad), func(string, int64, io.Reader) error { return nil }); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("a corrupt header: %v", err)
	}
}
