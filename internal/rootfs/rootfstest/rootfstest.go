// Package rootfstest gives tests a fresh Debian 12 root filesystem: it
// checks the prerequisites (root, mmdebstrap) the testenv way, keeps the
// template in the shared test cache, and removes each clone afterwards.
package rootfstest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/testenv"
)

// CacheDir is the tests' download cache (testenv.CacheDir).
func CacheDir() string { return testenv.CacheDir() }

// Template returns the cached template for spec, building it if needed.
func Template(t testing.TB, spec rootfs.Spec) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	tpl, err := rootfs.PrepareSpec(ctx, CacheDir(), spec)
	if errors.Is(err, rootfs.ErrMirrorUnreachable) {
		testenv.Unavailable(t, "building the Debian 12 rootfs template: "+err.Error(),
			"give the machine access to the Debian mirror in /etc/apt/sources.list.d (or set HALVM_TEST_CACHE to a warm cache)")
	}
	if err != nil {
		t.Fatal(err) // any other failure is a fault, never a skip
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("rootfs template %s built in %s", tpl, d.Round(time.Millisecond))
	}
	return tpl
}

// New returns a fresh clone of the default template, removed (after
// unmounting anything left mounted) when the test ends.
func New(t testing.TB) string { return NewSpec(t, rootfs.Spec{}) }

// NewSpec is New for a given Spec.
func NewSpec(t testing.TB, spec rootfs.Spec) string {
	t.Helper()
	tpl := Template(t, spec)
	root := filepath.Join(t.TempDir(), "root")
	start := time.Now()
	if err := rootfs.Clone(context.Background(), tpl, root); err != nil {
		t.Fatal(err)
	}
	t.Logf("rootfs cloned in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := rootfs.Remove(root); err != nil {
			t.Errorf("cleaning up rootfs: %v", err)
		}
	})
	return root
}
