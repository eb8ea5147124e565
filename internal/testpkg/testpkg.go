// Package testpkg builds tiny, reproducible, signed .deb and .rpm packages
// with nfpm for tests of the repository and publishing code. Each package
// installs one file, /usr/share/<name>/payload, and depends on nothing.
package testpkg

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	nfpmrpm "github.com/goreleaser/nfpm/v2/rpm"

	"github.com/halvm/halvm-release/internal/pgp"
)

// Spec of a test package.
type Spec struct {
	Name, Version, Release string
	Payload                string    // content of /usr/share/<Name>/payload
	Epoch                  time.Time // mtimes and signature time
	Key                    *pgp.Key  // signs the rpm header (nil: unsigned)
}

func info(t testing.TB, s Spec, arch string) *nfpm.Info {
	t.Helper()
	src := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(src, []byte(s.Payload+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: mode, MTime: s.Epoch, Owner: "root", Group: "root"}
	}
	return nfpm.WithDefaults(&nfpm.Info{
		Name: s.Name, Arch: arch, Platform: "linux", Version: s.Version, Release: s.Release,
		Maintainer: "HaLVM test <test@halvm.invalid>", Description: "test package " + s.Name + "\nfor repository tests.",
		Homepage: "https://halvm.invalid/", License: "BSD-3-Clause", MTime: s.Epoch, Section: "devel",
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Destination: "/usr/share/" + s.Name, Type: files.TypeDir, FileInfo: fi(0o755)},
				{Source: src, Destination: "/usr/share/" + s.Name + "/payload", FileInfo: fi(0o644)},
			},
			RPM: nfpm.RPM{BuildHost: "build.halvm.invalid", Group: "Development/Tools", Summary: "test package " + s.Name},
		},
	})
}

// Deb builds the package as name_version-release_amd64.deb in dir.
func Deb(t testing.TB, dir string, s Spec) string {
	t.Helper()
	var b bytes.Buffer
	if err := deb.Default.Package(info(t, s, "amd64"), &b); err != nil {
		t.Fatalf("building test deb %s: %v", s.Name, err)
	}
	return write(t, filepath.Join(dir, fmt.Sprintf("%s_%s-%s_amd64.deb", s.Name, s.Version, s.Release)), b.Bytes())
}

// RPM builds the package as name-version-release.x86_64.rpm in dir, its
// header signed with s.Key.
func RPM(t testing.TB, dir string, s Spec) string {
	t.Helper()
	in := info(t, s, "amd64")
	if s.Key != nil {
		in.RPM.Signature.SignFn = func(r io.Reader) ([]byte, error) { return s.Key.DetachSign(r, s.Epoch) }
	}
	var b bytes.Buffer
	if err := (&nfpmrpm.RPM{}).Package(in, &b); err != nil {
		t.Fatalf("building test rpm %s: %v", s.Name, err)
	}
	return write(t, filepath.Join(dir, fmt.Sprintf("%s-%s-%s.x86_64.rpm", s.Name, s.Version, s.Release)), b.Bytes())
}

func write(t testing.TB, p string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
