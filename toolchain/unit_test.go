package toolchain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/halvm/halvm-release/internal/testenv"

	"github.com/halvm/halvm-release/pins"
)

func goldenRecipe(t *testing.T, flavour string) *Recipe {
	t.Helper()
	r, err := NewRecipe(goldenConfig(t, flavour), Host{FilePrefixMap: true, Fingerprint: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func changedKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestKeysInvalidateOnlyDependents: changing one step's input changes the
// keys of that step and of the steps that depend on it, nothing else.
func TestKeysInvalidateOnlyDependents(t *testing.T) {
	r := goldenRecipe(t, "halvm")
	before, _ := r.Keys()
	for i := range r.Steps {
		if r.Steps[i].Name == "rts-p" {
			r.Steps[i].Commands[0].Args = append(r.Steps[i].Commands[0].Args, "EXTRA_CFLAGS=-O1")
		}
	}
	after, _ := r.Keys()
	if got, want := strings.Join(changedKeys(before, after), " "), "install libraries recache rts-p"; got != want {
		t.Errorf("changing rts-p changed the keys of %q, want %q", got, want)
	}

	r2 := goldenRecipe(t, "halvm")
	r2.Host.Fingerprint = "another gcc"
	moved, _ := r2.Keys()
	for _, s := range r.Steps {
		if moved[s.Name] == before[s.Name] {
			t.Errorf("step %s ignores the host tools in its key", s.Name)
		}
	}

	gmp := goldenRecipe(t, "halvm-gmp")
	gk, _ := gmp.Keys()
	for _, same := range []string{"bootstrap-ghc", "tools"} {
		if gk[same] != before[same] {
			t.Errorf("step %s differs between flavours: the two flavours cannot share it", same)
		}
	}
	if gk["configure"] == before["configure"] {
		t.Error("configure has the same key in both flavours")
	}
}

func TestEveryWayIsItsOwnStep(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		r := goldenRecipe(t, fl)
		for _, w := range Ways {
			s, ok := r.Step("rts-" + w)
			if !ok || len(s.Commands) != 1 || !strings.HasSuffix(s.Outputs[0], "rts/dist/build/"+RTSArchive(w)) {
				t.Errorf("%s: no step building only the RTS way %s: %+v", fl, w, s)
			}
		}
		_, hasGMP := r.Step("gmp")
		if hasGMP != (fl == "halvm-gmp") {
			t.Errorf("%s: gmp step present = %v", fl, hasGMP)
		}
		for _, s := range r.Steps {
			for _, c := range s.Commands {
				for _, a := range c.Args {
					if a == "-j" || strings.HasPrefix(a, "-j") && c.Args[0] == "make" {
						t.Errorf("%s: step %s runs make in parallel: upstream's top-level make must run serially", fl, s.Name)
					}
				}
			}
		}
	}
}

func TestMissReasons(t *testing.T) {
	r := goldenRecipe(t, "halvm")
	r.Config.CacheDir = t.TempDir()
	c := stepCache{dir: filepath.Join(r.Config.CacheDir, "steps")}
	_, comps := r.Keys()
	if got := c.missReason("halvm", "configure", comps["configure"]); got != "never built with this cache" {
		t.Errorf("fresh cache: %q", got)
	}
	if err := c.recordLast("halvm", "configure", comps["configure"]); err != nil {
		t.Fatal(err)
	}
	for i := range r.Steps {
		if r.Steps[i].Name == "autoconf" {
			r.Steps[i].Commands[0].Args = []string{"autoreconf", "-fi"}
		}
	}
	_, comps2 := r.Keys()
	if got := c.missReason("halvm", "configure", comps2["configure"]); got != "step autoconf changed" {
		t.Errorf("after changing autoconf: %q", got)
	}
	for _, st := range r.Statuses() {
		if st.Hit != (st.Step == "prepare-sources") || (!st.Hit && st.Reason == "") {
			t.Errorf("status %+v", st)
		}
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := NewRecipe(Config{Flavour: "x", BuildDir: "relative/dir", Prefix: "/usr/"}, Host{})
	for _, want := range []string{"no lock given", `build dir "relative/dir"`, `prefix "/usr/"`, "no cache dir given"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestLeaksAreAllListed(t *testing.T) {
	root := t.TempDir()
	build := "/var/tmp/halvm-build"
	files := map[string]string{
		"usr/bin/ok":                "#!/bin/sh\nexec /usr/lib/x\n",
		"usr/lib/a.conf":            "include-dirs: " + build + "/halvm/src\n",
		"usr/lib/deep/b.a":          "\x00\x01" + build + "/x\x00" + build + "/y",
		"usr/share/doc/README.text": "nothing here",
	}
	for p, data := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(data), 0o644)
	}
	os.Symlink(build+"/tools/usr/bin/alex", filepath.Join(root, "usr/bin/alex"))
	err := CheckLeaks(root, build)
	if err == nil {
		t.Fatal("leaks accepted")
	}
	for _, want := range []string{"3 installed files contain the build directory", "usr/lib/a.conf (1 times", "usr/lib/deep/b.a (2 times", "usr/bin/alex (1 times, first: symlink ->"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "usr/bin/ok") {
		t.Error("a clean file is listed")
	}
}

func TestNormalizeAndManifest(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o700)
	os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o700)
	os.WriteFile(filepath.Join(root, "usr/bin/data with space"), []byte("x"), 0o600)
	os.Symlink("tool", filepath.Join(root, "usr/bin/link"))
	epoch := time.Unix(1544054400, 0)
	if err := clampTree(root, epoch, true); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteManifest(&b, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	want := "d 0755 usr/\nd 0755 usr/bin/\n" +
		"f 0644 1 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 \"usr/bin/data with space\"\n" +
		"l usr/bin/link -> tool\n" +
		"f 0755 10 " + sha("#!/bin/sh\n") + " usr/bin/tool\n"
	if b.String() != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, p := range []string{"usr", "usr/bin", "usr/bin/tool", "usr/bin/link"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || !fi.ModTime().Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch", p, fi.ModTime())
		}
	}
	var m strings.Builder
	WriteManifest(&m, fstest.MapFS{"a": {Data: []byte("x")}})
	if !strings.HasPrefix(m.String(), "f 0000 1 ") {
		t.Errorf("manifest of a MapFS: %q", m.String())
	}
}

// TestFailsEarlyOnRealPins: the real lock cannot be built here (pending
// pins, unreachable hosts); the build must say so before any step runs and
// before any download, with the remedy. (Unreachable URLs and the mirror
// remedy: TestFetchFromMirror.)
func TestFailsEarlyOnRealPins(t *testing.T) {
	if err := Preflight(context.Background()); err != nil {
		testenv.Unavailable(t, "host prerequisites are missing: "+err.Error(), "install them as the message says (.ci/packages.txt does)")
	}
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	start := time.Now()
	_, err = Build(context.Background(), Config{Lock: l, Flavour: "halvm", BuildDir: filepath.Join(base, "build"), CacheDir: testCache(t)})
	if err == nil {
		t.Fatal("a build against unreachable pins succeeded")
	}
	if !errors.Is(err, ErrInputsUnreachable) {
		t.Fatalf("not an unreachable-inputs error: %v", err)
	}
	for _, want := range []string{"file cabal-install: its pin is pending", "pins:update file:cabal-install",
		"downloads.haskell.org", "nothing fetched", "remedy:", "mirror"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "build")); err == nil {
		t.Error("steps ran although the inputs were unreachable")
	}
	t.Logf("failed after %s with:\n%v", time.Since(start).Round(time.Millisecond), err)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestConfigureFailingLateIsCaught: HaLVM's configure exits 0 when checks
// fail and just does not write autoconf.mk; the step must fail anyway.
func TestConfigureFailingLateIsCaught(t *testing.T) {
	dir := t.TempDir()
	r := &Recipe{Layout: Layout{Root: dir}, Flavour: pins.Flavour{Name: "halvm"}, Env: []string{"PATH=" + SystemPath, "LC_ALL=C"}}
	os.MkdirAll(r.Layout.Logs("halvm"), 0o755)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "configure"), []byte("#!/bin/sh\necho '  ERROR: Could not find required version of Happy'\necho 'Fix these errors, and then try again.'\nexit 0\n"), 0o755)
	s := Step{Name: "configure", Root: src, Commands: []Command{{Args: []string{"./configure"}, Dir: src}}, Outputs: []string{filepath.Join(src, "autoconf.mk")}}
	err := r.runStep(context.Background(), s, "k", nil, stepCache{dir: filepath.Join(dir, "cache")})
	if err == nil || !strings.Contains(err.Error(), "autoconf.mk") || !strings.Contains(err.Error(), "configure exits 0 when its checks fail") ||
		!strings.Contains(err.Error(), "ERROR: Could not find required version of Happy") {
		t.Fatalf("err = %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(r.Layout.Logs("halvm"), "configure.log"))
	if !strings.Contains(string(log), "Could not find required version of Happy") {
		t.Errorf("the step log lacks configure's messages:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", "k.tar")); err == nil {
		t.Error("a failed step was stored in the cache")
	}
}

// TestCIInstallsPrerequisites: the test command installs the table of host
// prerequisites (internal/hostreq), of which .ci/packages.txt is the
// generated list; every host prerequisite of the recipe must be among
// them, or CI passes only where someone installed it by hand.
func TestCIInstallsPrerequisites(t *testing.T) {
	b, err := os.ReadFile("../.ci/packages.txt")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			listed[l] = true
		}
	}
	for _, p := range Prerequisites {
		if !listed[p.Package] {
			t.Errorf(".ci/packages.txt lacks %s (it provides %s, a host prerequisite of the recipe)", p.Package, p.What)
		}
	}
}

// TestReadManifest: what WriteManifest writes reads back, quoted paths
// (with spaces, quotes, a trailing-slash directory) included; a malformed
// line, a bad quote among them, is an error naming its line.
func TestReadManifest(t *testing.T) {
	fsys := fstest.MapFS{
		"dir with space":      {Mode: fs.ModeDir | 0o755},
		"dir with space/a\"b": {Data: []byte("x"), Mode: 0o644},
		"bin/tool":            {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"bin/link":            {Data: []byte("tool"), Mode: fs.ModeSymlink | 0o777},
		"bin/odd link":        {Data: []byte("dir with space/a\"b"), Mode: fs.ModeSymlink | 0o777},
	}
	var b strings.Builder
	if err := WriteManifest(&b, fsys); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(strings.NewReader("# HaLVM toolchain tree\n" + b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	want := []ManifestEntry{
		{Type: 'd', Path: "bin", Mode: 0o555},
		{Type: 'l', Path: "bin/link", Target: "tool"},
		{Type: 'l', Path: "bin/odd link", Target: "dir with space/a\"b"},
		{Type: 'f', Path: "bin/tool", Mode: 0o755, Size: 10, SHA256: sha("#!/bin/sh\n")},
		{Type: 'd', Path: "dir with space", Mode: 0o755},
		{Type: 'f', Path: "dir with space/a\"b", Mode: 0o644, Size: 1, SHA256: sha("x")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadManifest:\n%+v\nwant\n%+v\nfrom\n%s", got, want, b.String())
	}
	for _, bad := range []string{
		"f 0644 1 " + sha("x") + " \"unterminated\n",
		"f 0644 x " + sha("x") + " a\n",
		"f 0644 1 nothex a\n",
		"d 0755 no-slash\n",
		"x what\n",
	} {
		if _, err := ReadManifest(strings.NewReader("d 0755 ok/\n" + bad)); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestKeysIgnoreWhereTheCachesAre: the same recipe with its caches in
// other places has the same keys (runners share entries through the
// registry); a cache path that is a prefix of another path (…/b and
// …/build) replaces only itself.
func TestKeysIgnoreWhereTheCachesAre(t *testing.T) {
	a := goldenRecipe(t, "halvm")
	c := goldenConfig(t, "halvm")
	c.CacheDir, c.FileCacheDir = "/elsewhere/cache", "/elsewhere/cache/inputs"
	b, err := NewRecipe(c, Host{FilePrefixMap: true, Fingerprint: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := a.Keys()
	kb, _ := b.Keys()
	if ch := changedKeys(ka, kb); len(ch) != 0 {
		t.Errorf("moving the caches changed the keys of %v", ch)
	}
	r := pathReplacer{{regexp.MustCompile(regexp.QuoteMeta("/x/b") + `(/|$|[\s'"=:;,)])`), "<cache>$1", 4}}
	if got := r.Replace("cd /x/build && tar -xf /x/b/sha256/1 /x/b"); got != "cd /x/build && tar -xf <cache>/sha256/1 <cache>" {
		t.Errorf("Replace = %q", got)
	}
}
