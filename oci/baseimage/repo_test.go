package baseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// buildDeb makes a tiny real .deb with dpkg-deb.
func buildDeb(t *testing.T, dir, name, version string) string {
	t.Helper()
	root := filepath.Join(dir, name+"-root")
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n", name, version)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, name+"_"+version+"_all.deb")
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"dpkg-deb", "--root-owner-group", "--build", root, deb}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	return deb
}

// TestWriteRepo: the local repository mmdebstrap installs from holds
// exactly the given .debs under content-addressed names, with a Packages
// index sorted by name and a Release that hashes it; a package given
// twice is refused.
func TestWriteRepo(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	src := t.TempDir()
	b := buildDeb(t, src, "pkg-b", "2.0")
	a := buildDeb(t, src, "pkg-a", "1.0")
	repo := filepath.Join(t.TempDir(), "repo")
	idx, err := writeRepo(context.Background(), repo, "bookworm", []string{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if !idx.names["pkg-a"] || !idx.names["pkg-b"] || len(idx.sums) != 2 {
		t.Errorf("index %+v", idx)
	}
	packages, err := os.ReadFile(filepath.Join(repo, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	paras, err := deb822.Parse(packages)
	if err != nil {
		t.Fatal(err)
	}
	if len(paras) != 2 || paras[0].Get("Package") != "pkg-a" || paras[1].Get("Package") != "pkg-b" {
		t.Fatalf("Packages is not the two packages sorted by name:\n%s", packages)
	}
	for _, p := range paras {
		deb := map[string]string{"pkg-a": a, "pkg-b": b}[p.Get("Package")]
		_, sum, err := fsutil.HashFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if p.Get("SHA256") != sum || p.Get("Filename") != "./"+sum+".deb" {
			t.Errorf("%s: Filename %s, SHA256 %s; want ./%s.deb", p.Get("Package"), p.Get("Filename"), p.Get("SHA256"), sum)
		}
		if _, err := os.Stat(filepath.Join(repo, sum+".deb")); err != nil {
			t.Error(err)
		}
	}
	release, err := os.ReadFile(filepath.Join(repo, "Release"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(packages)
	if !strings.Contains(string(release), fmt.Sprintf(" %s %d Packages\n", hex.EncodeToString(h[:]), len(packages))) || !strings.Contains(string(release), "Suite: bookworm\n") {
		t.Errorf("Release does not hash Packages:\n%s", release)
	}

	again := buildDeb(t, t.TempDir(), "pkg-a", "1.1")
	if _, err := writeRepo(context.Background(), filepath.Join(t.TempDir(), "repo"), "bookworm", []string{a, again}); err == nil || !strings.Contains(err.Error(), "package pkg-a is given twice") {
		t.Errorf("a package given twice: %v", err)
	}
}
