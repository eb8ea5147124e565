package rpm

import (
	"bytes"
	"compress/gzip"
	"context"
	"github.com/halvm/halvm-release/internal/detgzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// dnfRepo is a repository served over HTTP on 127.0.0.1 for the test.
type dnfRepo struct {
	root    string // served directory; repositories are subdirectories
	url     string
	pkgs    []string
	reposd  string
	workDir string
}

func serveDir(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// dnf runs dnf against installroot with only reposd's .repo files, fully
// offline apart from the test's own HTTP server: no host repositories, the
// key fetched from the repository's gpgkey= URL and imported because of
// -y, weak dependencies off (halvm recommends halvm-gmp). That a repository
// failing verification is an error rather than skipped comes from the
// shipped halvm.repo itself (skip_if_unavailable=False; Debian's
// /etc/dnf/dnf.conf sets it to True, which would turn a bad signature into a
// warning and exit 0).
func dnf(ctx context.Context, t *testing.T, installroot, reposd string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"dnf", "-y",
		"--installroot=" + installroot,
		"--releasever=12",
		"--setopt=reposdir=" + reposd,
		"--setopt=install_weak_deps=False",
	}, args...)
	var out bytes.Buffer
	err := run.Run(ctx, run.Cmd{Args: full, Env: run.BaseEnv(), Stdout: &out, Stderr: &out})
	if err != nil {
		return out.String() + "\n" + err.Error(), err
	}
	return out.String(), nil
}

func TestDnfInstallsFromSignedRepository(t *testing.T) {
	testenv.NeedRoot(t) // dnf --installroot installs root-owned files
	testenv.NeedCommand(t, "dnf", "dnf")
	testenv.NeedCommand(t, "rpm", "rpm", "rpmkeys")
	testenv.NeedCommand(t, "gpg", "gpg") // librepo checks repomd.xml.asc through gpgme
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	key, otherKey := testKeys(t)
	in := t.TempDir()
	pkgs := []string{
		buildRPM(t, in, halvmSpec()),
		buildRPM(t, in, pkgSpec{Name: "halvm-gmp", Version: "2.4.3", Arch: "noarch",
			Files: map[string]string{"/usr/share/halvm-gmp/README": "gmp flavour\n"}}),
	}
	served := t.TempDir()
	url := serveDir(t, served)
	opts := Options{Epoch: testEpoch, BaseURL: url + "/good"}
	good := filepath.Join(served, "good")
	if err := Write(good, pkgs, key, opts); err != nil {
		t.Fatal(err)
	}
	if err := Verify(good, key.PublicArmored()); err != nil {
		t.Fatal(err)
	}

	// halvm.repo exactly as users get it, pointing at the served copy.
	reposFor := func(t *testing.T, name string) string {
		d := t.TempDir()
		o := opts
		o.BaseURL = url + "/" + name
		if err := os.WriteFile(filepath.Join(d, "halvm.repo"), RepoFile(o), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("makecache info install", func(t *testing.T) {
		root := t.TempDir()
		reposd := reposFor(t, "good")
		for _, args := range [][]string{{"makecache"}, {"info", "halvm"}, {"install", "halvm"}} {
			out, err := dnf(ctx, t, root, reposd, args...)
			if err != nil {
				t.Fatalf("dnf %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if args[0] == "info" && !strings.Contains(out, "HaLVM test package halvm") {
				t.Errorf("dnf info halvm does not show the summary:\n%s", out)
			}
			t.Logf("dnf %s:\n%s", strings.Join(args, " "), out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/bin/halvm-ghc")); err != nil {
			t.Errorf("installed file missing: %v", err)
		}
		out, err := run.Output(ctx, run.Cmd{Args: []string{"rpm", "--root", root, "-q", "halvm"}, Env: run.BaseEnv()})
		if err != nil || !strings.Contains(string(out), "halvm-2.4.3-1.x86_64") {
			t.Errorf("rpm -q halvm in the installroot: %v: %s", err, out)
		}
	})

	t.Run("tampered repomd.xml fails the signature check", func(t *testing.T) {
		dir := copyTree(t, good, filepath.Join(served, "badsig"))
		p := filepath.Join(dir, "repodata", "repomd.xml")
		b, _ := os.ReadFile(p)
		b = bytes.Replace(b, []byte("<revision>1700000000</revision>"), []byte("<revision>1700000001</revision>"), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := dnf(ctx, t, t.TempDir(), reposFor(t, "badsig"), "makecache")
		if err == nil {
			t.Fatalf("dnf accepted a repomd.xml whose signature does not match:\n%s", out)
		}
		if !strings.Contains(out, "repomd.xml GPG signature verification error") {
			t.Errorf("dnf failed, but not with a signature error:\n%s", out)
		}
		t.Logf("dnf makecache (tampered repomd.xml):\n%s", out)
		if err := Verify(dir, key.PublicArmored()); err == nil || !strings.Contains(err.Error(), "repomd.xml.asc") {
			t.Errorf("Verify of a tampered repomd.xml: %v", err)
		}
	})

	t.Run("tampered primary fails the checksum check", func(t *testing.T) {
		dir := copyTree(t, good, filepath.Join(served, "badprimary"))
		matches, _ := filepath.Glob(filepath.Join(dir, "repodata", "*-primary.xml.gz"))
		if len(matches) != 1 {
			t.Fatalf("primary files: %v", matches)
		}
		plain := gunzip(t, matches[0])
		plain = bytes.Replace(plain, []byte("HaLVM test package halvm<"), []byte("HaLVM evil package halvm<"), 1)
		gz, _ := detgzip.Bytes(plain)
		if err := os.WriteFile(matches[0], gz, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := dnf(ctx, t, t.TempDir(), reposFor(t, "badprimary"), "makecache")
		if err == nil {
			t.Fatalf("dnf accepted a primary.xml.gz whose checksum does not match repomd.xml:\n%s", out)
		}
		if !strings.Contains(out, "checksum doesn't match") {
			t.Errorf("dnf failed, but not with a checksum error:\n%s", out)
		}
		t.Logf("dnf makecache (tampered primary):\n%s", out)
		if err := Verify(dir, key.PublicArmored()); err == nil || !strings.Contains(err.Error(), "primary.xml.gz: sha256") {
			t.Errorf("Verify of a tampered primary: %v", err)
		}
	})

	t.Run("rpmkeys accepts the packages", func(t *testing.T) {
		db := t.TempDir()
		keyFile := filepath.Join(good, "RPM-GPG-KEY-halvm")
		if out, err := run.Output(ctx, run.Cmd{Args: []string{"rpmkeys", "--dbpath", db, "--import", keyFile}, Env: run.BaseEnv()}); err != nil {
			t.Fatalf("rpmkeys --import: %v: %s", err, out)
		}
		pk, _ := filepath.Glob(filepath.Join(good, "Packages", "*", "*.rpm"))
		if len(pk) != 2 {
			t.Fatalf("packages in the repository: %v", pk)
		}
		for _, p := range pk {
			out, err := run.Output(ctx, run.Cmd{Args: []string{"rpm", "--dbpath", db, "-K", p}, Env: run.BaseEnv()})
			if err != nil || !strings.Contains(string(out), "signatures OK") || strings.Contains(string(out), "NOKEY") {
				t.Errorf("rpm -K %s: %v: %s", filepath.Base(p), err, out)
			}
		}
		// The check is real: a package signed by another key is refused.
		foreign := buildRPM(t, t.TempDir(), pkgSpec{Name: "foreign", Version: "1.0.0", Arch: "noarch", SignWith: otherKey,
			Files: map[string]string{"/usr/share/foreign/x": "x"}})
		out, err := run.Output(ctx, run.Cmd{Args: []string{"rpm", "--dbpath", db, "-K", foreign}, Env: run.BaseEnv()})
		if err == nil {
			t.Errorf("rpm -K accepted a package signed by another key: %s", out)
		}
	})
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) string {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func gunzip(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
