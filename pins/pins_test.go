package pins

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const realLock = "halvm.lock"

func TestRealLockIsValidAndCanonical(t *testing.T) {
	r, err := Check(realLock)
	if err != nil {
		t.Fatal(err)
	}
	l := r.Lock
	if l.Release.Version != "2.4.3" || l.Root().Commit != "3ec1d7e4b6bcb91304ba2bfe8ee280cb1699f24d" {
		t.Fatalf("release = %+v, root = %+v", l.Release, l.Root())
	}
	ghc, ok := l.Source("halvm-ghc")
	if !ok || ghc.Commit != "85c7800461ddd4054ccc086cb3ade5e20edf857b" || ghc.URL != "https://github.com/GaloisInc/halvm-ghc" {
		t.Fatalf("halvm-ghc = %+v", ghc)
	}
	// Every submodule of halvm-ghc the build needs (§2 of the upstream facts).
	want := []string{"minlibc", "gmp-tarballs", "libffi-tarballs", "hsc2hs", "haddock", "array", "binary", "bytestring", "Cabal",
		"containers", "deepseq", "directory", "filepath", "haskeline", "hoopl", "hpc", "pretty", "process", "terminfo", "time",
		"transformers", "unix", "Win32", "xhtml"}
	if got := len(l.Children("halvm-ghc")); got != len(want) {
		t.Errorf("halvm-ghc has %d pinned submodules, want %d", got, len(want))
	}
	for _, n := range want {
		if s, ok := l.Source(n); !ok || s.Parent != "halvm-ghc" {
			t.Errorf("submodule %s not pinned under halvm-ghc", n)
		}
	}
	if len(l.Excluded) == 0 {
		t.Error("optional submodules are not listed as excluded")
	}
	ghcBin, ok := l.File("ghc-8.0.2-x86_64-deb8-linux")
	if !ok || ghcBin.Size != 114373576 || ghcBin.SHA256 != "5ee68290db00ca0b79d57bc3a5bdce470de9ce9da0b098a7ce6c504605856c8f" {
		t.Fatalf("bootstrap bindist = %+v", ghcBin)
	}
	if l.RewriteURL("git://git.haskell.org/packages/array.git") != "https://github.com/ghc/packages-array.git" {
		t.Error("rewrite table does not map git.haskell.org packages to the working URL")
	}
	if gmp, _ := l.Flavour("halvm-gmp"); strings.Join(gmp.ConfigureFlags, " ") != "--enable-gmp" {
		t.Errorf("halvm-gmp flags = %v", gmp.ConfigureFlags)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "cabal-install") {
		t.Errorf("want the one pending pin (cabal-install) as a warning, got %v", r.Warnings)
	}
	if happy, _ := l.File("happy"); happy.Pending != "" || happy.SHA256 != "fb9a23e41401711a3b288f93cf0a66db9f97da1ce32ec4fffea4b78a0daeb40f" || happy.SizeKnown() {
		t.Errorf("happy = %+v, want pinned by its published sha256, size not yet recorded", happy)
	}
	if l.Release.SourceDateEpoch != 1544117080 {
		t.Errorf("source_date_epoch = %d, want 1544117080 (committer time of 3ec1d7e4)", l.Release.SourceDateEpoch)
	}
	if xen := findDeb(l, "libxen-dev"); xen == nil || !strings.HasPrefix(xen.Version, "4.17") {
		t.Errorf("Xen headers not pinned at 4.17: %+v", xen)
	}
}

func findDeb(l *Lock, name string) *Deb {
	for i := range l.Debs {
		if l.Debs[i].Name == name {
			return &l.Debs[i]
		}
	}
	return nil
}

func TestRoundTripIsIdentity(t *testing.T) {
	data, err := os.ReadFile(realLock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(realLock, data)
	if err != nil {
		t.Fatal(err)
	}
	if out := Bytes(l); !bytes.Equal(out, data) {
		t.Fatal("load then save changed the lock")
	}
	// Reordering entries is normalised back to the same bytes.
	l.Sources[0], l.Sources[len(l.Sources)-1] = l.Sources[len(l.Sources)-1], l.Sources[0]
	l.Debs[0], l.Debs[1] = l.Debs[1], l.Debs[0]
	if !bytes.Equal(Bytes(l), data) {
		t.Fatal("encoding depends on the in-memory order")
	}
}

func TestMalformedLockReportsEveryProblem(t *testing.T) {
	data, err := os.ReadFile("testdata/bad.lock")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("pins/halvm.lock", data)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	msg := err.Error()
	want := []string{
		`pins/halvm.lock: sources[1].commit: want 40 lower-case hex characters, got "85c78"`,
		`pins/halvm.lock: release.surprise: unknown field`,
		`pins/halvm.lock: sources[2].path: path "halvm-ghc" is already pinned by sources[1]`,
		`pins/halvm.lock: sources[3].parent: parent "ghost" of ghost/lib is not pinned`,
		`pins/halvm.lock: files[0].sha256: want 64 lower-case hex characters, got "abc"`,
		`pins/halvm.lock: files[0].size: want the file's size in bytes (> 0), got 0`,
		`pins/halvm.lock: debs[0].version: missing`,
		`pins/halvm.lock: debs[0].arch: want amd64 or all, got "i386"`,
		`pins/halvm.lock: sources[1].url: "https://example.org/other" does not match upstream_url`,
		`pins/halvm.lock: flavours[1].name: flavour "halvm" is already defined at flavours[0]`,
		`pins/halvm.lock: flavours[0].configure_flags[0]: want a long option starting with --, got "enable-gmp"`,
		`pins/halvm.lock: excluded[0].path: halvm-ghc is both pinned (sources[1]) and excluded`,
		`pins/halvm.lock: release.source_date_epoch: want an integer, got a string`,
		`pins/halvm.lock: sources[4].upstream_url: missing`,
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing problem %q", w)
		}
	}
	if len(ps) < len(want) {
		t.Errorf("got %d problems, want at least %d:\n%s", len(ps), len(want), msg)
	}
}

func TestNotTOML(t *testing.T) {
	_, err := Parse("x.lock", []byte("format = 1\n[release\n"))
	if err == nil || !regexp.MustCompile(`x\.lock:\d+: not valid TOML`).MatchString(err.Error()) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnsupportedFormat(t *testing.T) {
	_, err := Parse("x.lock", []byte("format = 2\n"))
	if err == nil || !strings.Contains(err.Error(), "format 2 is not supported") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckRejectsNonCanonical(t *testing.T) {
	data, _ := os.ReadFile(realLock)
	p := t.TempDir() + "/halvm.lock"
	os.WriteFile(p, append([]byte("# a stray comment\n"), data...), 0o644)
	if _, err := Check(p); err == nil || !strings.Contains(err.Error(), "pins:fmt") {
		t.Fatalf("non-canonical lock accepted: %v", err)
	}
	changed, err := Fmt(p)
	if err != nil || !changed {
		t.Fatalf("Fmt = %v, %v", changed, err)
	}
	if _, err := Check(p); err != nil {
		t.Fatalf("after Fmt: %v", err)
	}
}

func TestPendingPinMustNotCarryHashes(t *testing.T) {
	data, _ := os.ReadFile(realLock)
	s := strings.Replace(string(data), `name = "cabal-install"`, `name = "cabal-install"`+"\nsize = 5", 1)
	_, err := Parse("x.lock", []byte(s))
	if err == nil || !strings.Contains(err.Error(), "a pending pin must not carry size or sha256") {
		t.Fatalf("err = %v", err)
	}
}

func TestSizeIsOptionalButPositive(t *testing.T) {
	data, _ := os.ReadFile(realLock)
	s := strings.Replace(string(data), `name = "happy"`, `name = "happy"`+"\nsize = 0", 1)
	_, err := Parse("x.lock", []byte(s))
	if err == nil || !strings.Contains(err.Error(), "leave size out until the first verified fetch") {
		t.Fatalf("err = %v", err)
	}
}

func TestRecordSizesFillsOnlyUnknownSizes(t *testing.T) {
	data, _ := os.ReadFile(realLock)
	p := filepath.Join(t.TempDir(), "halvm.lock")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	type v = struct {
		SHA256 string
		Size   int64
	}
	happy := "fb9a23e41401711a3b288f93cf0a66db9f97da1ce32ec4fffea4b78a0daeb40f"
	if _, err := RecordSizes(p, map[string]v{"happy": {strings.Repeat("0", 64), 5}}); err == nil {
		t.Fatal("a size was recorded for another sha256")
	}
	done, err := RecordSizes(p, map[string]v{"happy": {happy, 183870}, "ghc-8.0.2-x86_64-deb8-linux": {"x", 1}})
	if err != nil || len(done) != 1 {
		t.Fatalf("RecordSizes = %v, %v", done, err)
	}
	l, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := l.File("happy"); f.Size != 183870 || f.SHA256 != happy {
		t.Errorf("happy = %+v", f)
	}
	if _, err := Check(p); err != nil {
		t.Errorf("the recorded lock is not canonical: %v", err)
	}
}
