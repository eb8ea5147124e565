// Package nginxtest gives tests a real web server: Debian's nginx with
// its workers as www-data (package nginx), started on 127.0.0.1 and
// stopped at the end of the test. A missing nginx, or not being root,
// skips locally and fails under CI=true (internal/testenv).
package nginxtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/nginx"
	"github.com/halvm/halvm-release/internal/testenv"
)

// PublicDir returns a fresh empty directory that www-data can traverse
// (t.TempDir's parents are 0700): the place for a publish root nginx
// serves. It is removed at the end of the test.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "halvm-nginxtest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Start starts nginx serving site (Listen "" picks a free port).
func Start(t testing.TB, site nginx.Site) *nginx.Server {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "nginx", "nginx")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := nginx.Start(ctx, site, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error.log:\n%s", srv.ErrorLog())
		}
		srv.Close()
	})
	return srv
}
