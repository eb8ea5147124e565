package packaging

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/packaging/packagingtest"
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
// DESTDIR, packagingtest.WriteTree) and returns it.
func fakeTree(t testing.TB, root string, l Layout, flavour string) Tree {
	t.Helper()
	must(t, packagingtest.WriteTree(root, l.Prefix, l.HaLVMLibdir(testVersion), testVersion, flavour))
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
