package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

var keys struct {
	sync.Once
	good, other *pgp.Key
	err         error
}

// testKeys returns the archive key and an unrelated one.
func testKeys(t testing.TB) (*pgp.Key, *pgp.Key) {
	t.Helper()
	keys.Do(func() {
		keys.good, keys.err = pgp.Generate("HaLVM Test Archive", "archive@halvm.invalid", true, testEpoch)
		if keys.err == nil {
			keys.other, keys.err = pgp.Generate("Somebody Else", "else@halvm.invalid", true, testEpoch)
		}
	})
	if keys.err != nil {
		t.Fatal(keys.err)
	}
	return keys.good, keys.other
}

// makeDeb builds a tiny dependency-free package with dpkg-deb, as a
// maintainer would: a file under /usr/share/<name>/ holding payload.
func makeDeb(t testing.TB, name, version, arch, payload string) string {
	t.Helper()
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	must(t, os.MkdirAll(filepath.Join(tree, "DEBIAN"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tree, "usr", "share", name), 0o755))
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: HaLVM Test <test@halvm.invalid>\nSection: devel\nPriority: optional\nDescription: tiny test package %s\n A package for the apt repository tests.\n .\n It has no dependencies.\n", name, version, arch, name)
	must(t, os.WriteFile(filepath.Join(tree, "DEBIAN", "control"), []byte(control), 0o644))
	must(t, os.WriteFile(filepath.Join(tree, "usr", "share", name, "payload"), []byte(payload+"\n"), 0o644))
	for _, p := range []string{tree, filepath.Join(tree, "DEBIAN"), filepath.Join(tree, "usr"), filepath.Join(tree, "usr", "share"), filepath.Join(tree, "usr", "share", name)} {
		must(t, os.Chmod(p, 0o755))
	}
	must(t, os.Chmod(filepath.Join(tree, "DEBIAN", "control"), 0o644))
	must(t, os.Chmod(filepath.Join(tree, "usr", "share", name, "payload"), 0o644))
	deb := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", name, version, arch))
	err := run.Run(context.Background(), run.Cmd{
		Args: []string{"dpkg-deb", "--build", "--root-owner-group", "-Zxz", tree, deb},
		Env:  run.BaseEnv("SOURCE_DATE_EPOCH=1700000000"),
	})
	must(t, err)
	return deb
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var debs struct {
	sync.Once
	dir, hello1, hello2, doc string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if debs.dir != "" {
		os.RemoveAll(debs.dir)
	}
	os.Exit(code)
}

func syscallUmask(m int) int { return syscall.Umask(m) }

// testDebs: two versions of halvm-hello (amd64) and an arch:all halvm-doc.
func testDebs(t testing.TB) (hello1, hello2, doc string) {
	t.Helper()
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	debs.Do(func() {
		dir, err := os.MkdirTemp("", "halvm-debian-test-")
		must(t, err)
		debs.dir = dir // shared by the tests of this package; TestMain removes it
		build := func(n, v, a, p string) string {
			d := makeDeb(t, n, v, a, p)
			dst := filepath.Join(dir, filepath.Base(d))
			b, err := os.ReadFile(d)
			must(t, err)
			must(t, os.WriteFile(dst, b, 0o644))
			return dst
		}
		debs.hello1 = build("halvm-hello", "1.0-1", "amd64", "hello one")
		debs.hello2 = build("halvm-hello", "1.1-1", "amd64", "hello two")
		debs.doc = build("halvm-doc", "1.0-1", "all", "docs")
	})
	return debs.hello1, debs.hello2, debs.doc
}

func testRepo(url string) Repo {
	return Repo{Suite: "stable", Codename: "halvm", Version: "2.4.3", URL: url, Date: testEpoch,
		Description: "HaLVM unikernel toolchain"}
}

// listing is a readable description of a tree: path, mode, mtime, sha256.
func listing(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d", rel, info.Mode(), info.ModTime().Unix())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:])
		}
		lines = append(lines, line)
		return nil
	})
	must(t, err)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestWriteLayoutAndDeterminism(t *testing.T) {
	key, _ := testKeys(t)
	h1, h2, doc := testDebs(t)
	in := Input{Repo: testRepo("http://127.0.0.1:8080/apt/"), Key: key, Debs: []string{doc, h2, h1}}
	a := filepath.Join(t.TempDir(), "a")
	res, err := Write(a, in)
	must(t, err)

	// Same inputs in another order, another directory, another umask: same bytes.
	b := filepath.Join(t.TempDir(), "b", "nested")
	in2 := in
	in2.Debs = []string{h1, doc, h2, h1} // an identical duplicate is fine
	old := syscallUmask(0o077)
	_, err = Write(b, in2)
	syscallUmask(old)
	must(t, err)
	if la, lb := listing(t, a), listing(t, b); la != lb {
		t.Errorf("two writes differ:\n--- a\n%s\n--- b\n%s", la, lb)
	}

	wantFiles := []string{
		"dists/stable/InRelease", "dists/stable/Release", "dists/stable/Release.gpg",
		"dists/stable/main/binary-amd64/Packages", "dists/stable/main/binary-amd64/Packages.gz",
		"dists/stable/main/binary-amd64/Packages.xz", "dists/stable/main/binary-amd64/Release",
		"halvm-archive-keyring.asc", "halvm-archive-keyring.gpg", "halvm.sources",
		"pool/main/h/halvm-doc/halvm-doc_1.0-1_all.deb",
		"pool/main/h/halvm-hello/halvm-hello_1.0-1_amd64.deb",
		"pool/main/h/halvm-hello/halvm-hello_1.1-1_amd64.deb",
	}
	var got []string
	for _, f := range res.Files {
		if !strings.Contains(f, "/by-hash/") {
			got = append(got, f)
		}
	}
	if strings.Join(got, "\n") != strings.Join(wantFiles, "\n") {
		t.Errorf("files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantFiles, "\n"))
	}
	if n := len(res.Files) - len(got); n != 4 {
		t.Errorf("%d by-hash files, want 4 (Packages, .gz, .xz, component Release)", n)
	}
	var ids []string
	for _, p := range res.Packages {
		ids = append(ids, p.ID())
	}
	if strings.Join(ids, " ") != "halvm-doc_1.0-1_all halvm-hello_1.0-1_amd64 halvm-hello_1.1-1_amd64" {
		t.Errorf("packages %v", ids)
	}

	rel, _ := os.ReadFile(filepath.Join(a, "dists/stable/Release"))
	for _, want := range []string{
		"Origin: HaLVM\nLabel: HaLVM\nSuite: stable\nCodename: halvm\nVersion: 2.4.3\nDate: Tue, 14 Nov 2023 22:13:20 UTC\nArchitectures: amd64\nComponents: main\nDescription: HaLVM unikernel toolchain\nAcquire-By-Hash: yes\n",
		"\nSHA256:\n ", " main/binary-amd64/Packages.xz\n",
	} {
		if !strings.Contains(string(rel), want) {
			t.Errorf("Release lacks %q:\n%s", want, rel)
		}
	}
	pk, _ := os.ReadFile(filepath.Join(a, "dists/stable/main/binary-amd64/Packages"))
	sum := sha256.Sum256(must2(os.ReadFile(h2)))
	for _, want := range []string{
		"Package: halvm-hello\nVersion: 1.1-1\nArchitecture: amd64\n",
		"Description: tiny test package halvm-hello\n A package for the apt repository tests.\n .\n It has no dependencies.\n",
		"Filename: pool/main/h/halvm-hello/halvm-hello_1.1-1_amd64.deb\nSize: ",
		"SHA256: " + hex.EncodeToString(sum[:]) + "\n",
	} {
		if !strings.Contains(string(pk), want) {
			t.Errorf("Packages lacks %q:\n%s", want, pk)
		}
	}
	src, _ := os.ReadFile(filepath.Join(a, "halvm.sources"))
	if want := "Types: deb\nURIs: http://127.0.0.1:8080/apt\nSuites: stable\nComponents: main\nArchitectures: amd64\nSigned-By: /etc/apt/keyrings/halvm.gpg\n"; string(src) != want {
		t.Errorf("halvm.sources:\n%s\nwant:\n%s", src, want)
	}

	vres, err := Verify(a, key.PublicArmored())
	if err != nil {
		t.Fatal(err)
	}
	if len(vres.Packages) != 3 || vres.Fingerprint != key.Fingerprint() || strings.Join(vres.Files, ",") != strings.Join(res.Files, ",") {
		t.Errorf("Verify result %+v", vres)
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// copyTree copies a repository tree for tampering.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	must(t, err)
	return dst
}

// flip changes one byte in the middle of a file, keeping its size.
func flip(t testing.TB, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	must(t, err)
	b[len(b)/2] ^= 0x20
	must(t, os.WriteFile(file, b, 0o644))
}

func writeGood(t testing.TB) (string, *pgp.Key) {
	t.Helper()
	key, _ := testKeys(t)
	h1, h2, doc := testDebs(t)
	dir := filepath.Join(t.TempDir(), "repo")
	_, err := Write(dir, Input{Repo: testRepo("http://127.0.0.1:1/"), Key: key, Debs: []string{h1, h2, doc}})
	must(t, err)
	return dir, key
}

func TestVerifyCatchesTampering(t *testing.T) {
	good, key := writeGood(t)
	_, other := testKeys(t)
	if _, err := Verify(good, key.PublicBinary()); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(good, other.PublicBinary()); err == nil || !strings.Contains(err.Error(), "InRelease") {
		t.Errorf("wrong key: err = %v", err)
	}
	cases := map[string]func(dir string){
		"Release edited": func(dir string) {
			p := filepath.Join(dir, "dists/stable/Release")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("Label: HaLVM"), []byte("Label: Evil!"), 1), 0o644)
		},
		"InRelease edited": func(dir string) {
			p := filepath.Join(dir, "dists/stable/InRelease")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("Label: HaLVM"), []byte("Label: Evil!"), 1), 0o644)
		},
		"Packages edited": func(dir string) { flip(t, filepath.Join(dir, "dists/stable/main/binary-amd64/Packages")) },
		"Packages.xz edited": func(dir string) {
			flip(t, filepath.Join(dir, "dists/stable/main/binary-amd64/Packages.xz"))
		},
		"by-hash copy edited": func(dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "dists/stable/main/binary-amd64/by-hash/SHA256/*"))
			flip(t, m[0])
		},
		"deb edited":  func(dir string) { flip(t, filepath.Join(dir, "pool/main/h/halvm-hello/halvm-hello_1.1-1_amd64.deb")) },
		"deb missing": func(dir string) { os.Remove(filepath.Join(dir, "pool/main/h/halvm-doc/halvm-doc_1.0-1_all.deb")) },
		"unsigned index": func(dir string) {
			os.WriteFile(filepath.Join(dir, "dists/stable/main/binary-amd64/Packages.bz2"), []byte("x"), 0o644)
		},
		"other key at root": func(dir string) {
			os.WriteFile(filepath.Join(dir, "halvm-archive-keyring.gpg"), other.PublicBinary(), 0o644)
		},
		"signature replaced": func(dir string) { os.Remove(filepath.Join(dir, "dists/stable/Release.gpg")) },
	}
	want := map[string]string{
		"Release edited":      "Release.gpg: verifying signature",
		"InRelease edited":    "InRelease: verifying cleartext signature",
		"Packages edited":     "binary-amd64/Packages: sha256",
		"Packages.xz edited":  "Packages.xz: sha256",
		"by-hash copy edited": "by-hash/SHA256/",
		"deb edited":          "halvm-hello_1.1-1_amd64.deb has sha256",
		"deb missing":         "halvm-doc_1.0-1_all.deb: no such file",
		"unsigned index":      "Packages.bz2: not listed in Release",
		"other key at root":   "republish the archive key",
		"signature replaced":  "Release.gpg: open",
	}
	for name, tamper := range cases {
		dir := copyTree(t, good)
		tamper(dir)
		_, err := Verify(dir, key.PublicBinary())
		if err == nil {
			t.Errorf("%s: Verify accepted the tree", name)
		} else if !strings.Contains(err.Error(), want[name]) || want[name] == "" {
			t.Errorf("%s: error lacks %q: %v", name, want[name], err)
		}
	}
}

func TestGpgvAndSqvAcceptRelease(t *testing.T) {
	testenv.NeedCommand(t, "gpgv", "gpgv")
	testenv.NeedCommand(t, "sqv", "sqv")
	dir, _ := writeGood(t)
	ctx := context.Background()
	suite := filepath.Join(dir, "dists", "stable")
	keyring := filepath.Join(dir, "halvm-archive-keyring.gpg")
	env := run.BaseEnv("GNUPGHOME=" + t.TempDir())
	gpgv := func(args ...string) error {
		return run.Run(ctx, run.Cmd{Args: append([]string{"gpgv", "--keyring", keyring}, args...), Dir: suite, Env: env})
	}
	sqv := func(sig, data string) error {
		return run.Run(ctx, run.Cmd{Args: []string{"sqv", "--keyring", keyring, sig, data}, Dir: suite, Env: env})
	}
	if err := gpgv("InRelease"); err != nil {
		t.Errorf("gpgv InRelease: %v", err)
	}
	if err := gpgv("Release.gpg", "Release"); err != nil {
		t.Errorf("gpgv Release.gpg Release: %v", err)
	}
	if err := sqv("Release.gpg", "Release"); err != nil {
		t.Errorf("sqv Release.gpg Release: %v", err)
	}
	// sqv 1.1 checks detached signatures only: split InRelease as apt does.
	in, _ := os.ReadFile(filepath.Join(suite, "InRelease"))
	i := bytes.Index(in, []byte("-----BEGIN PGP SIGNATURE-----"))
	must(t, os.WriteFile(filepath.Join(suite, "..", "InRelease.sig"), in[i:], 0o644))
	if err := sqv("../InRelease.sig", "Release"); err != nil {
		t.Errorf("sqv with InRelease's signature over Release: %v", err)
	}

	rel := filepath.Join(suite, "Release")
	b, _ := os.ReadFile(rel)
	must(t, os.WriteFile(rel, bytes.Replace(b, []byte("Suite: stable"), []byte("Suite: stab1e"), 1), 0o644))
	if err := gpgv("Release.gpg", "Release"); err == nil {
		t.Error("gpgv accepted a tampered Release")
	}
	if err := sqv("Release.gpg", "Release"); err == nil {
		t.Error("sqv accepted a tampered Release")
	}
	ib := bytes.Replace(in, []byte("Suite: stable"), []byte("Suite: stab1e"), 1)
	must(t, os.WriteFile(filepath.Join(suite, "InRelease"), ib, 0o644))
	if err := gpgv("InRelease"); err == nil {
		t.Error("gpgv accepted a tampered InRelease")
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	key, _ := testKeys(t)
	h1, _, _ := testDebs(t)
	i386 := makeDeb(t, "halvm-x86", "1.0-1", "i386", "x")
	samever := makeDeb(t, "halvm-hello", "1.0-1", "amd64", "different bytes, same version")
	notdeb := filepath.Join(t.TempDir(), "junk.deb")
	must(t, os.WriteFile(notdeb, []byte("junk"), 0o644))

	dst := filepath.Join(t.TempDir(), "repo")
	_, err := Write(dst, Input{Repo: Repo{Date: testEpoch}, Debs: []string{h1, i386, samever, notdeb, "/nonexistent.deb"}})
	if err == nil {
		t.Fatal("bad input accepted")
	}
	for _, want := range []string{
		"no signing key", "repo url is empty", `Architecture "i386"`, "halvm-hello_1.0-1_amd64 is already in the set",
		"bump the package revision", "junk.deb: not a .deb", "/nonexistent.deb:", "nothing written",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, serr := os.Stat(dst); serr == nil {
		t.Errorf("destination was created despite: %v", err)
	}

	// A non-empty destination is refused and left alone.
	full := t.TempDir()
	must(t, os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o644))
	if _, err := Write(full, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h1}}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty destination: err = %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Error("non-empty destination was modified")
	}
	// No packages at all.
	if _, err := Write(filepath.Join(t.TempDir(), "r"), Input{Repo: testRepo("http://x/"), Key: key}); err == nil || !strings.Contains(err.Error(), "no packages") {
		t.Errorf("empty package set: err = %v", err)
	}
	// A development key where a release key is required.
	if _, err := Write(filepath.Join(t.TempDir(), "r"), Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h1}, RequireReleaseKey: true}); err == nil || !strings.Contains(err.Error(), "development key") {
		t.Errorf("development key: err = %v", err)
	}
}

func TestWriteCarriesPreviousVersions(t *testing.T) {
	key, _ := testKeys(t)
	h1, h2, doc := testDebs(t)
	v1 := filepath.Join(t.TempDir(), "v1")
	_, err := Write(v1, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h1, doc}})
	must(t, err)

	v2 := filepath.Join(t.TempDir(), "v2")
	res, err := Write(v2, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h2, h1}, Previous: v1})
	must(t, err)
	if len(res.Packages) != 3 {
		t.Errorf("v2 has %d packages, want both hello versions and doc", len(res.Packages))
	}
	if _, err := Verify(v2, key.PublicBinary()); err != nil {
		t.Error(err)
	}
	// Same tree as writing everything at once.
	all := filepath.Join(t.TempDir(), "all")
	_, err = Write(all, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h1, h2, doc}})
	must(t, err)
	withoutByHash := func(l string) string {
		var keep []string
		for _, line := range strings.Split(l, "\n") {
			if !strings.Contains(line, "by-hash/SHA256/") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	if withoutByHash(listing(t, all)) != withoutByHash(listing(t, v2)) {
		t.Error("carrying over a previous tree gives a different tree than writing all at once")
	}
	// v1's indexes stay reachable by hash in v2; v1's own ancestors do not pile up.
	old, _ := filepath.Glob(filepath.Join(v1, "dists/stable/main/binary-amd64/by-hash/SHA256/*"))
	for _, f := range old {
		if _, err := os.Stat(filepath.Join(v2, "dists/stable/main/binary-amd64/by-hash/SHA256", filepath.Base(f))); err != nil {
			t.Errorf("v1's by-hash file %s not kept in v2", filepath.Base(f))
		}
	}
	v2b, _ := filepath.Glob(filepath.Join(v2, "dists/stable/main/binary-amd64/by-hash/SHA256/*"))
	if len(v2b) != 7 { // 4 current + Packages{,.gz,.xz} of v1 (component Release unchanged)
		t.Errorf("v2 has %d by-hash files, want 7", len(v2b))
	}
	v3ok := filepath.Join(t.TempDir(), "v3ok")
	_, err = Write(v3ok, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h2}, Previous: v2})
	must(t, err)
	if v3b, _ := filepath.Glob(filepath.Join(v3ok, "dists/stable/main/binary-amd64/by-hash/SHA256/*")); len(v3b) != 4 {
		t.Errorf("v3 (same packages as v2) has %d by-hash files, want 4: only one generation is kept", len(v3b))
	}

	// Republishing 1.0-1 with other bytes is refused.
	evil := makeDeb(t, "halvm-hello", "1.0-1", "amd64", "rebuilt differently")
	v3 := filepath.Join(t.TempDir(), "v3")
	if _, err := Write(v3, Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{evil}, Previous: v2}); err == nil || !strings.Contains(err.Error(), "never republish") {
		t.Errorf("republish with different bytes: err = %v", err)
	}
	// A damaged previous tree is reported.
	dmg := copyTree(t, v1)
	flip(t, filepath.Join(dmg, "pool/main/h/halvm-doc/halvm-doc_1.0-1_all.deb"))
	if _, err := Write(filepath.Join(t.TempDir(), "v4"), Input{Repo: testRepo("http://x/"), Key: key, Debs: []string{h2}, Previous: dmg}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged previous tree: err = %v", err)
	}
}
