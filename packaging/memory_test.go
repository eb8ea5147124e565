package packaging

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMemAvailable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "meminfo")
	must(t, os.WriteFile(p, []byte("MemTotal:       24000000 kB\nMemFree:        100 kB\nMemAvailable:    3000000 kB\n"), 0o644))
	got, err := memAvailable(p)
	if err != nil || got != 3000000<<10 {
		t.Fatalf("memAvailable = %d, %v; want %d", got, err, 3000000<<10)
	}
	must(t, os.WriteFile(p, []byte("MemTotal: 1 kB\n"), 0o644))
	if _, err := memAvailable(p); err == nil || !strings.Contains(err.Error(), "MemAvailable") {
		t.Fatalf("a meminfo without MemAvailable: %v", err)
	}
	// The host's own is readable (the packages stage reads it).
	if _, err := HostMemoryBudget(); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryBudgetSerializes: on a machine with twice the tree's size of
// memory, the rpm and deb builds of one tree do not run at once; a build
// larger than the whole budget still runs (alone).
func TestMemoryBudgetSerializes(t *testing.T) {
	const tree = 1560 << 20 // the benchmark tree
	avail := int64(2*tree) - 300<<20
	m := NewMemoryBudget(avail / 5 * 4)
	ctx := context.Background()
	rel, err := m.acquire(ctx, buildMemory(RPM, tree))
	must(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := m.acquire(short, buildMemory(Deb, tree)); err == nil {
		t.Fatal("the deb build started while the rpm build of the same tree held the budget")
	}
	rel()
	rel, err = m.acquire(ctx, buildMemory(Deb, tree))
	must(t, err)
	rel()

	// Small trees (the demo's) build concurrently.
	big := NewMemoryBudget(20 << 30)
	r1, err := big.acquire(ctx, buildMemory(RPM, 50<<20))
	must(t, err)
	soon, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	r2, err := big.acquire(soon, buildMemory(Deb, 50<<20))
	must(t, err)
	r1()
	r2()

	// A nil budget never waits.
	r, err := (*MemoryBudget)(nil).acquire(ctx, 1<<40)
	must(t, err)
	r()
}

// TestCgroupMemoryLeft: a container's memory limit (cgroup v1 or v2) bounds
// the budget; no limit, or none readable, leaves MemAvailable alone.
func TestCgroupMemoryLeft(t *testing.T) {
	root := t.TempDir()
	write := func(p, text string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(text), 0o644))
	}
	write("self-v1", "9:name=systemd:/\n4:memory:/docker/abc\n0::/\n")
	write("memory/docker/abc/memory.limit_in_bytes", "3221225472\n")
	write("memory/docker/abc/memory.usage_in_bytes", "1073741824\n")
	if left, ok := cgroupMemoryLeft(filepath.Join(root, "self-v1"), root); !ok || left != 2<<30 {
		t.Errorf("cgroup v1: %d, %v; want %d", left, ok, 2<<30)
	}
	write("self-v2", "0::/ci.slice/job\n")
	write("ci.slice/job/memory.max", "4294967296\n")
	write("ci.slice/job/memory.current", "1073741824\n")
	if left, ok := cgroupMemoryLeft(filepath.Join(root, "self-v2"), root); !ok || left != 3<<30 {
		t.Errorf("cgroup v2: %d, %v; want %d", left, ok, 3<<30)
	}
	write("ci.slice/job/memory.max", "max\n")
	if left, ok := cgroupMemoryLeft(filepath.Join(root, "self-v2"), root); ok {
		t.Errorf("cgroup v2 without a limit: %d, %v; want none", left, ok)
	}
	write("memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n")
	if left, ok := cgroupMemoryLeft(filepath.Join(root, "self-v1"), root); ok {
		t.Errorf("cgroup v1 without a limit: %d, %v; want none", left, ok)
	}
	if _, ok := cgroupMemoryLeft(filepath.Join(root, "missing"), root); ok {
		t.Error("an unreadable /proc/self/cgroup gave a limit")
	}
}
