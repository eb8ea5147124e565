package nginx_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/nginx"
	"github.com/halvm/halvm-release/internal/nginx/nginxtest"
	"github.com/halvm/halvm-release/internal/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeDir: a publication under directories www-data cannot enter (a
// test's 0700 temporary directory, a checkout under /root) is served
// through a read-only bind mount; inside it, what www-data cannot read is
// refused, as any host would refuse it.
func TestServeDir(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "nginx", "nginx")
	for _, where := range []struct {
		name    string
		parent  string
		mounted bool
	}{{"behind a 0700 directory", t.TempDir(), true}, {"under a 0755 directory", nginxtest.PublicDir(t), false}} {
		t.Run(where.name, func(t *testing.T) {
			pub := filepath.Join(where.parent, "secret", "pub")
			if err := os.MkdirAll(filepath.Join(pub, "dists"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Dir(pub), 0o700); err != nil && where.mounted {
				t.Fatal(err)
			}
			if !where.mounted {
				os.Chmod(filepath.Dir(pub), 0o755)
			}
			os.WriteFile(filepath.Join(pub, "dists", "Release"), []byte("ok\n"), 0o644)
			os.WriteFile(filepath.Join(pub, "private"), []byte("no\n"), 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv, err := nginx.ServeDir(ctx, pub, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if (srv.Mounted != "") != where.mounted {
				t.Errorf("mounted = %q, want a bind mount: %v", srv.Mounted, where.mounted)
			}
			if code, body := get(t, srv.URL+"/dists/Release"); code != 200 || body != "ok\n" {
				t.Errorf("GET /dists/Release: %d %q", code, body)
			}
			if code, _ := get(t, srv.URL+"/private"); code != http.StatusForbidden {
				t.Errorf("GET a 0600 file: %d, want 403 (workers as www-data)", code)
			}
			mnt := srv.Mounted
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			if mnt != "" {
				if _, err := os.Stat(filepath.Dir(mnt)); !os.IsNotExist(err) {
					t.Errorf("the bind mount's directory %s is left behind: %v", mnt, err)
				}
			}
		})
	}
}

// TestReleaseShowsTheTestedSite: RELEASE.md shows the server block the
// tests serve the publish root with.
func TestReleaseShowsTheTestedSite(t *testing.T) {
	b, err := os.ReadFile("../../RELEASE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- nginx-site -->\n```nginx\n(.*?)```").FindSubmatch(b)
	want := nginx.RepoSite("80", "/srv/halvm").Server()
	if m == nil || string(m[1]) != want {
		t.Fatalf("RELEASE.md's nginx site (after <!-- nginx-site -->) is not what the tests serve; want:\n%s", want)
	}
	if !strings.Contains(nginx.Config(nginx.RepoSite("80", "/srv/halvm"), "/run/x"), "user www-data;") {
		t.Fatal("the tested configuration does not run the workers as www-data")
	}
}
