package debian

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.0~rc1-1", "1.0-1", -1},
		{"1.0-1", "1.0+b1-1", -1},
		{"2.4.3-1", "2.4.10-1", -1},
		{"1:1.0-1", "2.0-1", 1},
		{"1.0a", "1.0", 1},
		{"1.0", "1.0.1", -1},
		{"1.0-1~bpo1", "1.0-1", -1},
		{"0:1.0", "1.0", 0},
		{"1.00", "1.0", 0},
	} {
		if got := sign(CompareVersions(c.a, c.b)); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := sign(CompareVersions(c.b, c.a)); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestValidVersion(t *testing.T) {
	for _, v := range []string{"1.0", "2.4.3-1", "1:2.0-1~bpo12+1", "8.0.2+halvm2.4.3-1"} {
		if err := validVersion(v); err != nil {
			t.Errorf("validVersion(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"", "a1.0", "1.0-", ":1.0", "x:1.0", "1.0 beta", "1.0-1_2"} {
		if err := validVersion(v); err == nil {
			t.Errorf("validVersion(%q) accepted", v)
		}
	}
}

func TestParseParagraphs(t *testing.T) {
	in := "Package: a\nDescription: short\n long line\n .\n more\n\n\n# comment\nPackage: b\nVersion: 1\n"
	ps, err := ParseParagraphs([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Get("package") != "a" || ps[1].Get("Version") != "1" {
		t.Fatalf("parsed %+v", ps)
	}
	if got, want := ps[0].String(), "Package: a\nDescription: short\n long line\n .\n more\n"; got != want {
		t.Errorf("round trip:\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{" cont\n", "NoColon\n", "A: 1\nA: 2\n"} {
		if _, err := ParseParagraphs([]byte(bad)); err == nil {
			t.Errorf("ParseParagraphs(%q) accepted", bad)
		}
	}
}

const testControl = "Package: halvm-hello\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: T <t@halvm.invalid>\nDescription: hi\n"

// fakeDeb builds a .deb in memory with the given control member.
func fakeDeb(t testing.TB, member string, control string) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(control))})
	tw.Write([]byte(control))
	tw.Close()
	var comp bytes.Buffer
	switch member {
	case "control.tar":
		comp = tb
	case "control.tar.gz":
		w := gzip.NewWriter(&comp)
		w.Write(tb.Bytes())
		w.Close()
	case "control.tar.xz":
		w, _ := xz.NewWriter(&comp)
		w.Write(tb.Bytes())
		w.Close()
	case "control.tar.zst":
		w, _ := zstd.NewWriter(&comp)
		w.Write(tb.Bytes())
		w.Close()
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	add := func(name string, data []byte) {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 0, 0, 0, 0o644, len(data))
		ar.Write(data)
		if len(data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	add("debian-binary", []byte("2.0\n"))
	add(member, comp.Bytes())
	add("data.tar", make([]byte, 1024))
	return ar.Bytes()
}

func TestReadControl(t *testing.T) {
	for _, m := range []string{"control.tar", "control.tar.gz", "control.tar.xz", "control.tar.zst"} {
		p, err := ReadControl(bytes.NewReader(fakeDeb(t, m, testControl)))
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		if p.Get("Package") != "halvm-hello" || p.Get("Version") != "1.0-1" || p.String() != testControl {
			t.Errorf("%s: got %q", m, p.String())
		}
	}
	if _, err := ReadControl(strings.NewReader("not a deb at all")); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := ReadControl(bytes.NewReader(fakeDeb(t, "control.tar.bz2", testControl))); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("bz2 control: err = %v", err)
	}
	d := fakeDeb(t, "control.tar.gz", testControl)
	if _, err := ReadControl(bytes.NewReader(d[:100])); err == nil {
		t.Error("truncated deb accepted")
	}
}
