package repos

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/nginx"
	"github.com/halvm/halvm-release/internal/nginx/nginxtest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/sbom"
)

// umask077 runs f with the umask the release runs with while its
// reproducibility rebuild runs (the test's own clients run without it).
func umask077(f func()) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	f()
}

// assertPublic fails unless every file under root is 0644 and every
// directory 0755.
func assertPublic(t *testing.T, root, when string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && fi.Mode().Perm() != publish.DirMode:
			t.Errorf("%s: directory %s is %04o, want %04o", when, p, fi.Mode().Perm(), publish.DirMode)
		case d.Type().IsRegular() && fi.Mode().Perm() != publish.FileMode:
			t.Errorf("%s: file %s is %04o, want %04o", when, p, fi.Mode().Perm(), publish.FileMode)
		}
		n++
		return nil
	})
	must(t, err)
	if n < 20 {
		t.Fatalf("%s: only %d paths under %s", when, n, root)
	}
}

// TestServedByNginx publishes under umask 077 (as the release does while
// the rebuild runs) and serves the publish root with Debian's nginx, its
// workers as www-data: every path is 0644/0755, apt-get install and dnf
// install (repo_gpgcheck=1) work in clean roots, the release files pass
// sha256sum -c and gpgv, and switch and rollback keep the modes.
func TestServedByNginx(t *testing.T) {
	testenv.NeedCommand(t, "coreutils", "sha256sum")
	testenv.NeedCommand(t, "gpgv", "gpgv")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	root := filepath.Join(nginxtest.PublicDir(t), "repos")
	srv := nginxtest.Start(t, nginx.RepoSite("", root))
	c := config(root, srv.URL, testKey(t))
	d1, r1 := pkgs(t, "1")
	files := releaseFiles(t, `{"one":1}`)
	umask077(func() {
		s1, err := Prepare(ctx, c, []string{d1}, []string{r1})
		must(t, err)
		must(t, Activate(c, s1))
		_, err = PublishFiles(ctx, c, "2.4.3-1", files)
		must(t, err)
	})
	assertPublic(t, root, "first publication")

	cl := newClients(t, ctx, srv.URL)
	cl.usable("served by nginx as www-data")
	if out, err := cl.apt("apt-get", "install", "-y", "halvm-hello"); err != nil {
		t.Fatalf("apt-get install through nginx: %v\n%s", err, out)
	}
	repoFile, err := os.ReadFile(filepath.Join(cl.rd, "halvm.repo"))
	must(t, err)
	if !strings.Contains(string(repoFile), "repo_gpgcheck=1") {
		t.Fatalf("halvm.repo does not set repo_gpgcheck=1:\n%s", repoFile)
	}
	if out, err := cl.dnfCmd("install", "halvm-hello"); err != nil {
		t.Fatalf("dnf install through nginx: %v\n%s", err, out)
	}

	// The release files, downloaded as a user would and checked with
	// sha256sum -c and gpgv against the archive key.
	dl := t.TempDir()
	base := srv.URL + "/files/2.4.3-1/"
	for _, f := range []string{sbom.SumsName, sbom.SumsOpenPGP, sbom.SumsCosign, "sbom/halvm.spdx.json"} {
		cl.fetch(base+f, filepath.Join(dl, f))
	}
	must(t, os.WriteFile(filepath.Join(dl, "archive.gpg"), c.Key.PublicBinary(), 0o644))
	env := run.BaseEnv()
	if out, err := run.Output(ctx, run.Cmd{Args: []string{"sha256sum", "-c", sbom.SumsName}, Dir: dl, Env: env}); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if out, err := run.Output(ctx, run.Cmd{Args: []string{"gpgv", "--keyring", filepath.Join(dl, "archive.gpg"), sbom.SumsOpenPGP, sbom.SumsName}, Dir: dl, Env: env}); err != nil {
		t.Fatalf("gpgv: %v\n%s", err, out)
	}

	// The workers really are unprivileged: a file only root may read is
	// refused.
	live := filepath.Join(c.AptDir(), "current", "halvm.sources")
	must(t, os.Chmod(live, 0o600))
	resp, err := http.Get(srv.URL + "/apt/halvm.sources")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a 0600 file answered %s: nginx's workers are not unprivileged", resp.Status)
	}

	// A second publication, then a rollback with the public key only (a
	// switch back): it fixes the mode changed above, and every path stays
	// public. Then a rollback with the archive key (the previous packages
	// republished newer-dated): public too.
	d2, r2 := pkgs(t, "2")
	pubOnly := c
	pubOnly.PublicKey, pubOnly.Key = c.Key.PublicBinary(), nil
	umask077(func() {
		s2, err := Prepare(ctx, c, []string{d2}, []string{r2})
		must(t, err)
		must(t, Activate(c, s2))
		assertPublic(t, filepath.Join(c.AptDir(), "publications", s2.Apt), "second publication")
		if _, err := Rollback(pubOnly); err != nil {
			t.Fatal(err)
		}
	})
	assertPublic(t, root, "after the rollback (switch back)")
	cl.usable("after the rollback, through nginx")
	umask077(func() {
		s3, err := Prepare(ctx, c, []string{d2}, []string{r2})
		must(t, err)
		must(t, Activate(c, s3))
		if _, err := Rollback(c); err != nil {
			t.Fatal(err)
		}
	})
	assertPublic(t, root, "after the rollback (republished)")
	cl.usable("after the republishing rollback, through nginx")
}
