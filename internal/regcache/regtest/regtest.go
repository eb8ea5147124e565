// Package regtest starts Debian's docker-registry for tests, on a free
// 127.0.0.1 port with a temporary storage directory, killed at cleanup.
// Without the program the test skips through internal/testenv (under
// CI=true it fails).
package regtest

import (
	"context"
	"testing"

	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/testenv"
)

// Start starts a registry for t.
func Start(t testing.TB) *regcache.Server {
	t.Helper()
	testenv.NeedCommand(t, "docker-registry", regcache.ServerCommand)
	s, err := regcache.StartServer(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
