package rpm

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	nfpmrpm "github.com/goreleaser/nfpm/v2/rpm"

	"github.com/halvm/halvm-release/internal/pgp"
)

// testEpoch is SOURCE_DATE_EPOCH for every test: 2023-11-14T22:13:20Z.
var testEpoch = time.Unix(1700000000, 0).UTC()

var (
	keyOnce        sync.Once
	repoKey, other *pgp.Key
	keyErr         error
)

// testKeys returns the repository key and an unrelated second key, made
// once per test binary (RSA generation takes a moment).
func testKeys(t testing.TB) (*pgp.Key, *pgp.Key) {
	t.Helper()
	keyOnce.Do(func() {
		repoKey, keyErr = pgp.Generate("HaLVM test archive", "test@halvm.invalid", true, testEpoch)
		if keyErr == nil {
			other, keyErr = pgp.Generate("Someone else", "else@halvm.invalid", true, testEpoch)
		}
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return repoKey, other
}

// pkgSpec is a tiny test package.
type pkgSpec struct {
	Name, Version, Release, Arch string // Arch in rpm terms: x86_64, noarch, aarch64
	Epoch                        string
	Files                        map[string]string // destination -> content (mode 0755 under */bin/, else 0644)
	Dirs                         []string
	Ghosts                       []string
	Configs                      map[string]string
	Provides, Depends, Conflicts []string
	Replaces, Recommends         []string
	Suggests                     []string
	Changelog                    string // chglog YAML, optional
	Extra                        string // changes the bytes without changing NEVRA
	Unsigned                     bool
	SignWith                     *pgp.Key // nil: the repository key
}

// buildRPM builds spec with nfpm into dir and returns its path. The result
// is byte-reproducible (fixed MTime, BuildHost, explicit contents and
// deterministic signatures).
func buildRPM(t testing.TB, dir string, spec pkgSpec) string {
	t.Helper()
	key, _ := testKeys(t)
	if spec.SignWith != nil {
		key = spec.SignWith
	}
	if spec.Release == "" {
		spec.Release = "1"
	}
	src := t.TempDir()
	var contents files.Contents
	n := 0
	addFile := func(dst, body, typ string, mode os.FileMode) {
		n++
		p := filepath.Join(src, "f"+string(rune('a'+n%26))+filepath.Base(dst))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		contents = append(contents, &files.Content{Source: p, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, MTime: testEpoch, Owner: "root", Group: "root"}})
	}
	for dst, body := range spec.Files {
		mode := os.FileMode(0o644)
		if filepath.Base(filepath.Dir(dst)) == "bin" || filepath.Base(filepath.Dir(dst)) == "sbin" {
			mode = 0o755
		}
		addFile(dst, body+spec.Extra, "", mode)
	}
	for dst, body := range spec.Configs {
		addFile(dst, body, files.TypeConfig, 0o644)
	}
	for _, d := range spec.Dirs {
		contents = append(contents, &files.Content{Destination: d, Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: testEpoch, Owner: "root", Group: "root"}})
	}
	for _, g := range spec.Ghosts {
		contents = append(contents, &files.Content{Destination: g, Type: files.TypeRPMGhost,
			FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: testEpoch, Owner: "root", Group: "root"}})
	}
	info := &nfpm.Info{
		Name:        spec.Name,
		Arch:        spec.Arch,
		Platform:    "linux",
		Epoch:       spec.Epoch,
		Version:     spec.Version,
		Release:     spec.Release,
		Maintainer:  "HaLVM release team <release@halvm.invalid>",
		Description: "Test package " + spec.Name + ".\nSecond line & <markup> \"quoted\".",
		Vendor:      "HaLVM",
		Homepage:    "https://halvm.invalid/",
		License:     "BSD-3-Clause",
		MTime:       testEpoch,
		Overridables: nfpm.Overridables{
			Contents:   contents,
			Provides:   spec.Provides,
			Depends:    spec.Depends,
			Conflicts:  spec.Conflicts,
			Replaces:   spec.Replaces,
			Recommends: spec.Recommends,
			Suggests:   spec.Suggests,
			RPM: nfpm.RPM{
				Arch:      spec.Arch,
				BuildHost: "build.halvm.invalid",
				Group:     "Development/Languages",
				Summary:   "HaLVM test package " + spec.Name,
				Packager:  "HaLVM release team <release@halvm.invalid>",
			},
		},
	}
	if spec.Changelog != "" {
		p := filepath.Join(src, "changelog.yml")
		if err := os.WriteFile(p, []byte(spec.Changelog), 0o644); err != nil {
			t.Fatal(err)
		}
		info.Changelog = p
	}
	if !spec.Unsigned {
		info.RPM.Signature.SignFn = func(data io.Reader) ([]byte, error) {
			return key.DetachSign(data, testEpoch)
		}
	}
	info = nfpm.WithDefaults(info)
	var buf bytes.Buffer
	if err := (&nfpmrpm.RPM{}).Package(info, &buf); err != nil {
		t.Fatalf("building test rpm %s: %v", spec.Name, err)
	}
	name := spec.Name + "-" + spec.Version + "-" + spec.Release + "." + spec.Arch + ".rpm"
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// halvmSpec is the package most tests use.
func halvmSpec() pkgSpec {
	return pkgSpec{
		Name: "halvm", Version: "2.4.3", Release: "1", Arch: "x86_64",
		Files: map[string]string{
			"/usr/bin/halvm-ghc":          "#!/bin/false\n",
			"/usr/lib/halvm/settings":     "settings\n",
			"/usr/share/doc/halvm/README": "HaLVM test\n",
		},
		Configs:    map[string]string{"/etc/halvm/halvm.conf": "x=1\n"},
		Dirs:       []string{"/usr/lib/halvm"},
		Ghosts:     []string{"/var/log/halvm.log"},
		Provides:   []string{"halvm-compiler = 2.4.3", "/usr/bin/halvm-ghc"},
		Depends:    []string{"/usr/bin/halvm-ghc", "halvm-compiler = 2.4.3"},
		Conflicts:  []string{"halvm-legacy < 2.0"},
		Replaces:   []string{"halvm-old <= 2.4.0-1"},
		Recommends: []string{"halvm-gmp"},
		Changelog: `- semver: 2.4.3
  date: 2023-11-01T00:00:00Z
  packager: HaLVM release team <release@halvm.invalid>
  changes:
    - commit: aaaaaaa
      note: rebuild for 2.4.3
- semver: 2.4.2
  date: 2023-10-01T00:00:00Z
  packager: HaLVM release team <release@halvm.invalid>
  changes:
    - commit: bbbbbbb
      note: first test release
`,
	}
}
