package toolchain

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
	"github.com/halvm/halvm-release/sources"
)

// TestRealRecipeCSteps runs the real recipe's C steps for real on the real
// HaLVM tree (the real lock, checked out from the air-gapped mirror of the
// real upstream): prepare-sources, autoconf and configure, then openlibm,
// libIVC, start.o, mkrenddir and convert-profile, each through its recipe
// step with its real command line, and checks what they produced.
//
// STAND-INS, said plainly: the real configure probes the bootstrap tools'
// versions (ghc, ghc-pkg, haddock, hsc2hs, happy, cabal). The GHC 8.0.2
// bindist and the cabal-install and happy pins are unreachable here, so
// those probes, and only those, are answered by the sample upstream's
// stand-ins (package sample: they print versions and compile nothing),
// installed where steps bootstrap-ghc and tools would install the real
// ones. alex and HsColour are the pinned Debian packages, installed as the
// tools step installs them. Nothing else of the real recipe is replaced,
// and the run stops before the first step that runs the real GHC.
func TestRealRecipeCSteps(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	testenv.NeedCommand(t, "binutils", "nm", "readelf", "objdump")
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	if err := Preflight(context.Background()); err != nil {
		testenv.Unavailable(t, "host prerequisites are missing: "+err.Error(), "install them as the message says (.ci/packages.txt does)")
	}
	mirror := testenv.UnpackRealUpstream(t)
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := t.TempDir()
	c := Config{Lock: l, Flavour: "halvm", BuildDir: filepath.Join(base, "build"), CacheDir: filepath.Join(base, "cache"),
		FileCacheDir: filepath.Join(base, "inputs"), Mirror: mirror}
	r, err := NewRecipe(c, ProbeHost(ctx))
	if err != nil {
		t.Fatal(err)
	}
	lay := r.Layout

	// What bootstrap-ghc and tools would have installed: the stand-ins for
	// the unreachable pins, the pinned Debian alex and HsColour.
	standIns, err := sample.WriteStandIns(lay.BootstrapPrefix(), lay.ToolPrefix())
	if err != nil {
		t.Fatal(err)
	}
	debs := l.DebsWithRole(pins.RoleTool)
	fetched, err := sources.FetchDebs(ctx, debs, sources.Options{CacheDir: c.FileCacheDir})
	if err != nil {
		testenv.Unavailable(t, "the pinned tool packages (alex, hscolour) are not reachable from this machine's apt sources: "+err.Error(),
			"give the machine Debian's archive (apt-get works in CI)")
	}
	for _, f := range fetched {
		if out, err := exec.Command("dpkg-deb", "-x", f.Path, lay.Tools()).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", f.Name, err, out)
		}
	}
	t.Logf("STAND-INS (sample upstream, version probes only, they compile nothing): %s", strings.Join(standIns, " "))
	t.Logf("real tools: the pinned Debian packages %s, %s", fetched[0].Name, fetched[1].Name)

	cSteps := []string{"openlibm", "libIVC", "start.o", "mkrenddir", "convert-profile"}
	steps := append([]string{"prepare-sources", "autoconf", "configure"}, cSteps...)
	runs, err := r.RunSteps(ctx, steps...)
	if err != nil {
		t.Fatalf("the real recipe's steps on the real tree: %v", err)
	}
	if len(runs) != len(steps) {
		t.Fatalf("ran %v, want %v", runs, steps)
	}
	src := r.SourceDir()
	out := func(step string) string {
		s, _ := r.Step(step)
		return s.Outputs[0]
	}
	for _, s := range runs {
		if s2, _ := r.Step(s.Step); len(s2.Outputs) > 0 {
			fi, err := os.Stat(s2.Outputs[0])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ran for real: step %-15s %8d bytes  %s  (%s)", s.Step, fi.Size(), strings.TrimPrefix(s2.Outputs[0], src+"/"), s.Duration.Round(1e6))
		}
	}

	// libopenlibm.a: an x86-64 archive defining the C math functions.
	libm := out("openlibm")
	if formats := runTool(t, "objdump", "-a", libm); strings.Contains(formats, "file format") {
		for _, line := range strings.Split(formats, "\n") {
			if strings.Contains(line, "file format") && !strings.HasSuffix(line, "file format elf64-x86-64") {
				t.Errorf("libopenlibm.a member is not x86-64: %s", line)
			}
		}
	} else {
		t.Errorf("objdump -a %s shows no members", libm)
	}
	defined := runTool(t, "nm", "-g", "--defined-only", libm)
	for _, sym := range []string{"sin", "cos", "exp", "log"} {
		if !regexp.MustCompile(`(?m) T ` + sym + `$`).MatchString(defined) {
			t.Errorf("libopenlibm.a does not define %s", sym)
		}
	}
	// libIVC.a: an x86-64 archive with the library's entry point.
	if ivc := runTool(t, "nm", "-g", "--defined-only", out("libIVC")); !strings.Contains(ivc, " T openIVCLibrary") {
		t.Errorf("libIVC.a does not define openIVCLibrary:\n%s", ivc)
	}
	// start.o: a 64-bit x86 object carrying the Xen ELF notes (guest OS
	// "HaLVM", loader "generic", Xen version "xen-3.0").
	start := out("start.o")
	if h := runTool(t, "readelf", "-h", start); !strings.Contains(h, "ELF64") || !strings.Contains(h, "X86-64") {
		t.Errorf("start.o is not an x86-64 ELF64 object:\n%s", h)
	}
	notes := runTool(t, "readelf", "-n", start)
	for _, want := range []string{"notes found in: .note.Xen", hexOf("HaLVM"), hexOf("xen-3.0"), hexOf("generic")} {
		if !strings.Contains(notes, want) {
			t.Errorf("start.o's Xen ELF notes lack %q:\n%s", want, notes)
		}
	}
	// mkrenddir links libxenstore.
	if dyn := runTool(t, "readelf", "-d", out("mkrenddir")); !strings.Contains(dyn, "Shared library: [libxenstore.so") {
		t.Errorf("mkrenddir does not link libxenstore:\n%s", dyn)
	}
	if h := runTool(t, "readelf", "-h", out("convert-profile")); !strings.Contains(h, "X86-64") {
		t.Errorf("convert-profile is not an x86-64 executable:\n%s", h)
	}

	// The run stops before the first step that needs the real GHC 8.0.2.
	next, ok := r.FirstStepNeedingGHC("bootstrap-ghc", "tools")
	if !ok || next.Name != "ghc-configure" {
		t.Errorf("first step that runs the bootstrap GHC = %q, want ghc-configure", next.Name)
	}
	t.Logf("STOPPED before step %s (%s): it runs the real bootstrap GHC 8.0.2, whose bindist is unreachable here; the stand-ins only answer version probes",
		next.Name, next.Doc)
}

// hexOf is how readelf -n shows a note's bytes: "48 61 4c ...".
func hexOf(s string) string {
	parts := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		parts[i] = fmt.Sprintf("%02x", s[i])
	}
	return strings.Join(parts, " ")
}

func runTool(t *testing.T, args ...string) string {
	t.Helper()
	b, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}
