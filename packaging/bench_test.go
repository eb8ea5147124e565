package packaging

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// The benchmark packages a realistic GHC tree: Debian 12's ghc and ghc-prof
// (9.0.2, ~1.5 GB installed) extracted into a scratch root and arranged as
// a HaLVM install (usr/lib/ghc becomes the HaLVM libdir, halvm-ghc wrappers
// added). Each measurement runs in a child process so its peak RSS is its
// own. Run it with
//
//	go test -run '^$' -bench Packaging -benchtime 1x ./packaging/
//
// It needs the stand-in, made once into the test cache (apt-get download
// ghc ghc-prof; dpkg-deb -x), and dpkg-deb and rpmbuild for the comparison.

// benchChildEnv selects a measurement in the child process.
const benchChildEnv = "HALVM_PACKAGING_BENCH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchChildEnv); mode != "" {
		os.Exit(benchChild(mode))
	}
	os.Exit(m.Run())
}

// benchResult is what a child reports.
type benchResult struct {
	Wall     time.Duration
	MaxRSSKB int64 // the largest of this process and its children
	Bytes    int64 // output size
	Err      string
}

// standin returns the stand-in trees (deb and rpm layouts; hard links).
func standin(b *testing.B) map[Format]string {
	b.Helper()
	dir := filepath.Join(rootfstest.CacheDir(), "bench")
	done := filepath.Join(dir, "standin.done")
	trees := map[Format]string{Deb: filepath.Join(dir, "standin-deb"), RPM: filepath.Join(dir, "standin-rpm")}
	if _, err := os.Stat(done); err == nil {
		return trees
	}
	if os.Getenv("HALVM_BENCH_PREPARE") != "1" {
		testenv.Unavailable(b, "the ~1.5 GB stand-in toolchain tree is not in "+dir,
			"run the benchmark once with HALVM_BENCH_PREPARE=1 (downloads ghc and ghc-prof from the Debian mirror)")
	}
	testenv.NeedCommand(b, "dpkg", "dpkg-deb")
	sh := func(script string) {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		if err := run.Run(ctx, run.Cmd{Args: []string{"sh", "-euc", script}, Dir: dir, Env: run.BaseEnv()}); err != nil {
			b.Fatal(err)
		}
	}
	must(b, os.MkdirAll(dir, 0o755))
	l := Layouts[Deb]
	sh(`ls ghc_*.deb ghc-prof_*.deb >/dev/null 2>&1 || apt-get download ghc ghc-prof
rm -rf standin-deb standin-rpm && mkdir standin-deb
for d in ghc_*.deb ghc-prof_*.deb; do dpkg-deb -x "$d" standin-deb; done
cd standin-deb && rm -rf usr/lib/debug var etc && mkdir -p .` + l.Libdir + ` && mv usr/lib/ghc .` + l.HaLVMLibdir(testVersion))
	for f, root := range trees {
		if f == RPM {
			sh(`cp -al standin-deb standin-rpm && mkdir -p standin-rpm` + Layouts[RPM].Libdir +
				` && mv standin-rpm` + l.HaLVMLibdir(testVersion) + ` standin-rpm` + Layouts[RPM].HaLVMLibdir(testVersion))
		}
		lib := Layouts[f].HaLVMLibdir(testVersion)
		// Give the wrappers their own inodes (the rpm tree shares the rest).
		for _, exe := range []string{"halvm-ghc", "halvm-ghc-pkg"} {
			p := filepath.Join(root, "usr/bin", exe)
			os.Remove(p)
			must(b, os.WriteFile(p, []byte("#!/bin/sh\nexec "+lib+"/bin/"+strings.TrimPrefix(exe, "halvm-")+" \"$@\"\n"), 0o755))
		}
	}
	must(b, os.WriteFile(done, nil, 0o644))
	return trees
}

// BenchmarkPackaging reports, side by side, the time and peak memory of
// this package's builds and of the stock tools at the same compression.
// ours-both builds the deb and the rpm at once with no memory budget (as
// on a large machine); ours-both-2x with the budget a machine with twice
// the tree's RAM gets (HostMemoryBudget there).
func BenchmarkPackaging(b *testing.B) {
	trees := standin(b)
	size := duBytes(b, trees[Deb])
	b.Logf("stand-in tree: %s, %.2f GB", trees[Deb], float64(size)/1e9)
	modes := []string{"ours-deb", "ours-rpm", "ours-both", "ours-both-2x", "dpkg-deb", "rpmbuild"}
	if m := os.Getenv("HALVM_BENCH_MODES"); m != "" {
		modes = strings.Split(m, ",") // e.g. ours-deb,dpkg-deb
	}
	for _, mode := range modes {
		if mode == "dpkg-deb" {
			if _, err := run.Output(context.Background(), run.Cmd{Args: []string{"dpkg-deb", "--version"}, Env: run.BaseEnv()}); err != nil {
				testenv.Unavailable(b, "dpkg-deb missing", "apt-get install dpkg")
			}
		}
		if mode == "rpmbuild" {
			if _, err := run.Output(context.Background(), run.Cmd{Args: []string{"rpmbuild", "--version"}, Env: run.BaseEnv()}); err != nil {
				testenv.Unavailable(b, "rpmbuild missing", "apt-get install rpm")
			}
		}
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := runChild(b, mode, trees)
				b.ReportMetric(res.Wall.Seconds(), "s/build")
				b.ReportMetric(float64(res.MaxRSSKB)/1024, "peakRSS-MB")
				b.ReportMetric(float64(res.Bytes)/1e6, "out-MB")
				b.ReportMetric(float64(size)/1e6/res.Wall.Seconds(), "in-MB/s")
				b.Logf("%-10s %7.1fs  peak RSS %6.0f MB  output %7.1f MB", mode, res.Wall.Seconds(), float64(res.MaxRSSKB)/1024, float64(res.Bytes)/1e6)
			}
		})
	}
}

func duBytes(b *testing.B, dir string) int64 {
	var n int64
	must(b, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return err
	}))
	return n
}

func runChild(b *testing.B, mode string, trees map[Format]string) benchResult {
	b.Helper()
	return runChildIn(b, mode, trees, b.TempDir())
}

// runChildIn runs measurement mode in a child process writing into out.
func runChildIn(b *testing.B, mode string, trees map[Format]string, out string) benchResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	env := run.BaseEnv(benchChildEnv+"="+mode, "HALVM_BENCH_DEB_COMPRESSION="+os.Getenv("HALVM_BENCH_DEB_COMPRESSION"), "BENCH_OUT="+out, "BENCH_DEB_TREE="+trees[Deb], "BENCH_RPM_TREE="+trees[RPM])
	stdout, err := run.Output(ctx, run.Cmd{Args: []string{os.Args[0], "-test.run=^$"}, Env: env})
	if err != nil {
		b.Fatal(err)
	}
	var res benchResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		b.Fatalf("child output %q: %v", stdout, err)
	}
	if res.Err != "" {
		b.Fatalf("%s: %s", mode, res.Err)
	}
	return res
}

// benchChild performs one measurement and prints a benchResult.
func benchChild(mode string) int {
	out := os.Getenv("BENCH_OUT")
	if c := os.Getenv("HALVM_BENCH_DEB_COMPRESSION"); c != "" {
		Compression[Deb] = c // same level for ours and dpkg-deb
	}
	trees := map[Format]string{Deb: os.Getenv("BENCH_DEB_TREE"), RPM: os.Getenv("BENCH_RPM_TREE")}
	var comp map[Format]string
	if c, ok := strings.CutPrefix(mode, "comp:"); ok {
		f, level, _ := strings.Cut(c, "/") // BenchmarkCompression: comp:deb/zstd:3
		mode, comp = "ours-"+f, map[Format]string{Format(f): level}
	}
	ctx := context.Background()
	start := time.Now()
	err := func() error {
		k, err := benchKey()
		if err != nil {
			return err
		}
		start = time.Now() // key generation is not packaging
		o := Options{Key: k, Compression: comp}
		tc := func(f Format) Toolchain {
			return Toolchain{Flavour: "halvm", Version: testVersion, Release: 1, Epoch: testEpoch,
				Tree:      Tree{Root: trees[f], Prefix: Layouts[f].Prefix, Libdir: Layouts[f].Libdir},
				Forbidden: []string{"/build/halvm-release-work"}}
		}
		switch mode {
		case "ours-deb", "ours-rpm":
			f := Format(strings.TrimPrefix(mode, "ours-"))
			_, err := BuildToolchain(ctx, f, tc(f), o, out)
			return err
		case "ours-both", "ours-both-2x":
			if mode == "ours-both-2x" {
				// As on a machine with twice the tree's RAM: what is
				// available there (less ~300 MB for the system) makes the
				// budget the packages stage would take.
				var size int64
				filepath.Walk(trees[Deb], func(p string, info os.FileInfo, err error) error {
					if err == nil && info.Mode().IsRegular() {
						size += info.Size()
					}
					return err
				})
				o.Memory = NewMemoryBudget((2*size - 300<<20) / 5 * 4)
			}
			errs := make(chan error, 2)
			for _, f := range Formats {
				go func(f Format) { _, err := BuildToolchain(ctx, f, tc(f), o, out); errs <- err }(f)
			}
			return joinErr(<-errs, <-errs)
		case "dpkg-deb":
			return stockDeb(ctx, trees[Deb], out)
		case "rpmbuild":
			return stockRPM(ctx, trees[RPM], out)
		}
		return fmt.Errorf("unknown mode %q", mode)
	}()
	res := benchResult{Wall: time.Since(start)}
	if err != nil {
		res.Err = err.Error()
	}
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	res.MaxRSSKB = max(self.Maxrss, kids.Maxrss)
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && (strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".rpm")) {
			res.Bytes += info.Size()
		}
		return nil
	})
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func joinErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// benchKey is a development key; generating it is excluded from timings.
func benchKey() (*pgp.Key, error) {
	return pgp.Generate("HaLVM packaging benchmark", "bench@example.org", true, testEpoch)
}

// stockDeb builds the same tree with dpkg-deb at the same compression,
// from a hard-linked copy with a DEBIAN/control (dpkg-deb wants
// it inside the tree). dpkg-deb writes no md5sums (dh_md5sums would).
func stockDeb(ctx context.Context, tree, out string) error {
	stage := filepath.Join(out, "stage")
	if err := run.Run(ctx, run.Cmd{Args: []string{"cp", "-al", tree, stage}, Env: run.BaseEnv()}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(stage, "DEBIAN"), 0o755); err != nil {
		return err
	}
	control := "Package: halvm\nVersion: 2.4.3-1\nArchitecture: amd64\nMaintainer: " + Maintainer + "\nDescription: benchmark\n benchmark\n"
	if err := os.WriteFile(filepath.Join(stage, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return err
	}
	// dpkg-deb -Z<type> [-z<level>]: nfpm's xz has no level (dpkg-deb's
	// default, 6, is nearest).
	typ, level, _ := strings.Cut(Compression[Deb], ":")
	args := []string{"dpkg-deb", "--root-owner-group", "-Z" + typ}
	if level != "" {
		args = append(args, "-z"+level)
	}
	return run.Run(ctx, run.Cmd{Args: append(args, "--build", stage, filepath.Join(out, "stock.deb")),
		Env: run.BaseEnv("SOURCE_DATE_EPOCH=1544054400")})
}

// stockRPM builds the same tree with rpmbuild at the same payload
// compression (zstd level 3), no dependency generation or post-install
// processing; %install hard-links the tree into the buildroot.
func stockRPM(ctx context.Context, tree, out string) error {
	top := filepath.Join(out, "rpmbuild")
	spec := filepath.Join(out, "halvm.spec")
	level := strings.TrimPrefix(Compression[RPM], "zstd:")
	text := `Name: halvm
Version: 2.4.3
Release: 1
Summary: benchmark
License: BSD-3-Clause
AutoReqProv: no
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
%global _binary_payload w` + level + `.zstdio
%description
benchmark
%install
mkdir -p %{buildroot}
cp -al ` + tree + `/. %{buildroot}/
%files
/usr
`
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		return err
	}
	return run.Run(ctx, run.Cmd{Args: []string{"rpmbuild", "-bb", "--nodeps", "--define", "_topdir " + top, spec},
		Env: run.BaseEnv("SOURCE_DATE_EPOCH=1544054400")})
}
