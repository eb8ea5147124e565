package publish

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/halvm/halvm-release/internal/testenv"
)

// smallFS mounts a tmpfs of size bytes and returns its directory.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	testenv.NeedRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		testenv.Unavailable(t, "mounting a tmpfs: "+err.Error(), "run the tests as root with CAP_SYS_ADMIN (CI does)")
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// liveState is what a client sees: the live publication and its bytes.
func liveState(t *testing.T, root string) string {
	t.Helper()
	cur, err := Current(root)
	must(t, err)
	if err := (fileRepo{}).Verify(filepath.Join(root, "current")); err != nil {
		t.Fatalf("the live publication %s does not verify: %v", cur, err)
	}
	b, err := os.ReadFile(filepath.Join(root, "current", "INDEX"))
	must(t, err)
	return cur + "\n" + string(b)
}

// TestDiskFullDuringStaging: the disk filling up while a publication is
// written leaves the live one as it was, no staging behind, and the error
// says the disk is full.
func TestDiskFullDuringStaging(t *testing.T) {
	root := smallFS(t, "256k")
	ctx := context.Background()
	_, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_1", "small")}, Options{})
	must(t, err)
	before := liveState(t, root)
	big := pkg(t, "a_2", strings.Repeat("x", 1<<20))
	_, err = Publish(ctx, root, fileRepo{}, []string{big}, Options{})
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("publishing onto a full disk: %v, want an error saying no space is left", err)
	}
	if after := liveState(t, root); after != before {
		t.Fatalf("the live publication changed:\n%s\nto\n%s", before, after)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "publications", ".staging-*")); len(left) != 0 {
		t.Fatalf("staging left behind on the full disk: %v", left)
	}
	if names, _ := List(root); len(names) != 1 {
		t.Fatalf("publications %v, want only the live one", names)
	}
}

// TestReadOnlyRoot: a publish root that is not writable is refused before
// anything is written, the cause named; the live publication is untouched.
func TestReadOnlyRoot(t *testing.T) {
	root := smallFS(t, "1m")
	ctx := context.Background()
	_, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_0", "zero")}, Options{})
	must(t, err)
	_, err = Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_1", "one")}, Options{})
	must(t, err)
	before := liveState(t, root)
	if err := syscall.Mount("", root, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	_, err = Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_2", "two")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "is not writable") || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("publishing on a read-only root: %v", err)
	}
	if _, err := Rollback(root, fileRepo{}); err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("a rollback on a read-only root: %v", err)
	}
	if after := liveState(t, root); after != before {
		t.Fatalf("the live publication changed:\n%s\nto\n%s", before, after)
	}
}
