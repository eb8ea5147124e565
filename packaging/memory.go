package packaging

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/semaphore"
)

// Memory: nfpm cannot stream a package to its writer. The deb builder
// compresses data.tar into a buffer before writing the archive (its
// input files are streamed), and rpmpack holds every file's bytes and the
// compressed payload until it writes the rpm. BenchmarkCompression and
// BenchmarkPackaging measured the peak RSS on the 1.56 GB stand-in tree
// (RELEASE.md): so a build is charged buildMemory of its tree, and
// concurrent builds share a MemoryBudget sized from MemAvailable.

// buildMemory estimates the peak memory of building a package in format f
// from treeBytes of files: rpm holds the tree and its payload (measured
// 2252 MB peak RSS for the 1.56 GB tree, 1.44x, zstd), a deb the compressed
// data.tar while its buffer grows (1053 MB, 0.67x, gzip -1), plus the
// runtime's own.
func buildMemory(f Format, treeBytes int64) int64 {
	const base = 64 << 20
	if f == RPM {
		return base + treeBytes*3/2
	}
	return base + treeBytes
}

// MemoryBudget bounds the memory of concurrent package builds: each build
// holds its buildMemory estimate while it runs. A build larger than the
// whole budget runs alone (it never waits forever).
type MemoryBudget struct {
	size int64
	sem  *semaphore.Weighted
}

// NewMemoryBudget is a budget of size bytes (at least 1 MB).
func NewMemoryBudget(size int64) *MemoryBudget {
	size = max(size, 1<<20)
	return &MemoryBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// HostMemoryBudget is a budget of 80 % of the host's MemAvailable (the
// page cache of the tree being read counts as available), or of what this
// process's memory cgroup (a container's limit) has left if that is less,
// so builds that fit it never make the host swap.
func HostMemoryBudget() (*MemoryBudget, error) {
	avail, err := memAvailable("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	if left, ok := cgroupMemoryLeft("/proc/self/cgroup", "/sys/fs/cgroup"); ok && left < avail {
		avail = left
	}
	return NewMemoryBudget(avail / 5 * 4), nil
}

// cgroupMemoryLeft is the limit less the usage of the memory cgroup named
// in selfCgroup (/proc/self/cgroup), under root (/sys/fs/cgroup): cgroup v1
// (memory.limit_in_bytes, memory.usage_in_bytes) or v2 (memory.max,
// memory.current). ok is false when there is no limit or it is unreadable.
func cgroupMemoryLeft(selfCgroup, root string) (left int64, ok bool) {
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return 0, false
	}
	readInt := func(p string) (int64, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		return n, err == nil // "max" (v2: no limit) fails here
	}
	var limitFile, usageFile string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case slices.Contains(strings.Split(f[1], ","), "memory"):
			dir := filepath.Join(root, "memory", f[2])
			limitFile, usageFile = filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.usage_in_bytes")
		case f[0] == "0" && f[1] == "" && limitFile == "":
			dir := filepath.Join(root, f[2])
			limitFile, usageFile = filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.current")
		}
	}
	if limitFile == "" {
		return 0, false
	}
	limit, ok1 := readInt(limitFile)
	usage, ok2 := readInt(usageFile)
	if !ok1 || !ok2 || limit >= 1<<60 { // v1 writes ~2^63 for no limit
		return 0, false
	}
	return max(limit-usage, 0), true
}

// acquire waits until n bytes (at most the budget) are free and returns
// the release function.
func (m *MemoryBudget) acquire(ctx context.Context, n int64) (func(), error) {
	if m == nil {
		return func() {}, nil
	}
	n = min(max(n, 1), m.size)
	if err := m.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() {
		// The finished build's buffers are garbage now, but the collector
		// would only run once the heap doubled the last live size (the
		// whole package): the next build would pile on top of them.
		debug.FreeOSMemory()
		m.sem.Release(n)
	}, nil
}

// memAvailable reads MemAvailable (bytes) from a /proc/meminfo file.
func memAvailable(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading the host's available memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "MemAvailable:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemAvailable %q: %w", path, f[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no \"MemAvailable: <n> kB\" line (Linux >= 3.14 has it)", path)
}
