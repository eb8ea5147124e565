package baseimage

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/pins"
)

func sum(c byte) string { return strings.Repeat(string(c), 64) }

// TestParseSimulation reads apt-get install --simulate output as apt 2.6
// prints it: new installs, reinstalls ("[old version]"), Conf lines ignored.
func TestParseSimulation(t *testing.T) {
	out := `Reading package lists...
Building dependency tree...
The following NEW packages will be installed:
  base-files libc6
Inst base-files (12.4+deb12u12 Debian:12.12/stable [amd64])
Inst libc6 [2.36-9+deb12u13] (2.36-9+deb12u14 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst tzdata (2025b-0+deb12u2 Debian:12.15/oldstable [all])
Conf base-files (12.4+deb12u12 Debian:12.12/stable [amd64])
Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])
`
	got := parseSimulation([]byte(out))
	want := []Pin{
		{Name: "base-files", Version: "12.4+deb12u12", Arch: "amd64"},
		{Name: "libc6", Version: "2.36-9+deb12u14", Arch: "amd64"},
		{Name: "tzdata", Version: "2025b-0+deb12u2", Arch: "all"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSimulation:\n%+v\nwant\n%+v", got, want)
	}
}

// TestParseURIs: apt-get download --print-uris lines, matched to pins by
// the file name apt derives (an epoch's colon quoted as %3a).
func TestParseURIs(t *testing.T) {
	out := "'http://deb.debian.org/debian/pool/main/d/dash/dash_0.5.12-2_amd64.deb' dash_0.5.12-2_amd64.deb 91848 SHA256:" + sum('a') + "\n" +
		"'http://deb.debian.org/debian/pool/main/p/perl/perl-base_5.36.0-7%2bdeb12u1_amd64.deb' perl-base_5.36.0-7+deb12u1_amd64.deb 1 SHA256:" + sum('b') + "\n" +
		"'http://deb.debian.org/debian/pool/main/a/adduser/x_1%3a2.0_all.deb' x_1%3a2.0_all.deb 5 SHA256:" + sum('c') + "\n" +
		"E: not a uri line\n"
	got := parseURIs([]byte(out))
	for _, p := range []Pin{{Name: "dash", Version: "0.5.12-2", Arch: "amd64"}, {Name: "perl-base", Version: "5.36.0-7+deb12u1", Arch: "amd64"}, {Name: "x", Version: "1:2.0", Arch: "all"}} {
		d, ok := got[debFileName(p)]
		if !ok || !strings.HasPrefix(d.url, "http://deb.debian.org/") || len(d.sha256) != 64 {
			t.Errorf("%s (%s): %+v %v", p, debFileName(p), d, ok)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d entries, want 3: %+v", len(got), got)
	}
	if got["dash_0.5.12-2_amd64.deb"].sha256 != sum('a') {
		t.Error("the sha256 is not the one apt printed")
	}
}

// TestParseStatus: only installed packages, sorted; a malformed status is
// an error, never an empty list.
func TestParseStatus(t *testing.T) {
	status := `Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
Description: compression library
 multi-line

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b7
`
	got, err := ParseStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := []Pin{{Name: "bash", Version: "5.2.15-2+b7", Arch: "amd64"}, {Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseStatus = %+v, want %+v", got, want)
	}
	if _, err := ParseStatus(strings.NewReader("Package: a\n continuation\nbroken line\n")); err == nil {
		t.Error("a malformed status file was read")
	}
}

// TestCheckInstalled names every difference at once: a pin not installed,
// another version, a package nobody pinned.
func TestCheckInstalled(t *testing.T) {
	want := []Pin{{Name: "a", Version: "1", Arch: "amd64"}, {Name: "b", Version: "2", Arch: "all"}, {Name: "c", Version: "3", Arch: "amd64"}}
	if err := CheckInstalled(want, want); err != nil {
		t.Fatalf("identical sets: %v", err)
	}
	got := []Pin{{Name: "a", Version: "1", Arch: "amd64"}, {Name: "b", Version: "2.1", Arch: "all"}, {Name: "extra", Version: "9", Arch: "amd64"}}
	err := CheckInstalled(got, want)
	if err == nil {
		t.Fatal("differences accepted")
	}
	for _, w := range []string{"package b: installed version 2.1, pinned 2", "pinned package c:amd64=3 is not installed", "extra:amd64=9 is installed but not pinned"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}

// TestValidate reports every problem with its index.
func TestValidate(t *testing.T) {
	good := []Pin{{Name: "a", Version: "1", Arch: "amd64", SHA256: sum('a')}}
	if err := Validate("base", good); err != nil {
		t.Fatal(err)
	}
	bad := append(good, Pin{Name: "", Version: "", Arch: "amd64", SHA256: "ABC"}, Pin{Name: "a", Version: "2", Arch: "amd64", SHA256: sum('b')})
	err := Validate("base", bad)
	for _, w := range []string{"base[1].name: empty", "base[1].version: empty", "base[1].sha256: want 64", "base[2].name: a is pinned twice (also base[0])"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}

// TestSetFromLock: the real lock's image layers, as the image stage reads
// them, are well-formed pins and disjoint.
func TestSetFromLock(t *testing.T) {
	l, err := pins.LoadFile(filepath.Join("..", "..", "pins", "halvm.lock"))
	if err != nil {
		t.Fatal(err)
	}
	s := SetFromLock(l)
	if len(s.Base) != len(l.DebsWithRole(pins.RoleImageBase)) || len(s.Deps) != len(l.DebsWithRole(pins.RoleImageDeps)) || len(s.Base) == 0 {
		t.Fatalf("SetFromLock: %d base, %d deps pins", len(s.Base), len(s.Deps))
	}
	if err := Validate("base", s.Base); err != nil {
		t.Error(err)
	}
	if err := Validate("deps", s.Deps); err != nil {
		t.Error(err)
	}
	if err := Validate("all", append(append([]Pin(nil), s.Base...), s.Deps...)); err != nil {
		t.Errorf("the layers overlap: %v", err)
	}
}

// TestBootstrapKey: the cache key covers every input and nothing else
// (the order of the .debs does not matter).
func TestBootstrapKey(t *testing.T) {
	b := Bootstrap{Suite: "bookworm", Epoch: time.Unix(1544054400, 0), ImageSources: "Types: deb\n"}
	k := b.key("mmdebstrap 1.3.5", []string{sum('a'), sum('b')}, []string{"apt"})
	if k != b.key("mmdebstrap 1.3.5", []string{sum('b'), sum('a')}, []string{"apt"}) {
		t.Error("the key depends on the order of the .debs")
	}
	b2 := b
	b2.Epoch = b.Epoch.Add(time.Second)
	b3 := b
	b3.ImageSources = "Types: deb deb-src\n"
	for what, other := range map[string]string{
		"epoch":   b2.key("mmdebstrap 1.3.5", []string{sum('a'), sum('b')}, []string{"apt"}),
		"sources": b3.key("mmdebstrap 1.3.5", []string{sum('a'), sum('b')}, []string{"apt"}),
		"tool":    b.key("mmdebstrap 1.4.0", []string{sum('a'), sum('b')}, []string{"apt"}),
		"debs":    b.key("mmdebstrap 1.3.5", []string{sum('a')}, []string{"apt"}),
		"include": b.key("mmdebstrap 1.3.5", []string{sum('a'), sum('b')}, nil),
	} {
		if other == k {
			t.Errorf("a different %s gives the same key", what)
		}
	}
}

func TestPathsAndNames(t *testing.T) {
	if got := CachePath("/c", sum('a')); got != "/c/debs/sha256/"+sum('a')+".deb" {
		t.Errorf("CachePath = %s", got)
	}
	for s, want := range map[string]bool{"/tmp/halvm_2.4.3-1_amd64.deb": true, "./x.deb": true, "halvm": false, "halvm.deb": false, "/tmp/x.udeb": false} {
		if isDebPath(s) != want {
			t.Errorf("isDebPath(%q) = %v", s, !want)
		}
	}
	if got := chrootDir("/configured", "/fallback"); got != "/configured" {
		t.Errorf("chrootDir with a configured directory = %s", got)
	}
	if got := (Pin{Name: "a", Version: "1:2", Arch: "all"}).String(); got != "a:all=1:2" {
		t.Errorf("Pin.String = %s", got)
	}
}
