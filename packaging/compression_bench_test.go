package packaging

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/benchsum"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// BenchmarkCompression chooses the packages' compression by measurement:
// for every candidate it builds the stand-in toolchain (see standin) with
// this package's builder and records what users pay and what the release
// pays:
//
//   - the package size (what every user downloads);
//   - the build time and peak RSS (in a child process, as BenchmarkPackaging);
//   - the install time: `dpkg --root <scratch> --unpack` (apt's unpack step:
//     decompress, write and fsync every file; the postinst, which runs
//     halvm-ghc-pkg, is not run) and `rpm -i --root <scratch> --nodeps
//     --noscripts` into a fresh rpm database. A package the installed tool
//     cannot read fails here;
//   - lintian's verdict (debs; `lintian --fail-on error,warning` on the
//     test toolchain built with the same compression: lintian on a 1.5 GB
//     deb takes longer than the rest of the table together).
//
// It prints the table RELEASE.md quotes. Run it with
//
//	go test -run '^$' -bench Compression -benchtime 1x -timeout 90m ./packaging/
//
// HALVM_BENCH_TREE_MB=<n> measures on the first n MB of the tree (files in
// path order; default 0: the whole ~1.56 GB tree); HALVM_BENCH_COMPRESSIONS
// (e.g. deb/gzip:1,rpm/zstd:3) narrows the candidates.
func BenchmarkCompression(b *testing.B) {
	testenv.NeedCommand(b, "dpkg", "dpkg-deb")
	testenv.NeedCommand(b, "rpm", "rpm")
	testenv.NeedCommand(b, "lintian", "lintian")
	trees := standin(b)
	if mb := os.Getenv("HALVM_BENCH_TREE_MB"); mb != "" && mb != "0" {
		n, err := strconv.Atoi(mb)
		if err != nil || n < 0 {
			b.Fatalf("HALVM_BENCH_TREE_MB=%q: want a whole number of MB (0: the whole tree)", mb)
		}
		trees = subsetTrees(b, trees, int64(n)<<20)
	}
	size := duBytes(b, trees[Deb])
	cands := compressionCandidates
	if c := os.Getenv("HALVM_BENCH_COMPRESSIONS"); c != "" {
		cands = nil
		for _, s := range strings.Split(c, ",") {
			f, comp, ok := strings.Cut(s, "/")
			if !ok || (Format(f) != Deb && Format(f) != RPM) {
				b.Fatalf("HALVM_BENCH_COMPRESSIONS: %q is not <deb|rpm>/<compression> (e.g. deb/zstd:3)", s)
			}
			cands = append(cands, candidate{Format(f), comp})
		}
	}
	var rows []compressionRow
	for i := 0; i < b.N; i++ {
		rows = nil
		for _, c := range cands {
			row := compressionRow{candidate: c}
			out := b.TempDir()
			res := runChildIn(b, "comp:"+string(c.f)+"/"+c.comp, trees, out)
			row.build, row.rssMB, row.bytes = res.Wall, float64(res.MaxRSSKB)/1024, res.Bytes
			row.install, row.installErr = installPackages(b, c.f, out)
			if c.f == Deb {
				row.lintian = lintianVerdict(b, c.comp)
			}
			os.RemoveAll(out)
			b.Logf("%s/%s: %.1f MB in %.1f s, installed in %.1f s %s", c.f, c.comp, float64(row.bytes)/1e6, row.build.Seconds(), row.install.Seconds(), row.installErr)
			rows = append(rows, row)
		}
	}
	b.StopTimer()
	load, _ := os.ReadFile("/proc/loadavg")
	benchsum.Print(os.Stdout, fmt.Sprintf("compression of the stand-in toolchain (%.2f GB tree, load %s)", float64(size)/1e9, strings.Join(strings.Fields(string(load))[:3], " ")),
		compressionTable(rows))
}

// candidate is one format and compression (Options.Compression syntax).
type candidate struct {
	f    Format
	comp string
}

// compressionCandidates: for debs what dpkg on Debian 12 reads (gzip, xz,
// zstd since dpkg 1.21.18), for rpms what rpm on Fedora/RHEL reads (gzip,
// xz; zstd since rpm 4.14: Fedora 31, RHEL 8). nfpm's xz has no levels.
var compressionCandidates = []candidate{
	{Deb, "gzip:1"}, {Deb, "gzip:9"}, {Deb, "xz"}, {Deb, "zstd:3"}, {Deb, "zstd:19"},
	{RPM, "gzip:9"}, {RPM, "xz"}, {RPM, "zstd:3"}, {RPM, "zstd:19"},
}

type compressionRow struct {
	candidate
	bytes      int64
	build      time.Duration
	rssMB      float64
	install    time.Duration
	installErr string
	lintian    string // debs only
}

func compressionTable(rows []compressionRow) string {
	var s strings.Builder
	fmt.Fprintf(&s, "| format | compression | package MB | build s | build peak RSS MB | install s | lintian |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		inst := fmt.Sprintf("%.1f", r.install.Seconds())
		if r.installErr != "" {
			inst = "FAILS: " + r.installErr
		}
		lint := r.lintian
		if r.f == RPM {
			lint = "n/a"
		}
		fmt.Fprintf(&s, "| %s | %s | %.1f | %.1f | %.0f | %s | %s |\n", r.f, r.comp, float64(r.bytes)/1e6, r.build.Seconds(), r.rssMB, inst, lint)
	}
	return s.String()
}

// installPackages installs every package of format f in dir into a fresh
// scratch root with the host's dpkg or rpm and returns how long it took
// (or why it failed: a tool that cannot read the compression).
func installPackages(b *testing.B, f Format, dir string) (time.Duration, string) {
	b.Helper()
	pkgs, err := filepath.Glob(filepath.Join(dir, "*."+string(f)))
	if err != nil || len(pkgs) == 0 {
		b.Fatalf("no %s packages in %s", f, dir)
	}
	root := b.TempDir()
	defer os.RemoveAll(root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var args []string
	if f == Deb {
		for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
			must(b, os.MkdirAll(filepath.Join(root, d), 0o755))
		}
		must(b, os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644))
		args = append([]string{"dpkg", "--root=" + root, "--force-depends", "--unpack"}, pkgs...)
	} else {
		if err := run.Run(ctx, run.Cmd{Args: []string{"rpm", "--root", root, "--initdb"}, Env: run.BaseEnv()}); err != nil {
			b.Fatal(err)
		}
		args = append([]string{"rpm", "-i", "--root", root, "--nodeps", "--noscripts", "--nosignature"}, pkgs...)
	}
	start := time.Now()
	out, err := run.Output(ctx, run.Cmd{Args: args, Env: run.BaseEnv()})
	d := time.Since(start)
	if err != nil {
		return d, strings.Join(strings.Fields(err.Error()+" "+string(out)), " ")
	}
	return d, ""
}

// lintianVerdict builds the test toolchain deb with compression comp and
// returns lintian's verdict on it: "clean" or its error and warning tags.
func lintianVerdict(b *testing.B, comp string) string {
	b.Helper()
	p, err := BuildToolchain(context.Background(), Deb, toolchain(b, Deb, "halvm", 1), Options{Key: testKey(b), Compression: map[Format]string{Deb: comp}}, b.TempDir())
	must(b, err)
	out, err := toolErr("lintian", "--fail-on", "error,warning", p)
	if err == nil {
		return "clean"
	}
	var tags []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			f := strings.Fields(l)
			if len(f) >= 3 {
				tags = append(tags, f[0]+" "+f[2])
			}
		}
	}
	if len(tags) == 0 {
		return "fails: " + strings.Join(strings.Fields(err.Error()+" "+out), " ")
	}
	return strings.Join(tags, ", ")
}

// subsetTrees hard-links the first limit bytes of regular files (in path
// order) of each tree, with every directory and symlink, into the test
// cache, once per size.
func subsetTrees(b *testing.B, trees map[Format]string, limit int64) map[Format]string {
	b.Helper()
	out := map[Format]string{}
	for f, root := range trees {
		dst := fmt.Sprintf("%s-%dMB", root, limit>>20)
		out[f] = dst
		done := dst + ".done"
		if _, err := os.Stat(done); err == nil {
			continue
		}
		must(b, os.RemoveAll(dst))
		var used int64
		must(b, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			target := filepath.Join(dst, rel)
			switch {
			case d.IsDir():
				return os.MkdirAll(target, 0o755)
			case d.Type()&fs.ModeSymlink != 0:
				l, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return os.Symlink(l, target)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if used+info.Size() > limit && info.Size() > 64<<10 {
				return nil // small files stay: wrappers, settings, package database
			}
			used += info.Size()
			return os.Link(p, target)
		}))
		must(b, os.WriteFile(done, nil, 0o644))
	}
	return out
}
