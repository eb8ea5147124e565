package rpm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/halvm/halvm-release/internal/detgzip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// listing is a readable, comparable description of a directory tree:
// path, mode, mtime and sha256 of every entry.
func listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, fi.Mode(), fi.ModTime().Unix(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteIsDeterministic(t *testing.T) {
	key, _ := testKeys(t)
	in := t.TempDir()
	a := buildRPM(t, in, halvmSpec())
	b := buildRPM(t, in, pkgSpec{Name: "halvm-gmp", Version: "2.4.3", Arch: "noarch",
		Files: map[string]string{"/usr/share/halvm-gmp/README": "gmp\n"}})
	opts := Options{Epoch: testEpoch, BaseURL: "https://example.invalid/halvm/rpm/"}

	one := filepath.Join(t.TempDir(), "one")
	if err := Write(one, []string{a, b}, key, opts); err != nil {
		t.Fatal(err)
	}
	// Another place, another package order, a package listed twice, an
	// existing empty destination, another umask: the same bytes.
	two := t.TempDir()
	old := umask(0o077)
	err := Write(two, []string{b, a, b}, key, opts)
	umask(old)
	if err != nil {
		t.Fatal(err)
	}
	l1, l2 := listing(t, one), listing(t, two)
	if l1 != l2 {
		t.Errorf("two writes differ:\n--- first\n%s--- second\n%s", l1, l2)
	}
	t.Logf("repository:\n%s", l1)
	for _, want := range []string{
		"Packages/h/halvm-2.4.3-1.x86_64.rpm -rw-r--r-- 1700000000",
		"Packages/h/halvm-gmp-2.4.3-1.noarch.rpm -rw-r--r-- 1700000000",
		"RPM-GPG-KEY-halvm -rw-r--r--", "halvm.repo -rw-r--r--",
		"repodata/repomd.xml -rw-r--r--", "repodata/repomd.xml.asc -rw-r--r--",
		"-primary.xml.gz", "-filelists.xml.gz", "-other.xml.gz",
	} {
		if !strings.Contains(l1, want) {
			t.Errorf("repository lacks %q", want)
		}
	}
	if err := Verify(one, key.PublicArmored()); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify(one, key.PublicBinary()); err != nil {
		t.Errorf("Verify with a binary key: %v", err)
	}

	// Metadata files: named by their sha256, gzip without name or mtime.
	gzs, _ := filepath.Glob(filepath.Join(one, "repodata", "*.xml.gz"))
	if len(gzs) != 3 {
		t.Fatalf("metadata files: %v", gzs)
	}
	for _, p := range gzs {
		data, _ := os.ReadFile(p)
		if got := sha256Hex(data); !strings.HasPrefix(filepath.Base(p), got+"-") {
			t.Errorf("%s: content sha256 is %s", filepath.Base(p), got)
		}
		if data[3] != 0 || !bytes.Equal(data[4:8], []byte{0, 0, 0, 0}) {
			t.Errorf("%s: gzip header has flags %#x, mtime % x: want neither name nor mtime", filepath.Base(p), data[3], data[4:8])
		}
	}
	repomd := string(mustRead(t, filepath.Join(one, "repodata", "repomd.xml")))
	if !strings.Contains(repomd, "<revision>1700000000</revision>") || strings.Count(repomd, "<timestamp>1700000000</timestamp>") != 3 {
		t.Errorf("repomd.xml revision/timestamps are not the epoch:\n%s", repomd)
	}
	asc := string(mustRead(t, filepath.Join(one, "repodata", "repomd.xml.asc")))
	if !strings.HasPrefix(asc, "-----BEGIN PGP SIGNATURE-----") {
		t.Errorf("repomd.xml.asc is not an armored signature:\n%s", asc)
	}
	if got := string(mustRead(t, filepath.Join(one, "RPM-GPG-KEY-halvm"))); got != string(key.PublicArmored()) {
		t.Errorf("RPM-GPG-KEY-halvm is not the armored public key")
	}
}

func TestRepoFile(t *testing.T) {
	got := string(RepoFile(Options{BaseURL: "https://example.invalid/halvm/rpm/"}))
	want := `[halvm]
name=HaLVM
baseurl=https://example.invalid/halvm/rpm/
enabled=1
gpgcheck=1
repo_gpgcheck=1
skip_if_unavailable=False
gpgkey=https://example.invalid/halvm/rpm/RPM-GPG-KEY-halvm
`
	if got != want {
		t.Errorf("RepoFile:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	key, otherKey := testKeys(t)
	in := t.TempDir()
	good := buildRPM(t, in, halvmSpec())
	unsigned := buildRPM(t, t.TempDir(), pkgSpec{Name: "unsigned", Version: "1.0.0", Arch: "noarch", Unsigned: true,
		Files: map[string]string{"/usr/share/u/x": "x"}})
	foreign := buildRPM(t, t.TempDir(), pkgSpec{Name: "foreign", Version: "1.0.0", Arch: "noarch", SignWith: otherKey,
		Files: map[string]string{"/usr/share/f/x": "x"}})
	arm := buildRPM(t, t.TempDir(), pkgSpec{Name: "armpkg", Version: "1.0.0", Arch: "aarch64",
		Files: map[string]string{"/usr/share/a/x": "x"}})
	dupSpec := halvmSpec()
	dupSpec.Extra = "different bytes"
	dup := buildRPM(t, t.TempDir(), dupSpec)
	notRPM := filepath.Join(t.TempDir(), "notes.rpm")
	os.WriteFile(notRPM, []byte("this is not an rpm\n"), 0o644)
	truncated := filepath.Join(t.TempDir(), "truncated.rpm")
	full := mustRead(t, good)
	os.WriteFile(truncated, full[:len(full)-100], 0o644)
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "old"), []byte("x"), 0o644)

	opts := Options{Epoch: testEpoch, BaseURL: "https://example.invalid/rpm"}
	cases := []struct {
		name  string
		dst   string // "" means a fresh path
		pkgs  []string
		nokey bool
		opts  *Options
		want  []string
	}{
		{name: "unsigned", pkgs: []string{good, unsigned}, want: []string{"unsigned-1.0.0-1.noarch", "not signed"}},
		{name: "signed by another key", pkgs: []string{foreign}, want: []string{"foreign-1.0.0-1.noarch", "signed by key " + otherKey.KeyID(), "not by the repository key"}},
		{name: "wrong architecture", pkgs: []string{arm}, want: []string{`architecture "aarch64"`, "x86_64 and noarch"}},
		{name: "duplicate with different bytes", pkgs: []string{good, dup}, want: []string{"halvm-2.4.3-1.x86_64 with different bytes"}},
		{name: "missing key", pkgs: []string{good}, nokey: true, want: []string{"no signing key"}},
		{name: "not an rpm", pkgs: []string{notRPM}, want: []string{"notes.rpm", "not an rpm file"}},
		{name: "truncated", pkgs: []string{truncated}, want: []string{"truncated.rpm", "damaged or incomplete"}},
		{name: "no packages", pkgs: nil, want: []string{"no packages"}},
		{name: "destination not empty", dst: nonEmpty, pkgs: []string{good}, want: []string{"is not empty"}},
		{name: "no epoch or base URL", pkgs: []string{good}, opts: &Options{BaseURL: "ftp://x"}, want: []string{"SOURCE_DATE_EPOCH", `base URL "ftp://x"`}},
		{name: "everything at once", pkgs: []string{unsigned, foreign, arm, good, dup},
			want: []string{"4 problem(s)", "not signed", "not by the repository key", "aarch64", "different bytes", "armpkg"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := c.dst
			if dst == "" {
				dst = filepath.Join(t.TempDir(), "repo")
			}
			before := listing(t, filepath.Dir(dst))
			k := key
			if c.nokey {
				k = nil
			}
			o := opts
			if c.opts != nil {
				o = *c.opts
			}
			err := Write(dst, c.pkgs, k, o)
			if err == nil {
				t.Fatal("Write accepted bad input")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error is not an *InputError: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if after := listing(t, filepath.Dir(dst)); after != before {
				t.Errorf("something was written:\n%s", after)
			}
			t.Logf("%v", err)
		})
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	key, otherKey := testKeys(t)
	in := t.TempDir()
	pkgs := []string{buildRPM(t, in, halvmSpec())}
	good := filepath.Join(t.TempDir(), "repo")
	if err := Write(good, pkgs, key, Options{Epoch: testEpoch, BaseURL: "https://example.invalid/rpm"}); err != nil {
		t.Fatal(err)
	}
	pkgPath := "Packages/h/halvm-2.4.3-1.x86_64.rpm"
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		pub    []byte
		want   []string
	}{
		{"repomd.xml edited", func(t *testing.T, dir string) {
			replaceIn(t, filepath.Join(dir, "repodata/repomd.xml"), "<revision>1700000000", "<revision>1700000001")
		}, nil, []string{"repomd.xml.asc", "altered"}},
		{"signature missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "repodata/repomd.xml.asc"))
		}, nil, []string{"unsigned"}},
		{"primary replaced", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "repodata/*-primary.xml.gz"))
			gz, _ := detgzip.Bytes(bytes.Replace(gunzip(t, m[0]), []byte("<summary>"), []byte("<summary>evil "), 1))
			os.WriteFile(m[0], gz, 0o644)
		}, nil, []string{"primary.xml.gz: sha256", "uncompressed sha256"}},
		{"package replaced", func(t *testing.T, dir string) {
			p := filepath.Join(dir, pkgPath)
			b := mustRead(t, p)
			b[len(b)-10] ^= 0xff // in the payload
			os.WriteFile(p, b, 0o644)
		}, nil, []string{pkgPath}},
		{"package missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, pkgPath))
		}, nil, []string{pkgPath, "no such file"}},
		{"another key", func(t *testing.T, dir string) {}, otherKey.PublicArmored(),
			[]string{"repomd.xml.asc", "RPM-GPG-KEY-halvm holds key " + key.Fingerprint(), "not by the repository key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, good, filepath.Join(t.TempDir(), "repo"))
			c.tamper(t, dir)
			pub := c.pub
			if pub == nil {
				pub = key.PublicArmored()
			}
			err := Verify(dir, pub)
			if err == nil {
				t.Fatal("Verify accepted a tampered repository")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			t.Logf("%v", err)
		})
	}
}

func replaceIn(t *testing.T, p, old, new string) {
	t.Helper()
	b := mustRead(t, p)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s lacks %q", p, old)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseEVR(t *testing.T) {
	for _, c := range []struct {
		in, e, v, r string
		ok          bool
	}{
		{"", "", "", "", true},
		{"1.0", "0", "1.0", "", true},
		{"1.0-2", "0", "1.0", "2", true},
		{"3:1.0-2.fc40", "3", "1.0", "2.fc40", true},
		{"1.0-2-3", "0", "1.0", "2-3", true},
		{":1.0", "0", "1.0", "", true},
		{"x:1.0", "", "", "", false},
	} {
		e, v, r, ok := parseEVR(c.in)
		if e != c.e || v != c.v || r != c.r || ok != c.ok {
			t.Errorf("parseEVR(%q) = %q %q %q %v, want %q %q %q %v", c.in, e, v, r, ok, c.e, c.v, c.r, c.ok)
		}
	}
}

func TestCompareLibcDep(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"libc.so.6(GLIBC_2.2.5)(64bit)", "libc.so.6(GLIBC_2.34)(64bit)", 2},
		{"libc.so.6(GLIBC_2.34)(64bit)", "libc.so.6(GLIBC_2.2.5)(64bit)", 1},
		{"libc.so.6()(64bit)", "libc.so.6(GLIBC_2.2.5)(64bit)", 2},
		{"libc.so.6", "libc.so.6(GLIBC_2.4)", 2},
		{"libc.so.6(GLIBC_2.4)", "libc.so.6(GLIBC_2.4)", 0},
	} {
		if got := compareLibcDep(c.a, c.b); got != c.want {
			t.Errorf("compareLibcDep(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestXMLEscaping(t *testing.T) {
	var b bytes.Buffer
	x := newXW(&b)
	x.elem(0, "e", "a&b<c>\"d\"\x01\xe9", "k", "q\"\n\t<")
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	want := `<e k="q&quot;&#10;&#9;&lt;">a&amp;b&lt;c&gt;"d"é</e>` + "\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func BenchmarkWrite(b *testing.B) {
	key, _ := testKeys(b)
	in := b.TempDir()
	pkgs := []string{buildRPM(b, in, halvmSpec())}
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if err := Write(dst, pkgs, key, Options{Epoch: testEpoch, BaseURL: "https://example.invalid/rpm"}); err != nil {
			b.Fatal(err)
		}
	}
}

func umask(m int) int { return syscall.Umask(m) }
