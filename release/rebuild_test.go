package release

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/internal/testpkg"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify/checks"
)

// TestSeedRepos: a release after the first stages its repositories on top
// of the live ones (their packages plus its own). A rebuild seeded with
// the same publications stages byte-identical apt and dnf metadata; one
// that is not (the bug this guards against) lists only its own packages.
func TestSeedRepos(t *testing.T) {
	ctx := context.Background()
	epoch := time.Unix(1_700_000_000, 0).UTC()
	key, err := pgp.Generate("HaLVM test archive", "test@halvm.invalid", true, epoch)
	if err != nil {
		t.Fatal(err)
	}
	pkg := func(release string) (string, string) {
		dir := t.TempDir()
		s := testpkg.Spec{Name: "halvm-hello", Version: "1.0.0", Release: release, Payload: "release " + release, Epoch: epoch, Key: key}
		return testpkg.Deb(t, dir, s), testpkg.RPM(t, dir, s)
	}
	cfg := func(root string) repos.Config {
		return repos.Config{Root: root, URL: "http://127.0.0.1:8619", Key: key, Epoch: epoch, Version: "2.4.3", Keep: 3}
	}
	d1, r1 := pkg("1")
	d2, r2 := pkg("2")

	// The release: 1 is live, 2 is staged on top of it.
	c := cfg(filepath.Join(t.TempDir(), "repos"))
	s1, err := repos.Prepare(ctx, c, []string{d1}, []string{r1})
	if err != nil {
		t.Fatal(err)
	}
	if err := repos.Activate(c, s1); err != nil {
		t.Fatal(err)
	}
	s2, err := repos.Prepare(ctx, c, []string{d2}, []string{r2})
	if err != nil {
		t.Fatal(err)
	}
	apt, dnf := c.StagedDirs(s2)
	from := checks.Publications{Apt: checks.PreviousPublication(apt), Dnf: checks.PreviousPublication(dnf)}
	if from.Apt == "" || from.Dnf == "" {
		t.Fatalf("the staged publications' previous ones: %+v", from)
	}

	metadata := func(apt, dnf string) [][]byte {
		t.Helper()
		var out [][]byte
		for _, glob := range []string{filepath.Join(apt, "dists/*/main/binary-*/Packages"), filepath.Join(dnf, "repodata/*-primary.xml.gz")} {
			files, _ := filepath.Glob(glob)
			if len(files) != 1 {
				t.Fatalf("%s: %v", glob, files)
			}
			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	want := metadata(apt, dnf)

	// The rebuild, seeded: the same metadata; the seed is left as it was.
	seeded := filepath.Join(t.TempDir(), "repos")
	if err := seedRepos(seeded, from); err != nil {
		t.Fatal(err)
	}
	rc := cfg(seeded)
	rs, err := repos.Prepare(ctx, rc, []string{d2}, []string{r2})
	if err != nil {
		t.Fatal(err)
	}
	got := metadata(rc.StagedDirs(rs))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("seeded rebuild: metadata %d differs from the release's", i)
		}
	}
	if a, d := c.StagedDirs(s1); !bytes.Equal(metadata(a, d)[0], metadata(filepath.Join(seeded, "apt", "publications", filepath.Base(a)), filepath.Join(seeded, "dnf", "publications", filepath.Base(d)))[0]) {
		t.Error("the seed changed")
	}

	// Not seeded: only its own package, which is why the rebuild is seeded.
	bare := cfg(filepath.Join(t.TempDir(), "repos"))
	bs, err := repos.Prepare(ctx, bare, []string{d2}, []string{r2})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(metadata(bare.StagedDirs(bs))[0], want[0]) {
		t.Error("an unseeded rebuild gave the same Packages: the test does not show what seeding is for")
	}
}

// TestRebuildEnvCarriesNoKeys: the rebuild child's environment is what
// the rebuild sets, whatever key material the parent holds in variables:
// it signs with the release's published signatures, never with a key.
func TestRebuildEnvCarriesNoKeys(t *testing.T) {
	t.Setenv("HALVM_PGP_KEY", "armored-secret-key")
	t.Setenv("COSIGN_PASSWORD", "cosign-secret-password")
	env := rebuildEnv(checks.Variation{User: "rebuild", TZ: "Pacific/Kiritimati", Env: []string{"LANG=fr_FR.UTF-8"}}, "/h", "/t")
	var names []string
	for _, e := range env {
		if strings.Contains(e, "secret") {
			t.Errorf("key material reaches the rebuild: %s", e)
		}
		names = append(names, strings.SplitN(e, "=", 2)[0])
	}
	sort.Strings(names)
	want := []string{"HOME", "LANG", "LOGNAME", "PATH", "TMPDIR", "TZ", "USER"}
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("the child's variables: %v, want %v", names, want)
	}
	if !sort.IsSorted(sort.Reverse(sort.StringSlice(env))) {
		t.Errorf("the child's environment is not in reverse order: %q", env)
	}
}

// TestRebuildProgram: the rebuild child is a program of its own
// (cmd/halvm-rebuild) that Rebuild builds and starts with the request file
// as its argument; it refuses a missing argument and fails naming a bad
// request.
func TestRebuildProgram(t *testing.T) {
	ctx := context.Background()
	exe, err := buildProgram(ctx, t.TempDir(), RebuildProgram)
	if err != nil {
		t.Fatal(err)
	}
	err = run.Run(ctx, run.Cmd{Args: []string{exe}, Env: run.BaseEnv()})
	var re *run.Error
	if !errors.As(err, &re) || re.Exit != 2 || !strings.Contains(re.Stderr, "usage: halvm-rebuild REQUEST.json") {
		t.Errorf("without a request: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "request.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run.Run(ctx, run.Cmd{Args: []string{exe, bad}, Env: run.BaseEnv()})
	if !errors.As(err, &re) || re.Exit != 1 || !strings.Contains(re.Stderr, "rebuild: the request "+bad) {
		t.Errorf("with a malformed request: %v", err)
	}
}

// TestRebuildNeverGetsTheSharedCache: the rebuild child's environment
// never carries HALVM_CACHE_REGISTRY (set in the parent or in the
// variation), and a child that finds it refuses to run.
func TestRebuildNeverGetsTheSharedCache(t *testing.T) {
	t.Setenv(config.CacheRegistryVar, "127.0.0.1:5000/halvm/cache")
	env := rebuildEnv(Variation{User: "rebuild", Env: []string{config.CacheRegistryVar + "=127.0.0.1:5000/x", "LC_ALL=C.UTF-8"}}, "/h", "/t")
	for _, e := range env {
		if strings.HasPrefix(e, config.CacheRegistryVar) {
			t.Errorf("the rebuild's environment carries %s", e)
		}
	}
	req := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(req, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) {
		if k == config.CacheRegistryVar {
			return "127.0.0.1:5000/halvm/cache", true
		}
		return "", false
	}
	if err := RebuildChild(context.Background(), req, lookup, io.Discard); err == nil || !strings.Contains(err.Error(), config.CacheRegistryVar) {
		t.Errorf("a rebuild child with HALVM_CACHE_REGISTRY set: %v", err)
	}
}

// TestAdoptRebuild: a verification given a finished independent rebuild
// (HALVM_REBUILD_FROM) compares with it; a directory without one fails
// naming the remedy; the independent rebuild refuses the shared cache.
func TestAdoptRebuild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "rebuild-dist")
	adopt := adoptRebuild(dir)
	if err := adopt(context.Background(), out, checks.Variation{}, checks.Publications{}); err == nil || !strings.Contains(err.Error(), "go run mage.go ci:rebuild") {
		t.Fatalf("no ledger: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ledger.json"), []byte(`{}`), 0o644)
	if err := adopt(context.Background(), out, checks.Variation{}, checks.Publications{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "ledger.json")); err != nil || string(b) != `{}` {
		t.Fatalf("the check does not see the rebuild: %q %v", b, err)
	}
	reg, _ := regcache.New("127.0.0.1:5000/halvm/cache", nil)
	if err := RebuildIndependently(context.Background(), pipeline.Plan{}, Options{CacheRegistry: reg}, t.TempDir()); err == nil || !strings.Contains(err.Error(), config.CacheRegistryVar) {
		t.Fatalf("the independent rebuild with a shared cache: %v", err)
	}
}

// TestRebuildRefusesUnreachableInputs: a lock naming inputs the rebuilder
// can neither find in its input cache nor fetch is refused before anything
// is built, with every such input named and no verdict claimed.
func TestRebuildRefusesUnreachableInputs(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	lock, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gone := "file://" + filepath.Join(dir, "gone")
	l := *lock
	l.Sources = append([]pins.Source(nil), lock.Sources...)
	for i := range l.Sources {
		l.Sources[i].URL = gone + "/" + l.Sources[i].Name + ".git"
	}
	l.Files = append([]pins.File(nil), lock.Files...)
	for i := range l.Files {
		l.Files[i].URL, l.Files[i].Pending = "http://127.0.0.1:1/"+l.Files[i].Name+".tar.xz", ""
		if l.Files[i].SHA256 == "" {
			l.Files[i].SHA256 = strings.Repeat("e", 64)
		}
	}
	want := sources.InputNames(&l)
	if len(l.Files) == 0 || len(l.Sources) == 0 {
		t.Fatalf("the lock pins %d files and %d sources", len(l.Files), len(l.Sources))
	}
	p := inputsPlan(t, lock, dir, nil)
	out := filepath.Join(dir, "rebuild")
	o := Options{Lock: &l, Sources: sources.Options{DebArchives: map[string]string{}}}
	err = Rebuild(context.Background(), p, o, out, Variation{WorkDir: filepath.Join(dir, "elsewhere"), User: "rebuild"}, checks.Publications{ArchiveKey: []byte("k"), Signed: []string{dir}})
	var ue *UnreachableInputsError
	if !errors.As(err, &ue) {
		t.Fatalf("a lock with unreachable inputs: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w+": ") {
			t.Errorf("the refusal does not name %s:\n%v", w, err)
		}
	}
	if len(ue.Gaps) != len(want) || !strings.Contains(err.Error(), "no verdict") {
		t.Errorf("%d gaps, want %d (%v):\n%v", len(ue.Gaps), len(want), want, err)
	}
	if _, err := os.Stat(out + ".bin"); err == nil {
		t.Error("the rebuild program was built: the refusal comes before any build")
	}
}
