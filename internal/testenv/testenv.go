// Package testenv decides what an integration test does when something it
// needs (root, Docker, QEMU, a Debian tool, the package mirror) is missing:
// locally it skips with the reason and the remedy; under CI (CI=true, 1 or
// yes) it fails, because a skip in CI would read as a pass that never
// happened.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/hostreq"
)

// CI reports whether the tests run under CI, where nothing may skip: CI
// set to true, 1 or yes in any case, as CI systems set it (GitHub Actions
// and GitLab CI say true, others 1 or True).
func CI() bool { return isYes(os.Getenv("CI")) }

func isYes(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// CacheDir is the tests' download cache (config.TestCache for the test
// command): $HALVM_TEST_CACHE, else $HOME/.cache/halvm-release-test, else
// os.UserCacheDir()/halvm-release-test.
func CacheDir() string {
	if d := os.Getenv("HALVM_TEST_CACHE"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "halvm-release-test")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "halvm-release-test")
	}
	return filepath.Join(os.TempDir(), "halvm-release-test")
}

// Unavailable stops the test because a prerequisite is missing: a skip
// locally, a failure under CI. Call it, never a bare t.Skip.
func Unavailable(t testing.TB, reason, remedy string) {
	t.Helper()
	if CI() {
		t.Fatalf("required in CI but unavailable: %s (remedy: %s)", reason, remedy)
	}
	t.Skipf("skipped: %s (remedy: %s; under CI=true this fails)", reason, remedy)
}

// NeedCommand requires programs on PATH; debPkg is the Debian package that
// provides them, which must be the one the table of host prerequisites
// (internal/hostreq) names: the remedy is the table's.
func NeedCommand(t testing.TB, debPkg string, names ...string) {
	t.Helper()
	for _, n := range names {
		p, ok := hostreq.ProviderOf(n)
		if !ok || p.Name != debPkg {
			t.Fatalf("testenv.NeedCommand(%q, %q): the table of host prerequisites (internal/hostreq) does not say %s provides %s: fix the call or the table", debPkg, n, debPkg, n)
		}
		if _, err := exec.LookPath(n); err != nil {
			Unavailable(t, n+" is not installed (needed by "+strings.Join(p.NeededBy, ", ")+": "+p.Why+")",
				"apt-get install -y "+p.Name+", or let `go run mage.go test` install every prerequisite")
		}
	}
}

// NeedRoot requires uid 0 (chroot, mounts, rpm --root, debootstrap).
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "the test needs root", "run the tests as root (CI does)")
	}
}

// Short skips an expensive test under -short, which CI never sets.
func Short(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, what+" is skipped under -short", "run without -short")
	}
}
