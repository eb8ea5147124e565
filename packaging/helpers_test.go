package packaging

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/run"
)

// testEpoch is the epoch of every test package (HaLVM 2.4.3's commit day).
var testEpoch = time.Unix(1544054400, 0).UTC()

const testVersion = "2.4.3"

var (
	keyOnce sync.Once
	key     *pgp.Key
	keyErr  error
)

// testKey is one development key per test binary (RSA generation is slow).
func testKey(t testing.TB) *pgp.Key {
	t.Helper()
	keyOnce.Do(func() {
		key, keyErr = pgp.Generate("HaLVM packaging test", "packaging-test@example.org", true, testEpoch)
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return key
}

// fakeTree writes a small installed toolchain for layout l under root (the
// DESTDIR): halvm-ghc answers --version only when its libdir is in place,
// halvm-ghc-pkg recache writes the package cache, as the real ones need.
// flavour ends up in the settings so flavours' files differ.
func fakeTree(t testing.TB, root string, l Layout, flavour string) Tree {
	t.Helper()
	lib := l.HaLVMLibdir(testVersion)
	files := map[string]string{
		l.Prefix + "/bin/halvm-ghc": "#!/bin/sh\n# HaLVM wrapper (fake, for packaging tests)\nLIBDIR=" + lib + "\n" +
			"[ -f \"$LIBDIR/settings\" ] || { echo \"halvm-ghc: $LIBDIR/settings missing\" >&2; exit 1; }\n" +
			"if [ \"$1\" = --version ]; then echo \"The Glorious Glasgow Haskell Compilation System, version 8.0.2 (HaLVM " + testVersion + ", " + flavour + ")\"; exit 0; fi\n" +
			"exec \"$LIBDIR/bin/ghc\" -B\"$LIBDIR\" -L\"$LIBDIR\" -pgml \"$LIBDIR/ldkernel\" -optl -static -rtsopts \"$@\"\n",
		l.Prefix + "/bin/halvm-ghc-pkg": "#!/bin/sh\n# HaLVM package tool (fake)\nLIBDIR=" + lib + "\n" +
			"case \"$1\" in\nrecache) cat \"$LIBDIR\"/package.conf.d/*.conf > \"$LIBDIR/package.conf.d/package.cache\" ;;\n" +
			"list) ls \"$LIBDIR/package.conf.d\" ;;\n*) echo \"halvm-ghc-pkg: unknown command $1\" >&2; exit 1 ;;\nesac\n",
		lib + "/settings":                              "[(\"C compiler command\", \"gcc\"), (\"flavour\", \"" + flavour + "\")]\n",
		lib + "/package.conf.d/base-4.9.1.0.conf":      "name: base\nversion: 4.9.1.0\nimport-dirs: ${pkgroot}/base-4.9.1.0\n",
		lib + "/package.conf.d/rts.conf":               "name: rts\nversion: 1.0\n",
		lib + "/ldkernel":                              "#!/bin/sh\nexec ld -T " + lib + "/kernel.lds \"$@\"\n",
		lib + "/kernel.lds":                            "ENTRY(_start)\nSECTIONS { . = 0x0; .text : { *(.text) } }\n",
		lib + "/include/minlibc/stdio.h":               "/* minlibc stdio.h (fake) */\n",
		lib + "/base-4.9.1.0/Prelude.hi":               "fake interface file\n",
		l.Prefix + "/include/libIVC.h":                 "/* libIVC */\n",
		l.Prefix + "/share/doc/halvm-ghc-8.0.2/README": "GHC documentation (fake)\n",
	}
	for p, body := range files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	// An empty directory, symlinks as `make install` makes them.
	must(t, os.MkdirAll(filepath.Join(root, lib, "rts-1.0"), 0o755))
	must(t, os.Symlink("halvm-ghc", filepath.Join(root, l.Prefix, "bin", "x86_64-unknown-HaLVM-ghc")))
	must(t, os.Symlink("halvm-ghc-pkg", filepath.Join(root, l.Prefix, "bin", "x86_64-unknown-HaLVM-ghc-pkg")))
	return Tree{Root: root, Prefix: l.Prefix, Libdir: l.Libdir}
}

// fakeExamples writes an examples directory and a hello program directory.
func fakeExamples(t testing.TB, dir string) (examples, hello string) {
	t.Helper()
	examples = filepath.Join(dir, "examples")
	hello = filepath.Join(dir, "hello")
	for p, body := range map[string]string{
		filepath.Join(examples, "Core", "Hello", "Hello.hs"):   "import Hypervisor.Debug\nmain = writeDebugConsole \"Hello, world!\\n\"\n",
		filepath.Join(examples, "Core", "Hello", "Makefile"):   "all:\n\thalvm-ghc --make -o Hello Hello.hs\n",
		filepath.Join(examples, "Core", "ExitTest", "Main.hs"): "main = return ()\n",
		filepath.Join(hello, "Hello.hs"):                       "-- verification hello: prints through the PV console\nmain = putStrLn \"hello from halvm\"\n",
		filepath.Join(hello, "Hello.config"):                   "name = \"hello\"\nkernel = \"Hello\"\nmemory = 16\n",
	} {
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return examples, hello
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// toolchain is a valid Toolchain for format f over a fresh fake tree.
func toolchain(t testing.TB, f Format, flavour string, release int) Toolchain {
	t.Helper()
	dir := t.TempDir()
	tree := fakeTree(t, filepath.Join(dir, "destdir"), Layouts[f], flavour)
	ex, hello := fakeExamples(t, dir)
	return Toolchain{
		Flavour: flavour, Version: testVersion, Release: release, Epoch: testEpoch,
		Tree: tree, Examples: ex, Hello: hello,
		Forbidden: []string{"/build/halvm-release-work"},
	}
}

// tool runs a host program and returns its stdout; failures fail the test.
func tool(t testing.TB, args ...string) string {
	t.Helper()
	out, err := toolErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func toolErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run.Output(ctx, run.Cmd{Args: args, Env: run.BaseEnv()})
	return string(out), err
}

// sameBytes fails the test when two files differ, naming the first
// differing offset.
func sameBytes(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	must(t, err)
	y, err := os.ReadFile(b)
	must(t, err)
	if string(x) == string(y) {
		return
	}
	i := 0
	for i < len(x) && i < len(y) && x[i] == y[i] {
		i++
	}
	t.Errorf("%s and %s differ (sizes %d, %d; first difference at byte %d)", a, b, len(x), len(y), i)
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
