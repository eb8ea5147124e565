package diff

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	nfpmrpm "github.com/goreleaser/nfpm/v2/rpm"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

var epoch = time.Unix(1700000000, 0).UTC()

// got renders each difference as "where|field" for exact comparison.
func got(l *Listing) []string {
	var out []string
	for _, d := range l.Differences {
		out = append(out, strings.Join(d.Where, " > ")+"|"+d.Field)
	}
	return out
}

func expect(t *testing.T, l *Listing, want ...string) {
	t.Helper()
	g := got(l)
	if strings.Join(g, "\n") != strings.Join(want, "\n") || l.Total != len(want) {
		t.Errorf("differences (total %d):\n  %s\nwant:\n  %s\nlisting:\n%s", l.Total, strings.Join(g, "\n  "), strings.Join(want, "\n  "), l)
	}
}

func find(t *testing.T, l *Listing, where, field string) Difference {
	t.Helper()
	for _, d := range l.Differences {
		if strings.Join(d.Where, " > ") == where && d.Field == field {
			return d
		}
	}
	t.Fatalf("no difference %s|%s in\n%s", where, field, l)
	return Difference{}
}

func write(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// debTree writes a package tree; change lets a variant alter it.
func debTree(t *testing.T, root string, readmeMtime time.Time, control string) {
	t.Helper()
	old := epoch.Add(-24 * time.Hour)
	write(t, filepath.Join(root, "DEBIAN/control"), []byte(control), old)
	write(t, filepath.Join(root, "usr/share/halvm/README"), []byte("HaLVM\n"), readmeMtime)
	write(t, filepath.Join(root, "usr/lib/halvm/lib.a"), bytes.Repeat([]byte("x"), 1000), old)
	// Fix directory mtimes bottom-up (writing files changed them).
	for _, d := range []string{"usr/share/halvm", "usr/lib/halvm", "usr/share", "usr/lib", "usr", "DEBIAN", "."} {
		if err := os.Chtimes(filepath.Join(root, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

const control = "Package: halvm\nVersion: 2.4.3-1\nArchitecture: amd64\nMaintainer: HaLVM <release@halvm.invalid>\nDescription: test\n"

func dpkgDeb(t *testing.T, tree, out string, flags ...string) string {
	t.Helper()
	err := run.Run(context.Background(), run.Cmd{
		Args: append(append([]string{"dpkg-deb", "--root-owner-group"}, flags...), "--build", tree, out),
		Env:  run.BaseEnv("SOURCE_DATE_EPOCH=1700000000"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two debs built by dpkg-deb from trees that differ in one file's mtime:
// the listing names exactly that entry inside data.tar and the field.
func TestDebMtime(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	dir := t.TempDir()
	old := epoch.Add(-24 * time.Hour)
	debTree(t, filepath.Join(dir, "a"), old, control)
	debTree(t, filepath.Join(dir, "b"), old.Add(100*time.Second), control)
	debTree(t, filepath.Join(dir, "c"), old, control)
	a := dpkgDeb(t, filepath.Join(dir, "a"), filepath.Join(dir, "a.deb"))
	b := dpkgDeb(t, filepath.Join(dir, "b"), filepath.Join(dir, "b.deb"))
	c := dpkgDeb(t, filepath.Join(dir, "c"), filepath.Join(dir, "c.deb"))

	l, err := Files(a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != "deb" {
		t.Errorf("format %s", l.Format)
	}
	expect(t, l, "data.tar.xz > ./usr/share/halvm/README|mtime")
	d := l.Differences[0]
	if d.A != "2023-11-13T22:13:20Z (1699913600)" || d.B != "2023-11-13T22:15:00Z (1699913700)" {
		t.Errorf("values %q %q", d.A, d.B)
	}
	t.Logf("listing:\n%s", l)
	if s := l.String(); !strings.Contains(s, "differ (deb): 1 difference\ndata.tar.xz > ./usr/share/halvm/README: mtime: 2023-11-13T22:13:20Z (1699913600) != 2023-11-13T22:15:00Z (1699913700)\n") {
		t.Errorf("rendering:\n%s", s)
	}

	l, err = Files(a, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Identical() || len(l.Differences) != 0 || !strings.Contains(l.String(), "are identical (deb)") {
		t.Errorf("identical debs:\n%s", l)
	}

	// The same tree compressed with zstd: members are paired by role and
	// their contents compared through the other compression.
	z := dpkgDeb(t, filepath.Join(dir, "b"), filepath.Join(dir, "z.deb"), "-Zzstd")
	l, err = Files(a, z, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	expect(t, l,
		"control.tar.*|name", "control.tar.*|compression",
		"data.tar.*|name", "data.tar.*|compression", "data.tar.* > ./usr/share/halvm/README|mtime")
}

// A changed control field and a changed file content show as text hunks
// inside the members, without restating sizes and digests.
func TestDebContentAndControl(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	dir := t.TempDir()
	old := epoch.Add(-24 * time.Hour)
	debTree(t, filepath.Join(dir, "a"), old, control)
	debTree(t, filepath.Join(dir, "b"), old, strings.Replace(control, "2.4.3-1", "2.4.3-2", 1))
	write(t, filepath.Join(dir, "b/usr/lib/halvm/lib.a"), append(bytes.Repeat([]byte("x"), 999), 'y'), old)
	os.Chtimes(filepath.Join(dir, "b/usr/lib/halvm"), old, old)
	a := dpkgDeb(t, filepath.Join(dir, "a"), filepath.Join(dir, "a.deb"))
	b := dpkgDeb(t, filepath.Join(dir, "b"), filepath.Join(dir, "b.deb"))
	l, err := Files(a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l,
		"control.tar.xz > ./control|lines -1,5 +1,5",
		"data.tar.xz > ./usr/lib/halvm/lib.a|lines -1 +1",
	)
	if h := find(t, l, "control.tar.xz > ./control", "lines -1,5 +1,5"); !strings.Contains(h.Text, "-Version: 2.4.3-1\n+Version: 2.4.3-2") {
		t.Errorf("hunk:\n%s", h.Text)
	}
	t.Logf("listing:\n%s", l)
}

func rpmFile(t *testing.T, dir, name, buildHost string, readmeMtime time.Time) string {
	t.Helper()
	src := filepath.Join(dir, "src-"+name)
	write(t, filepath.Join(src, "README"), []byte("HaLVM\n"), epoch)
	write(t, filepath.Join(src, "ghc"), []byte("#!/bin/sh\necho ghc\n"), epoch)
	fi := func(mode os.FileMode, mtime time.Time) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: mode, MTime: mtime, Owner: "root", Group: "root"}
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: "halvm", Arch: "amd64", Platform: "linux", Version: "2.4.3", Release: "1",
		Maintainer: "HaLVM <release@halvm.invalid>", Description: "test", License: "BSD-3-Clause", MTime: epoch,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: filepath.Join(src, "README"), Destination: "/usr/share/halvm/README", FileInfo: fi(0o644, readmeMtime)},
				{Source: filepath.Join(src, "ghc"), Destination: "/usr/bin/halvm-ghc", FileInfo: fi(0o755, epoch)},
			},
			RPM: nfpm.RPM{BuildHost: buildHost, Summary: "HaLVM"},
		},
	})
	var buf bytes.Buffer
	if err := (&nfpmrpm.RPM{}).Package(info, &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two rpms that differ in the build host and one file's mtime: the
// listing names the BUILDHOST tag and that file's mtime; the signature
// header's digests over the header differ as a consequence.
func TestRPM(t *testing.T) {
	dir := t.TempDir()
	a := rpmFile(t, dir, "a.rpm", "build.halvm.invalid", epoch)
	b := rpmFile(t, dir, "b.rpm", "other.halvm.invalid", epoch.Add(time.Hour))
	c := rpmFile(t, dir, "c.rpm", "build.halvm.invalid", epoch)
	l, err := Files(a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	if l.Format != "rpm" {
		t.Errorf("format %s", l.Format)
	}
	var main []string
	for _, g := range got(l) {
		if !strings.HasPrefix(g, "signature header|") {
			main = append(main, g)
		}
	}
	want := []string{"header|BUILDHOST", "/usr/share/halvm/README|mtime"}
	if strings.Join(main, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences %q, want %q", main, want)
	}
	if d := find(t, l, "header", "BUILDHOST"); d.A != `"build.halvm.invalid"` || d.B != `"other.halvm.invalid"` {
		t.Errorf("BUILDHOST %q %q", d.A, d.B)
	}
	find(t, l, "signature header", "SHA256")

	l, err = Files(a, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Identical() {
		t.Errorf("identical rpms:\n%s", l)
	}
}

// RPM payload contents are compared by format.
func TestRPMContent(t *testing.T) {
	dir := t.TempDir()
	a := rpmFile(t, dir, "a.rpm", "h", epoch)
	// Same package, other README content.
	src := filepath.Join(dir, "src-b.rpm")
	rpmFile(t, dir, "b.rpm", "h", epoch) // writes the sources into src
	write(t, filepath.Join(src, "README"), []byte("HaLVM 2\n"), epoch)
	b := rpmFileFrom(t, dir, src, "b2.rpm")
	l, err := Files(a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var main []string
	for _, g := range got(l) {
		if !strings.HasPrefix(g, "signature header|") {
			main = append(main, g)
		}
	}
	want := []string{"header|SIZE", "header|PAYLOADDIGEST", "/usr/share/halvm/README|lines -1 +1"}
	if strings.Join(main, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences\n  %s\nwant\n  %s\n%s", strings.Join(main, "\n  "), strings.Join(want, "\n  "), l)
	}
}

func rpmFileFrom(t *testing.T, dir, src, name string) string {
	t.Helper()
	fi := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: mode, MTime: epoch, Owner: "root", Group: "root"}
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: "halvm", Arch: "amd64", Platform: "linux", Version: "2.4.3", Release: "1",
		Maintainer: "HaLVM <release@halvm.invalid>", Description: "test", License: "BSD-3-Clause", MTime: epoch,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: filepath.Join(src, "README"), Destination: "/usr/share/halvm/README", FileInfo: fi(0o644)},
				{Source: filepath.Join(src, "ghc"), Destination: "/usr/bin/halvm-ghc", FileInfo: fi(0o755)},
			},
			RPM: nfpm.RPM{BuildHost: "h", Summary: "HaLVM"},
		},
	})
	var buf bytes.Buffer
	if err := (&nfpmrpm.RPM{}).Package(info, &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type tarEntry struct {
	name string
	body string
	uid  int
	mode int64
	typ  byte
	link string
}

func tarGz(t *testing.T, level int, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Uid: e.uid, ModTime: epoch, Linkname: e.link, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// An OCI-like layer pair: an owner change, an entry only in B, a changed
// symlink target and a changed JSON file inside, compared by key path.
func TestTarGz(t *testing.T) {
	base := []tarEntry{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/halvm.json", body: `{"version":"2.4.3","flavours":["halvm","halvm-gmp"]}`},
		{name: "usr/bin/ghc", typ: tar.TypeSymlink, link: "halvm-ghc"},
		{name: "usr/bin/halvm-ghc", body: "binary\x00\x01", mode: 0o755},
	}
	other := append([]tarEntry{}, base...)
	other[1].body = `{"version":"2.4.4","flavours":["halvm","halvm-gmp"]}`
	other[2].link = "halvm-ghc-8.0.2"
	other[3].uid = 1000
	other = append(other, tarEntry{name: "usr/bin/new", body: "x"})
	a, b := tarGz(t, 9, base), tarGz(t, 9, other)
	l, err := Bytes("layer.tar.gz", a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	if l.Format != "gzip" {
		t.Errorf("format %s", l.Format)
	}
	expect(t, l,
		"etc/halvm.json|$.version",
		"usr/bin/ghc|link",
		"usr/bin/halvm-ghc|uid",
		"usr/bin/new|presence",
	)
	if d := find(t, l, "etc/halvm.json", "$.version"); d.A != `"2.4.3"` || d.B != `"2.4.4"` {
		t.Errorf("version %q %q", d.A, d.B)
	}
	if d := find(t, l, "usr/bin/new", "presence"); d.A != "absent" || d.B != "type regular, size 1" {
		t.Errorf("presence %q %q", d.A, d.B)
	}

	// The same layer compressed differently: only the gzip stream differs.
	l, err = Bytes("layer.tar.gz", a, tarGz(t, 1, base), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|gzip stream")
	if !strings.Contains(l.Differences[0].Text, "decompressed contents (tar) are identical") {
		t.Errorf("text %q", l.Differences[0].Text)
	}

	// Reordered entries.
	swapped := append([]tarEntry{}, base...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	l, err = Bytes("layer.tar.gz", a, tarGz(t, 9, swapped), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|entry order")
}

// Output is bounded: the first Max differences in order, and the count.
func TestBounded(t *testing.T) {
	var ea, eb []tarEntry
	for i := 0; i < 120; i++ {
		ea = append(ea, tarEntry{name: fmt.Sprintf("f%03d", i), body: "a"})
		eb = append(eb, tarEntry{name: fmt.Sprintf("f%03d", i), body: "a", mode: 0o600})
	}
	l, err := Bytes("x.tar.gz", tarGz(t, 9, ea), tarGz(t, 9, eb), Options{Max: 50})
	if err != nil {
		t.Fatal(err)
	}
	if l.Total != 120 || len(l.Differences) != 50 || l.Differences[49].Where[0] != "f049" {
		t.Fatalf("total %d, kept %d", l.Total, len(l.Differences))
	}
	if !strings.Contains(l.String(), "... and 70 more differences not shown") {
		t.Errorf("rendering:\n%s", l)
	}
}

// cpioNewc writes a newc archive.
func cpioNewc(entries [][3]string, mtimes []int64) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	w := func(ino int, mode uint32, mtime int64, name, body string) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, mtime, len(body), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name + "\x00")
		pad()
		b.WriteString(body)
		pad()
	}
	for i, e := range entries {
		mode := uint32(0o100644)
		if e[2] == "dir" {
			mode = 0o040755
		}
		w(i+1, mode, mtimes[i], e[0], e[1])
	}
	w(0, 0, 0, "TRAILER!!!", "")
	return b.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCpioGz(t *testing.T) {
	es := [][3]string{{"bin", "", "dir"}, {"bin/init", "#!/bin/sh\necho hi\n", ""}, {"guest.cfg", "name = \"hello\"\n", ""}}
	a := gz(t, cpioNewc(es, []int64{1, 1, 1}))
	b := gz(t, cpioNewc(es, []int64{1, 5, 1}))
	l, err := Bytes("initrd.cpio.gz", a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "bin/init|mtime")
	es2 := append([][3]string{}, es...)
	es2[2][1] = "name = \"hello2\"\n"
	l, err = Bytes("initrd.cpio.gz", a, gz(t, cpioNewc(es2, []int64{1, 1, 1})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "guest.cfg|lines -1 +1")
	if !strings.Contains(l.Differences[0].Text, "-name = \"hello\"\n+name = \"hello2\"") {
		t.Errorf("hunk %q", l.Differences[0].Text)
	}
}

// SPDX-like documents: a changed field, an added package matched by
// SPDXID (not a cascade over indices), a changed creation time.
func TestJSON(t *testing.T) {
	a := `{"spdxVersion":"SPDX-2.3","creationInfo":{"created":"2023-11-14T22:13:20Z"},
	 "packages":[{"SPDXID":"SPDXRef-a","name":"ghc","versionInfo":"8.0.2"},{"SPDXID":"SPDXRef-c","name":"openlibm","versionInfo":"0.5"}]}`
	b := `{"spdxVersion":"SPDX-2.3","creationInfo":{"created":"2023-11-14T22:13:21Z"},
	 "packages":[{"SPDXID":"SPDXRef-a","name":"ghc","versionInfo":"8.0.3"},{"SPDXID":"SPDXRef-b","name":"gmp","versionInfo":"6.1.2"},{"SPDXID":"SPDXRef-c","name":"openlibm","versionInfo":"0.5"}]}`
	l, err := Bytes("halvm.spdx.json", []byte(a), []byte(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	expect(t, l,
		"|$.creationInfo.created",
		"|$.packages[SPDXID=SPDXRef-a].versionInfo",
		"|$.packages[SPDXID=SPDXRef-b]",
	)
	if d := find(t, l, "", "$.packages[SPDXID=SPDXRef-b]"); d.A != "(absent)" || d.B != `{"SPDXID":"SPDXRef-b","name":"gmp","versionInfo":"6.1.2"}` {
		t.Errorf("added %q %q", d.A, d.B)
	}
	// Same value, other encoding.
	l, err = Bytes("x.json", []byte(`{"a":1,"b":[1,2]}`), []byte(`{"b": [1, 2], "a": 1}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|encoding")
	// Identical.
	l, err = Bytes("x.json", []byte(a), []byte(a), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Identical() || l.Format != "json" {
		t.Errorf("identical: %s", l)
	}
	// An OCI manifest without a .json name is recognized by content.
	m1 := `{"schemaVersion":2,"layers":[{"digest":"sha256:aa","size":1}]}`
	m2 := `{"schemaVersion":2,"layers":[{"digest":"sha256:bb","size":1}]}`
	l, err = Bytes("manifest", []byte(m1), []byte(m2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|$.layers[digest=sha256:aa]", "|$.layers[digest=sha256:bb]")
}

func TestText(t *testing.T) {
	var a, b []string
	for i := 1; i <= 20; i++ {
		a = append(a, fmt.Sprintf("line %d", i))
	}
	b = append(b, a...)
	b[4] = "line five"                                        // change at 5
	b = append(b[:15], append([]string{"new"}, b[15:]...)...) // insert after 15
	l, err := Bytes("SHA256SUMS", []byte(strings.Join(a, "\n")+"\n"), []byte(strings.Join(b, "\n")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	expect(t, l, "|lines -2,7 +2,7", "|lines -13,8 +13,9")
	if h := l.Differences[0].Text; h != " line 2\n line 3\n line 4\n-line 5\n+line five\n line 6\n line 7\n line 8" {
		t.Errorf("hunk 1:\n%s", h)
	}
	if h := l.Differences[1].Text; !strings.HasSuffix(h, " line 19\n-line 20\n+line 20  (no newline at end of file)") || !strings.Contains(h, " line 15\n+new\n line 16") {
		t.Errorf("hunk 2:\n%s", h)
	}
}

func TestManifests(t *testing.T) {
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	a := "d 0755 bin/\nf 0755 10 " + sum('a') + " bin/halvm-ghc\nl bin/ghc -> halvm-ghc\nf 0644 3 " + sum('c') + " \"lib/odd name\"\n"
	b := "d 0755 bin/\nf 0755 11 " + sum('b') + " bin/halvm-ghc\nl bin/ghc -> halvm-ghc-8\nf 0644 3 " + sum('c') + " \"lib/odd name\"\nf 0644 1 " + sum('d') + " lib/new\n"
	// The build heads its manifests with a comment line.
	head := "# HaLVM 2.4.3 toolchain tree, flavour halvm\n"
	l, err := Bytes("toolchain-halvm.manifest", []byte(head+a), []byte(head+b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != "manifest (toolchain)" {
		t.Errorf("format %s", l.Format)
	}
	expect(t, l, "bin/ghc|link", "bin/halvm-ghc|size", "bin/halvm-ghc|sha256", "lib/new|presence")

	// The same entries, a different comment line: shown line by line.
	l, err = Bytes("toolchain-halvm.manifest", []byte(head+a), []byte(head+a+"# built at 2026-12-06T16:55:14Z\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Identical() || !strings.Contains(l.String(), "built at 2026-12-06T16:55:14Z") {
		t.Errorf("a manifest differing in a comment line:\n%s", l)
	}

	ja := `[{"path":"bin/halvm-ghc","mode":"0755","size":10,"sha256":"` + sum('a') + `"},{"path":"lib/x","mode":420,"size":1,"sha256":"` + sum('c') + `"}]`
	jb := `[{"path":"bin/halvm-ghc","mode":"0755","size":10,"sha256":"` + sum('a') + `"},{"path":"lib/x","mode":384,"size":1,"sha256":"` + sum('c') + `"}]`
	l, err = Bytes("tree.json", []byte(ja), []byte(jb), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != "manifest (json)" {
		t.Errorf("format %s", l.Format)
	}
	expect(t, l, "lib/x|mode")
	if d := l.Differences[0]; d.A != "0644" || d.B != "0600" {
		t.Errorf("mode %q %q", d.A, d.B)
	}

	sa := "0755 10 " + sum('a') + " bin/halvm-ghc\n"
	sb := "0755 10 " + sum('a') + " bin/halvm-ghc\n0644 1 " + sum('b') + " x\n"
	l, err = Bytes("tree.txt", []byte(sa), []byte(sb), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Format != "manifest (mode-size-sha256-path)" {
		t.Errorf("format %s", l.Format)
	}
	expect(t, l, "x|presence")

	// A custom format plugs in.
	custom := ManifestFormat{Name: "custom",
		Match: func(name string, _ []byte) bool { return strings.HasSuffix(name, ".lst") },
		Parse: func(data []byte) ([]ManifestEntry, error) {
			var es []ManifestEntry
			for _, l := range strings.Fields(string(data)) {
				p, s, _ := strings.Cut(l, "=")
				es = append(es, ManifestEntry{Path: p, SHA256: s, Size: -1})
			}
			return es, nil
		}}
	l, err = Bytes("tree.lst", []byte("a=1 b=2"), []byte("a=1 b=3"), Options{Manifests: []ManifestFormat{custom}})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "b|sha256")
}

// Two release directories: a file only on one side, a changed mode, and
// a .tar.gz compared entry by entry.
func TestDirs(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	layer := []tarEntry{{name: "x", body: "1"}}
	layer2 := []tarEntry{{name: "x", body: "1", uid: 7}}
	for _, side := range []string{a, b} {
		write(t, filepath.Join(side, "SHA256SUMS"), []byte("abc  x\n"), epoch)
		write(t, filepath.Join(side, "keys/halvm.pub"), []byte("key\n"), epoch)
	}
	write(t, filepath.Join(a, "oci/blobs/layer"), tarGz(t, 9, layer), epoch)
	write(t, filepath.Join(b, "oci/blobs/layer"), tarGz(t, 9, layer2), epoch)
	write(t, filepath.Join(b, "extra.txt"), []byte("x"), epoch)
	if err := os.Chmod(filepath.Join(b, "keys/halvm.pub"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("SHA256SUMS", filepath.Join(a, "latest")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("SHA256SUMS.old", filepath.Join(b, "latest")); err != nil {
		t.Fatal(err)
	}
	l, err := Paths(a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listing:\n%s", l)
	expect(t, l, "extra.txt|presence", "keys/halvm.pub|mode", "latest|link", "oci/blobs/layer > x|uid")
	l, err = Dirs(a, a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Identical() {
		t.Errorf("identical dirs: %s", l)
	}
}

// Binary files: sizes, digests and the first differing offset.
func TestBinary(t *testing.T) {
	a := []byte{0, 1, 2, 3, 4, 5}
	b := []byte{0, 1, 2, 9, 4, 5, 6}
	l, err := Bytes("hello.elf", a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|bytes")
	if d := l.Differences[0]; d.Text != "first difference at byte offset 3" || !strings.HasPrefix(d.A, "6 bytes sha256 ") || !strings.HasPrefix(d.B, "7 bytes sha256 ") {
		t.Errorf("%+v", d)
	}
	// Different formats on each side.
	l, err = Bytes("x", []byte("text\n"), gz(t, []byte("text\n")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, l, "|format", "|bytes")
}

// Listings are the same every time (map iteration never leaks into order).
func TestDeterministic(t *testing.T) {
	var ea, eb []tarEntry
	for i := 0; i < 30; i++ {
		ea = append(ea, tarEntry{name: fmt.Sprintf("d/%02d.json", i), body: fmt.Sprintf(`{"k%d":1,"z":2,"a":3}`, i)})
		eb = append(eb, tarEntry{name: fmt.Sprintf("d/%02d.json", i), body: fmt.Sprintf(`{"k%d":2,"z":3,"a":4}`, i), uid: i % 3})
	}
	a, b := tarGz(t, 9, ea), tarGz(t, 9, eb)
	first, err := Bytes("l.tar.gz", a, b, Options{Max: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		again, _ := Bytes("l.tar.gz", a, b, Options{Max: 1000})
		if again.String() != first.String() {
			t.Fatal("listing changed between runs")
		}
	}
	// MaxNested bounds the per-entry content comparisons: beyond it the
	// entries are listed by size and digest.
	// 20 entries compared by content (3 keys each), 20 uid changes, 10
	// entries beyond MaxNested listed by sha256 (their sizes are equal).
	if first.Total != 20*3+20+10 {
		t.Errorf("total %d, want 90", first.Total)
	}
	n := 0
	for _, d := range first.Differences {
		if d.Field == "sha256" {
			n++
		}
	}
	if n != 10 {
		t.Errorf("%d entries listed by sha256, want 10 (30 differing, 20 compared by content)", n)
	}
}

func TestDiffoscopeOptional(t *testing.T) {
	if DiffoscopeAvailable() {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "a"), []byte("a\n"), epoch)
		write(t, filepath.Join(dir, "b"), []byte("b\n"), epoch)
		out, err := Diffoscope(context.Background(), filepath.Join(dir, "a"), filepath.Join(dir, "b"), 0)
		if err != nil || out == "" {
			t.Errorf("diffoscope: %q %v", out, err)
		}
		return
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Diffoscope(context.Background(), "a", "b", 0); err == nil || !strings.Contains(err.Error(), "apt-get install diffoscope") {
		t.Errorf("err %v", err)
	}
}
