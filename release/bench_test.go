package release

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/benchsum"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
)

// BenchmarkDemoReRuns measures, on the demo (the sample upstream):
//
//  1. a cold release: a new output directory, work directory and step cache
//     (the toolchain, packages and images are built, every check runs),
//     whose publish is forced to fail;
//  2. the release resumed after that failure (only publish runs again);
//  3. a no-op release (nothing changed).
//
// Only the download caches (fetched inputs, the verification's Xen packages
// and clean Debian root) are shared with the tests. It prints the three side
// by side with the re-runs as a share of the cold run (goal: no-op <= 5 %).
// `go run mage.go bench` runs it; alone:
//
//	go test -run '^$' -bench DemoReRuns -benchtime 1x -timeout 90m ./release/
func BenchmarkDemoReRuns(b *testing.B) {
	testenv.NeedCommand(b, "autoconf", "autoconf")
	testenv.NeedCommand(b, "dpkg", "dpkg-deb")
	real, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cache := filepath.Join(dir, "cache")
	shared := filepath.Join(rootfstest.CacheDir(), "demo")
	for _, d := range []string{"inputs", "verify"} {
		if err := os.MkdirAll(filepath.Join(shared, d), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(cache, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(shared, d), filepath.Join(cache, d)); err != nil {
			b.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	type result struct {
		what   string
		d      time.Duration
		stages string
	}
	var results []result
	demo := func(what, breakStage string) {
		var log bytes.Buffer
		start := time.Now()
		_, err := Demo(ctx, DemoOptions{OutDir: filepath.Join(dir, "dist"), CacheDir: cache, WorkDir: filepath.Join(dir, "work"), RealLock: real,
			Addr: addr, Log: &log, breakStage: breakStage})
		d := time.Since(start)
		if name, _ := pipeline.IsStageError(err); err != nil && name != breakStage {
			b.Fatalf("%s: %v\n%s", what, err, log.String())
		}
		results = append(results, result{what, d, stageLines(log.String())})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		results = nil
		demo("cold release (publish forced to fail)", "publish")
		demo("resumed after the failure at publish", "")
		demo("no-op release (nothing changed)", "")
	}
	b.StopTimer()
	load, _ := os.ReadFile("/proc/loadavg")
	cold := results[0].d
	var sum strings.Builder
	for _, r := range results {
		fmt.Fprintf(&sum, "  %-40s %8.1f s  %5.1f %% of cold\n", r.what, r.d.Seconds(), 100*r.d.Seconds()/cold.Seconds())
	}
	benchsum.Print(os.Stdout, fmt.Sprintf("demo re-runs (%d CPUs, load %s)", runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " ")), sum.String())
	for _, r := range results {
		fmt.Printf("\n  %s, stage by stage:\n%s", r.what, r.stages)
	}
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(results[1].d.Seconds(), "resumed-s")
	b.ReportMetric(results[2].d.Seconds(), "noop-s")
	b.ReportMetric(100*results[2].d.Seconds()/cold.Seconds(), "noop-%")
}

// stageLines are the log's lines saying how each stage went.
func stageLines(log string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, s := range Stages() {
			if strings.HasPrefix(line, fmt.Sprintf("%-12s ", s.Name)) && !strings.Contains(line[13:], "runs: no earlier run") {
				b.WriteString("    " + line + "\n")
				break
			}
		}
	}
	return b.String()
}
