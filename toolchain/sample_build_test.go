package toolchain

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/toolchain/testprog"
)

// TestSampleToolchain runs the real recipe, unchanged, against the sample
// upstream: both flavours from scratch, then again (all cache hits), then
// compiles the test programs into Xen PV kernels and checks them, and
// finally builds both flavours once more from scratch under another build
// path, time zone, umask, locale and environment, which must give the
// same tree manifests.
func TestSampleToolchain(t *testing.T) {
	testenv.Short(t, "building the sample toolchain")
	if err := Preflight(context.Background()); err != nil {
		testenv.Unavailable(t, err.Error(), "install the packages it names")
	}
	ctx := context.Background()
	base := t.TempDir()
	lock := sampleUpstream(t, filepath.Join(base, "upstream"))
	config := func(root, flavour string) Config {
		return Config{Lock: lock, Flavour: flavour, BuildDir: filepath.Join(root, "build"),
			CacheDir: filepath.Join(root, "cache"), FileCacheDir: testCache(t), OutDir: filepath.Join(root, "out")}
	}
	flavours := []string{"halvm", "halvm-gmp"}
	manifests := map[string][]byte{}
	results := map[string]*Result{}
	for _, fl := range flavours {
		start := time.Now()
		res, err := Build(ctx, config(filepath.Join(base, "a"), fl))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: cold build in %s (%d steps ran, restored %v)", fl, time.Since(start).Round(time.Millisecond), len(res.Ran), res.Restored)
		checkTree(t, res, fl)
		manifests[fl], err = os.ReadFile(res.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		results[fl] = res
		var l pipeline.Ledger
		if err := res.Record(&l, filepath.Join(base, "a", "out")); err != nil {
			t.Fatal(err)
		}
		if a := l.Find(pipeline.KindTreeManifest, fl); len(a) != 1 || a[0].Path != "toolchain-"+fl+".manifest" || a[0].Size == 0 {
			t.Errorf("%s: ledger records %+v", fl, a)
		}
	}

	// Unchanged inputs: nothing runs, the same tree comes back.
	for _, fl := range flavours {
		cfg := config(filepath.Join(base, "a"), fl)
		r, err := NewRecipe(cfg, ProbeHost(ctx))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range r.Statuses() {
			if !st.Hit {
				t.Errorf("%s: step %s misses the cache after a build: %s", fl, st.Step, st.Reason)
			}
		}
		var plan bytes.Buffer
		if err := Plan(ctx, &plan, cfg); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(plan.String(), "\n  cache:   hit "); n != len(r.Steps)-1 {
			t.Errorf("%s: the dry run shows %d cache hits for %d cached steps:\n%s", fl, n, len(r.Steps)-1, plan.String())
		}
		os.RemoveAll(results[fl].StageDir)
		start := time.Now()
		res, err := Build(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: warm build in %s, ran %v, restored %v", fl, time.Since(start).Round(time.Millisecond), res.Ran, res.Restored)
		if len(res.Ran) != 0 {
			t.Errorf("%s: a second build ran steps %v", fl, res.Ran)
		}
		if got, _ := os.ReadFile(res.Manifest); !bytes.Equal(got, manifests[fl]) {
			t.Errorf("%s: the tree restored from the cache differs from the built one", fl)
		}
	}

	// One changed input: only the steps that depend on it run; the others
	// come back from the cache in place, and make sees them as up to date.
	{
		r, err := NewRecipe(config(filepath.Join(base, "a"), "halvm"), ProbeHost(ctx))
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.Steps {
			if r.Steps[i].Name == "rts-p" {
				r.Steps[i].Commands[0].Args = append(r.Steps[i].Commands[0].Args, "HALVM_TEST_MARK=1")
			}
		}
		start := time.Now()
		res, err := r.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("halvm: rebuild after changing rts-p in %s, ran %v", time.Since(start).Round(time.Millisecond), res.Ran)
		if got := strings.Join(res.Ran, " "); got != "prepare-sources rts-p libraries install recache" {
			t.Errorf("changing rts-p ran %q", got)
		}
		for _, step := range []string{"libraries", "install"} {
			log, _ := os.ReadFile(filepath.Join(r.Layout.Logs("halvm"), step+".log"))
			// libm (step openlibm) and the RTS way thr were restored, not rebuilt.
			if bytes.Contains(log, []byte("obj/src/math/")) || bytes.Contains(log, []byte("/pvrt/thr/")) {
				t.Errorf("step %s rebuilt what the cache restored (make saw stale timestamps):\n%.2000s", step, log)
			}
		}
		if got, _ := os.ReadFile(res.Manifest); !bytes.Equal(got, manifests["halvm"]) {
			t.Errorf("the partly rebuilt tree differs:\n%s", lineDiff(string(manifests["halvm"]), string(got)))
		}
	}

	// The toolchain compiles the project's test programs into PV kernels.
	for _, fl := range flavours {
		checkKernels(t, results[fl], fl)
	}

	// From scratch again, elsewhere and in another environment.
	t.Setenv("TZ", "Pacific/Chatham")
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("LC_ALL", "tr_TR.UTF-8")
	t.Setenv("CFLAGS", "-O0 -g3")
	t.Setenv("MAKEFLAGS", "-j7")
	t.Setenv("ZZ_NOISE", "1")
	t.Setenv("PATH", "/usr/local/bin:/bin:/usr/bin:/sbin:/usr/sbin")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	other := filepath.Join(base, "elsewhere", "deeper", "x")
	for _, fl := range []string{"halvm-gmp", "halvm"} {
		start := time.Now()
		res, err := Build(ctx, config(other, fl))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: second cold build (other path %s, TZ, umask 077, locale, env) in %s", fl, other, time.Since(start).Round(time.Millisecond))
		got, _ := os.ReadFile(res.Manifest)
		if !bytes.Equal(got, manifests[fl]) {
			t.Errorf("%s: tree manifests differ between the two builds:\n%s", fl, lineDiff(string(manifests[fl]), string(got)))
		}
	}
}

// checkTree checks the installed layout upstream's make install gives.
func checkTree(t *testing.T, res *Result, flavour string) {
	t.Helper()
	hl := filepath.Join(res.StageDir, "usr/lib/x86_64-linux-gnu/HaLVM-2.4.3")
	want := []string{
		"usr/bin/halvm-ghc", "usr/bin/halvm-ghc-pkg", "usr/bin/halvm-cabal", "usr/bin/halvm-config", "usr/bin/mkrenddir",
		"usr/bin/convert-profile", "usr/bin/x86_64-unknown-HaLVM-ghc", "usr/bin/x86_64-unknown-HaLVM-ghc-8.0.2",
		"usr/bin/x86_64-unknown-HaLVM-ghc-pkg", "usr/lib/x86_64-linux-gnu/libIVC.a", "usr/include/libIVC.h",
	}
	for _, p := range want {
		if _, err := os.Lstat(filepath.Join(res.StageDir, p)); err != nil {
			t.Errorf("%s: %s missing", flavour, p)
		}
	}
	libs := []string{"ldkernel", "kernel.lds", "settings", "rts-1.0/start.o", "rts-1.0/libopenlibm.a", "package.conf.d/package.cache",
		"base-4.9.1.0/libminlibc.a", "include/minlibc/minlibc.h", "bin/alex", "bin/happy", "bin/cabal", "bin/HsColour", "bin/haddock",
		"bin/hsc2hs", "bin/hsc2hs.bin", "share/alex"}
	for _, w := range Ways {
		libs = append(libs, "rts/"+RTSArchive(w))
	}
	intlib := "integer-simple-0.1.1.1"
	if flavour == "halvm-gmp" {
		libs = append(libs, "rts-1.0/libgmp.a")
		intlib = "integer-gmp-1.0.0.1"
	}
	libs = append(libs, "package.conf.d/"+intlib+".conf")
	for _, p := range libs {
		if _, err := os.Stat(filepath.Join(hl, p)); err != nil {
			t.Errorf("%s: halvmlibdir lacks %s", flavour, p)
		}
	}
	// musl's libm, compiled for real: a few hundred members, sin among them.
	out, err := run.Output(context.Background(), run.Cmd{Args: []string{"ar", "t", filepath.Join(hl, "rts-1.0/libopenlibm.a")}, Env: run.BaseEnv()})
	if err != nil || strings.Count(string(out), "\n") < 200 || !strings.Contains(string(out), "\nsin.o\n") {
		t.Errorf("%s: libopenlibm.a does not hold musl's libm (%v):\n%.300s", flavour, err, out)
	}
	// The RTS ways differ (each compiled with its own flags).
	seen := map[string]string{}
	for _, w := range Ways {
		data, _ := os.ReadFile(filepath.Join(hl, "rts", RTSArchive(w)))
		if !bytes.Contains(data, []byte(w+"\x00")) {
			t.Errorf("%s: %s does not record its way %q", flavour, RTSArchive(w), w)
		}
		if prev, ok := seen[string(data)]; ok {
			t.Errorf("%s: %s and %s are identical", flavour, RTSArchive(w), prev)
		}
		seen[string(data)] = RTSArchive(w)
	}
}

// compileStaged compiles a program with the staged toolchain, as
// halvm-ghc would once installed: the sample's compiler and ldkernel find
// their files from -B and their own location.
func compileStaged(t *testing.T, res *Result, src, out string, flags ...string) {
	t.Helper()
	hl := filepath.Join(res.StageDir, "usr/lib/x86_64-linux-gnu/HaLVM-2.4.3")
	args := append([]string{filepath.Join(hl, "bin/ghc"), "-B" + hl, "-L" + hl, "-pgml", filepath.Join(hl, "ldkernel"),
		"-optl", "-static", "-rtsopts", "--make", "-o", out}, flags...)
	args = append(args, src)
	if err := run.Run(context.Background(), run.Cmd{Args: args, Dir: filepath.Dir(src), Env: run.BaseEnv()}); err != nil {
		t.Fatalf("compiling %s: %v", filepath.Base(src), err)
	}
}

// checkKernels compiles Hello (in two RTS ways) and Null and checks each
// is a static ELF64 Xen PV kernel with the Xen notes.
func checkKernels(t *testing.T, res *Result, flavour string) {
	dir := t.TempDir()
	for _, p := range []string{testprog.Hello, testprog.Null} {
		if err := os.WriteFile(filepath.Join(dir, p), testprog.Source(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernels := map[string][]string{"Hello": nil, "Hello-thr_debug": {"-threaded", "-debug"}, "Null": nil}
	for name, flags := range kernels {
		src := testprog.Hello
		if name == "Null" {
			src = testprog.Null
		}
		out := filepath.Join(dir, name)
		compileStaged(t, res, filepath.Join(dir, src), out, flags...)
		checkXenKernel(t, out, name != "Null")
		data, _ := os.ReadFile(out)
		if name == "Hello-thr_debug" && !bytes.Contains(data, []byte("thr_debug\x00")) {
			t.Errorf("%s: %s is not linked with the thr_debug RTS", flavour, name)
		}
		if bytes.Contains(data, []byte(res.StageDir)) || bytes.Contains(data, []byte(dir)) {
			t.Errorf("%s: %s names the build or staging path", flavour, name)
		}
	}
	readnotes := "/usr/lib/xen-4.17/bin/readnotes"
	if _, err := os.Stat(readnotes); err != nil {
		testenv.Unavailable(t, "readnotes (Xen's ELF note reader) is not installed", "apt-get install xen-utils-4.17")
	}
	out, err := run.Output(context.Background(), run.Cmd{Args: []string{readnotes, filepath.Join(dir, "Hello")}, Env: run.BaseEnv()})
	if err != nil {
		t.Fatalf("%s: readnotes rejects Hello: %v", flavour, err)
	}
	for _, want := range []string{"GUEST_OS", "XEN_VERSION", "xen-3.0", "LOADER", "generic", "ENTRY", "HYPERCALL_PAGE"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: readnotes output lacks %s:\n%s", flavour, want, out)
		}
	}
}

// checkXenKernel checks an ELF file is a static 64-bit x86 executable
// with a PT_NOTE segment holding the Xen notes a PV loader needs.
func checkXenKernel(t *testing.T, path string, hello bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("%s: class %v machine %v type %v, want a 64-bit x86 executable", path, f.Class, f.Machine, f.Type)
	}
	notes := map[uint32][]byte{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: not static (%v)", path, p.Type)
		}
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		for len(data) >= 12 {
			namesz, descsz, typ := binary.LittleEndian.Uint32(data), binary.LittleEndian.Uint32(data[4:]), binary.LittleEndian.Uint32(data[8:])
			off := 12 + int(namesz+3)&^3
			end := off + int(descsz+3)&^3
			if end > len(data) {
				t.Fatalf("%s: truncated note", path)
			}
			if string(bytes.TrimRight(data[12:12+namesz], "\x00")) == "Xen" {
				notes[typ] = data[off : off+int(descsz)]
			}
			data = data[end:]
		}
	}
	str := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
	if str(notes[5]) != "xen-3.0" || str(notes[8]) != "generic" || str(notes[6]) == "" {
		t.Errorf("%s: Xen notes XEN_VERSION=%q LOADER=%q GUEST_OS=%q", path, notes[5], notes[8], notes[6])
	}
	if len(notes[1]) != 8 || binary.LittleEndian.Uint64(notes[1]) != f.Entry {
		t.Errorf("%s: ENTRY note %x does not match the ELF entry %#x", path, notes[1], f.Entry)
	}
	if len(notes[2]) != 8 || binary.LittleEndian.Uint64(notes[2])%4096 != 0 {
		t.Errorf("%s: HYPERCALL_PAGE note %x is not a page address", path, notes[2])
	}
	data, _ := os.ReadFile(path)
	if hello != bytes.Contains(data, []byte(testprog.HelloOutput)) {
		t.Errorf("%s: contains %q = %v, want %v", path, testprog.HelloOutput, !hello, hello)
	}
}
