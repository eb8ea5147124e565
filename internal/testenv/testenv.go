// Package testenv decides what an integration test does when something it
// needs (root, Docker, QEMU, a Debian tool, the package mirror) is missing:
// locally it skips with the reason and the remedy; under CI=true it fails,
// because a skip in CI would read as a pass that never happened.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run under CI (CI=true), where nothing may skip.
func CI() bool { return os.Getenv("CI") == "true" }

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
// provides them.
func NeedCommand(t testing.TB, debPkg string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Unavailable(t, n+" is not installed", "apt-get install "+debPkg)
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
