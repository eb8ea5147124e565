package sources_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/regcache/regtest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
	"github.com/halvm/halvm-release/sources"
)

// fixture is a generated sample upstream whose files are served over http
// (file:// when noHTTP), a cache and a work directory.
type fixture struct {
	u     *sample.Upstream
	srv   *httptest.Server
	cache string
	work  string
}

func newFixture(t *testing.T, opts sample.Options) *fixture {
	t.Helper()
	testenv.NeedCommand(t, "git", "git")
	dir := t.TempDir()
	fx := &fixture{cache: t.TempDir(), work: t.TempDir()}
	fx.srv = httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "files"))))
	t.Cleanup(fx.srv.Close)
	opts.FileBaseURL = fx.srv.URL
	u, err := sample.Generate(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	fx.u = u
	return fx
}

func (fx *fixture) opts() sources.Options {
	return sources.Options{CacheDir: fx.cache, DebArchives: map[string]string{}}
}

func (fx *fixture) fetch(t *testing.T, l *pins.Lock, o sources.Options) (*sources.Result, string, error) {
	t.Helper()
	dest := filepath.Join(fx.work, "tree-"+strconv.Itoa(len(mustReadDir(t, fx.work))))
	res, err := sources.Fetch(context.Background(), l, dest, o)
	return res, dest, err
}

// takeOriginAway makes the upstream unreachable: repositories and files
// renamed away, the file server closed.
func (fx *fixture) takeOriginAway(t *testing.T) {
	t.Helper()
	fx.srv.Close()
	for _, d := range []string{fx.u.ReposDir, fx.u.FilesDir} {
		if err := os.Rename(d, d+".away"); err != nil {
			t.Fatal(err)
		}
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return ents
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(gitRaw(t, dir, args...))
}

func gitRaw(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := run.Output(context.Background(), run.Cmd{Args: append([]string{"git"}, args...), Dir: dir,
		Env: run.BaseEnv("GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error mentioning %q, got none", parts)
	}
	t.Logf("error (as expected): %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not mention %q:\n%v", p, err)
		}
	}
}

// assertNothingLeft checks that a failed fetch left no tree, no partial
// tree, no partial download and no unverified cache entry.
func (fx *fixture) assertNothingLeft(t *testing.T, verified ...string) {
	t.Helper()
	for _, e := range mustReadDir(t, fx.work) {
		t.Errorf("failed fetch left %s in the work directory", e.Name())
	}
	for _, e := range mustReadDir(t, filepath.Join(fx.cache, "tmp")) {
		t.Errorf("failed fetch left %s in the cache's tmp", e.Name())
	}
	ok := map[string]bool{}
	for _, v := range verified {
		ok[v] = true
	}
	for _, e := range mustReadDir(t, filepath.Join(fx.cache, "sha256")) {
		if !ok[e.Name()] {
			t.Errorf("failed fetch left cache entry sha256/%s", e.Name())
		}
	}
}

func TestFetchClean(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	o := fx.opts()
	o.Ledger = &pipeline.Ledger{}
	res, dest, err := fx.fetch(t, fx.u.Lock, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tree != dest {
		t.Errorf("Tree = %s, want %s", res.Tree, dest)
	}
	// git itself agrees that every submodule sits at its pin.
	status := "\n" + gitRaw(t, dest, "submodule", "status", "--recursive")
	for _, s := range fx.u.Lock.Sources {
		if s.IsRoot() {
			if head := gitOut(t, dest, "rev-parse", "HEAD"); head != s.Commit {
				t.Errorf("superproject HEAD = %s, want %s", head, s.Commit)
			}
			continue
		}
		if want := "\n " + s.Commit + " " + s.Path; !strings.Contains(status, want) {
			t.Errorf("git submodule status lacks %q:\n%s", want, status)
		}
		if _, err := os.Stat(filepath.Join(dest, s.Path, "README.md")); err != nil {
			t.Errorf("%s not checked out: %v", s.Path, err)
		}
		dotgit, err := os.ReadFile(filepath.Join(dest, s.Path, ".git"))
		if err != nil || !bytes.HasPrefix(dotgit, []byte("gitdir: ../")) {
			t.Errorf("%s/.git should be a file with a relative gitdir, got %q (%v)", s.Path, dotgit, err)
		}
	}
	if !strings.Contains(status, "-"+fx.u.Commits[sample.RepoNofib]+" halvm-ghc/nofib") {
		t.Errorf("excluded nofib should be listed uninitialized:\n%s", status)
	}
	if ents := mustReadDir(t, filepath.Join(dest, "halvm-ghc", "nofib")); len(ents) != 0 {
		t.Errorf("excluded nofib was checked out: %v", ents)
	}
	if got := gitOut(t, filepath.Join(dest, "halvm-ghc"), "config", "remote.origin.url"); got != mustSource(t, fx.u.Lock, "halvm-ghc").URL {
		t.Errorf("halvm-ghc origin = %s", got)
	}
	if st := gitOut(t, dest, "status", "--porcelain", "--ignore-submodules=none"); st != "" {
		t.Errorf("tree is not clean:\n%s", st)
	}
	// Relative gitdirs: the tree can move.
	moved := dest + "-moved"
	if err := os.Rename(dest, moved); err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, filepath.Join(moved, "halvm-ghc", "libraries", "array"), "rev-parse", "HEAD"); got != fx.u.Commits[sample.RepoArray] {
		t.Errorf("array HEAD after moving the tree = %s", got)
	}

	if len(res.Files) != len(fx.u.Lock.Files) || len(res.Files) < 2 {
		t.Fatalf("files = %+v", res.Files)
	}
	for i, f := range fx.u.Lock.Files {
		r := res.Files[i]
		if r.Name != f.Name || r.SHA256 != f.SHA256 || r.Cached {
			t.Errorf("file %s: %+v", f.Name, r)
		}
		if size, sum, err := fsutil.HashFile(r.Path); err != nil || size != f.Size || sum != f.SHA256 {
			t.Errorf("cached file %s: %d %s %v", r.Path, size, sum, err)
		}
		if r.Path != filepath.Join(fx.cache, "sha256", f.SHA256) {
			t.Errorf("cache path %s is not content-addressed", r.Path)
		}
	}

	var names []string
	for _, a := range o.Ledger.Find(pipeline.KindSource, "") {
		names = append(names, a.Name+" "+a.Path)
		if f, ok := fx.u.Lock.File(strings.TrimPrefix(a.Name, "file:")); ok && (a.SHA256 != f.SHA256 || a.Size != f.Size) {
			t.Errorf("ledger %+v", a)
		}
		if s, ok := fx.u.Lock.Source(strings.TrimPrefix(a.Name, "git:")); ok && a.Commit != s.Commit {
			t.Errorf("ledger %+v: commit, want %s", a, s.Commit)
		}
	}
	var want []string
	for _, f := range fx.u.Lock.Files {
		want = append(want, "file:"+f.Name+" "+f.URL)
	}
	for _, s := range fx.u.Lock.Sources {
		want = append(want, "git:"+s.Name+" git+"+s.URL+"@"+s.Commit)
	}
	sort.Strings(want)
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("ledger:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
}

// bindist is the sample lock's bootstrap compiler pin.
func (fx *fixture) bindist(t *testing.T) pins.File {
	t.Helper()
	f, ok := fx.u.Lock.File(sample.BindistName)
	if !ok {
		t.Fatal("the sample lock pins no bootstrap compiler")
	}
	return f
}

// sums are the sha256 of the lock's files but the named ones.
func (fx *fixture) sums(except ...string) []string {
	var out []string
	for _, f := range fx.u.Lock.Files {
		skip := false
		for _, e := range except {
			skip = skip || f.Name == e
		}
		if !skip {
			out = append(out, f.SHA256)
		}
	}
	return out
}

func mustSource(t *testing.T, l *pins.Lock, name string) pins.Source {
	t.Helper()
	s, ok := l.Source(name)
	if !ok {
		t.Fatalf("no source %s", name)
	}
	return s
}

func TestCacheHitNeedsNoNetwork(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	if _, _, err := fx.fetch(t, fx.u.Lock, fx.opts()); err != nil {
		t.Fatal(err)
	}
	fx.takeOriginAway(t)
	res, dest, err := fx.fetch(t, fx.u.Lock, fx.opts())
	if err != nil {
		t.Fatalf("second fetch with the origin gone: %v", err)
	}
	for _, s := range res.Sources {
		if !s.Cached {
			t.Errorf("%s was not served from the cache", s.Name)
		}
	}
	for _, f := range res.Files {
		if !f.Cached {
			t.Errorf("file %s was not served from the cache", f.Name)
		}
	}
	gitOut(t, dest, "submodule", "status", "--recursive")

	// A damaged cache entry is never used: with the origin gone it fails.
	bindist := fx.bindist(t)
	p := filepath.Join(fx.cache, "sha256", bindist.SHA256)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = sources.FetchFile(context.Background(), bindist, fx.opts())
	wantErr(t, err, "file "+sample.BindistName, fx.srv.URL)
	if _, statErr := os.Stat(p); statErr == nil {
		t.Errorf("damaged cache entry %s is still there", p)
	}
}

func TestMirrorDirAirGapped(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	if _, _, err := fx.fetch(t, fx.u.Lock, fx.opts()); err != nil {
		t.Fatal(err)
	}
	mirror := t.TempDir()
	if err := sources.ExportMirror(context.Background(), fx.u.Lock, fx.opts(), mirror); err != nil {
		t.Fatal(err)
	}
	fx.takeOriginAway(t)
	o := fx.opts()
	o.CacheDir = t.TempDir() // a fresh machine
	o.MirrorDir = mirror
	res, dest, err := fx.fetch(t, fx.u.Lock, o)
	if err != nil {
		t.Fatalf("air-gapped fetch from the mirror: %v", err)
	}
	for _, s := range res.Sources {
		if s.Cached {
			t.Errorf("%s came from the fresh cache, not the mirror", s.Name)
		}
	}
	if got := gitOut(t, filepath.Join(dest, "src", "openlibm"), "rev-parse", "HEAD"); got != fx.u.Commits[sample.RepoOpenlibm] {
		t.Errorf("openlibm HEAD = %s", got)
	}
	// A mirror missing a source is an error naming it, never a fallback.
	if err := os.RemoveAll(filepath.Join(mirror, "git", "minlibc.git")); err != nil {
		t.Fatal(err)
	}
	o.CacheDir = t.TempDir()
	_, _, err = fx.fetch(t, fx.u.Lock, o)
	wantErr(t, err, "minlibc", "git/minlibc.git")
}

func TestMirrorMap(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	// The mirror is a copy of the upstream somewhere else; the origin is gone.
	elsewhere := t.TempDir()
	for _, d := range []string{fx.u.ReposDir, fx.u.FilesDir} {
		if err := os.Rename(d, filepath.Join(elsewhere, filepath.Base(d))); err != nil {
			t.Fatal(err)
		}
	}
	fx.srv.Close()
	o := fx.opts()
	o.MirrorMap = []pins.Rewrite{
		{From: "file://" + fx.u.ReposDir + "/", To: "file://" + elsewhere + "/repos/"},
		{From: fx.srv.URL + "/", To: "file://" + elsewhere + "/files/"},
	}
	res, _, err := fx.fetch(t, fx.u.Lock, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if !strings.HasPrefix(f.URL, "file://"+elsewhere) {
			t.Errorf("file %s fetched from %s", f.Name, f.URL)
		}
	}
}

func TestTarballByteFlipped(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	p := fx.u.Files[sample.BindistName]
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f := fx.bindist(t)
	_, _, err = fx.fetch(t, fx.u.Lock, fx.opts())
	wantErr(t, err, "file "+f.Name, f.URL, "sha256 is "+hex.EncodeToString(sum[:]), "the lock pins "+f.SHA256, "nothing was kept")
	fx.assertNothingLeft(t, fx.sums(f.Name)...)
}

func TestTarballWrongSize(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	f := fx.bindist(t)
	// The server's file grew by one byte.
	fh, err := os.OpenFile(fx.u.Files[sample.BindistName], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte{0})
	fh.Close()
	_, err = sources.FetchFile(context.Background(), f, fx.opts())
	wantErr(t, err, "file "+f.Name, f.URL, strconv.FormatInt(f.Size+1, 10)+" bytes", "the lock pins "+strconv.FormatInt(f.Size, 10))
	fx.assertNothingLeft(t)

	// A chunked answer (no Content-Length) that runs long is cut at pin+1.
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		w.Write(make([]byte, f.Size))
	}))
	defer chunked.Close()
	g := f
	g.URL = chunked.URL + "/x.tar.gz"
	_, err = sources.FetchFile(context.Background(), g, fx.opts())
	wantErr(t, err, "got "+strconv.FormatInt(f.Size+1, 10)+" bytes", "the lock pins "+strconv.FormatInt(f.Size, 10))
	fx.assertNothingLeft(t)
}

func TestGitlinkDisagreesWithPin(t *testing.T) {
	t.Parallel()
	// The branches moved on; someone pinned halvm-ghc's new head but kept
	// the old pin of array, whose gitlink moved with it.
	fx := newFixture(t, sample.Options{Advance: true})
	l := *fx.u.Lock
	l.Sources = append([]pins.Source(nil), l.Sources...)
	for i, s := range l.Sources {
		if s.Name == sample.RepoHaLVMGHC {
			l.Sources[i].Commit = fx.u.Heads[sample.RepoHaLVMGHC]
		}
	}
	_, _, err := fx.fetch(t, &l, fx.opts())
	// Both halvm-ghc in the superproject and the two pinned gitlinks in
	// halvm-ghc's new head are reported.
	wantErr(t, err, "halvm-ghc: the gitlink in halvm records "+fx.u.Commits[sample.RepoHaLVMGHC]+" but the lock pins "+fx.u.Heads[sample.RepoHaLVMGHC])
	fx.assertNothingLeft(t, fx.sums()...) // verified files are kept

	// The superproject head points at all new heads: pin it and halvm-ghc's
	// head, leave the rest: every stale pin of halvm-ghc's children shows.
	l.Sources = append([]pins.Source(nil), fx.u.Lock.Sources...)
	for i, s := range l.Sources {
		if s.Name == sample.RepoHaLVM || s.Name == sample.RepoHaLVMGHC || s.Name == sample.RepoOpenlibm {
			l.Sources[i].Commit = fx.u.Heads[s.Name]
		}
	}
	_, _, err = fx.fetch(t, &l, fx.opts())
	wantErr(t, err,
		"halvm-ghc/libraries/array: the gitlink in halvm-ghc records "+fx.u.Heads[sample.RepoArray]+" but the lock pins "+fx.u.Commits[sample.RepoArray],
		"halvm-ghc/rts/minlibc: the gitlink in halvm-ghc records "+fx.u.Heads[sample.RepoMinlibc]+" but the lock pins "+fx.u.Commits[sample.RepoMinlibc],
		"halvm-ghc/nofib: the gitlink in halvm-ghc records "+fx.u.Heads[sample.RepoNofib]+" but the lock's [[excluded]] entry says "+fx.u.Commits[sample.RepoNofib],
		"3 problem(s)")
	fx.assertNothingLeft(t, fx.sums()...) // verified files are kept
}

func TestPinnedCommitMissing(t *testing.T) {
	t.Parallel()
	gone := strings.Repeat("d", 40)
	fx := newFixture(t, sample.Options{Gitlinks: map[string]string{"src/openlibm": gone}})
	_, _, err := fx.fetch(t, fx.u.Lock, fx.opts())
	wantErr(t, err, "openlibm", "pinned commit "+gone+" is not in "+mustSource(t, fx.u.Lock, "openlibm").URL)
	fx.assertNothingLeft(t, fx.sums()...) // verified files are kept
}

func TestBranchMovedAfterPinning(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{Advance: true})
	res, dest, err := fx.fetch(t, fx.u.Lock, fx.opts())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sources {
		if s.Commit == fx.u.Heads[s.Name] {
			t.Fatalf("fixture broken: %s head did not move", s.Name)
		}
		dir := filepath.Join(dest, s.Path)
		if got := gitOut(t, dir, "rev-parse", "HEAD"); got != fx.u.Commits[s.Name] {
			t.Errorf("%s at %s, want the pin %s (branch head %s)", s.Name, got, fx.u.Commits[s.Name], fx.u.Heads[s.Name])
		}
		if _, err := os.Stat(filepath.Join(dir, "NEWS")); err == nil {
			t.Errorf("%s has the branch head's NEWS file", s.Path)
		}
	}
}

func TestUnpinnedSubmodule(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{Unpinned: []string{"halvm-ghc/libraries/array"}})
	_, _, err := fx.fetch(t, fx.u.Lock, fx.opts())
	wantErr(t, err, "halvm-ghc/libraries/array: submodule (gitlink "+fx.u.Commits[sample.RepoArray]+") in halvm-ghc is neither pinned nor excluded")
	fx.assertNothingLeft(t, fx.sums()...) // verified files are kept
}

func TestGitmodulesURLDisagrees(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	l := *fx.u.Lock
	l.Sources = append([]pins.Source(nil), l.Sources...)
	for i, s := range l.Sources {
		if s.Name == sample.RepoOpenlibm {
			l.Sources[i].UpstreamURL = "git://" + sample.Host + "/elsewhere/openlibm"
		}
	}
	_, _, err := fx.fetch(t, &l, fx.opts())
	wantErr(t, err, `src/openlibm: halvm's .gitmodules says url "git://git.sample.invalid/openlibm" but the lock's upstream_url is "git://git.sample.invalid/elsewhere/openlibm"`)
	fx.assertNothingLeft(t, fx.sums()...) // verified files are kept
}

func TestMalformedLock(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	data := pins.Bytes(fx.u.Lock)
	data = bytes.Replace(data, []byte(`commit = "`+fx.u.Commits[sample.RepoArray]+`"`), []byte(`commit = "main"`), 1)
	data = bytes.Replace(data, []byte(`license = "MIT"`), []byte(`licence = "MIT"`), 1)
	data = bytes.Replace(data, []byte("size = "), []byte("size = -"), 1)
	p := filepath.Join(t.TempDir(), "halvm.lock")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sources.FetchLockFile(context.Background(), p, filepath.Join(fx.work, "tree"), fx.opts())
	wantErr(t, err, "3 problem(s)", `commit: want 40 lower-case hex characters, got "main"`, "licence: unknown field", "size: want the file's size")
	fx.assertNothingLeft(t)
	if ents := mustReadDir(t, fx.cache); len(ents) != 0 {
		t.Errorf("a malformed lock fetched something: %v", ents)
	}
}

// TestPendingPinIsAGap: a pending pin blocks only itself. Everything else
// is fetched and verified (the tree is checked out), the fetch fails at the
// end naming the gap and its remedy; an official release refuses the lock
// before fetching anything.
func TestPendingPinIsAGap(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	l := *fx.u.Lock
	l.Files = append([]pins.File{{Name: "cabal-install", Role: pins.RoleTool, Version: "1.24.0.2", URL: fx.srv.URL + "/cabal.tar.gz",
		Pending: "no published sha256"}}, l.Files...)

	o := fx.opts()
	o.RefuseGaps = true
	_, _, err := fx.fetch(t, &l, o)
	wantErr(t, err, "file cabal-install: its pin is pending (no published sha256)", "go run mage.go pins:update file:cabal-install", "official release refuses any gap")
	fx.assertNothingLeft(t)
	if ents := mustReadDir(t, fx.cache); len(ents) != 0 {
		t.Errorf("an official fetch of a lock with pending pins fetched something: %v", ents)
	}

	res, dest, err := fx.fetch(t, &l, fx.opts())
	wantErr(t, err, "1 pinned input(s) could not be fetched", "file:cabal-install: its pin is pending (no published sha256)",
		"go run mage.go pins:update file:cabal-install")
	var gaps *sources.GapsError
	if !errors.As(err, &gaps) || len(gaps.Gaps) != 1 || gaps.Gaps[0].Input != "file:cabal-install" {
		t.Fatalf("want one gap, file:cabal-install; got %#v", gaps)
	}
	if res == nil || res.Tree != dest || len(res.Sources) != len(l.Sources) || len(res.Files) != len(l.Files)-1 {
		t.Fatalf("the gap blocked more than itself: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dest, ".git")); err != nil {
		t.Errorf("no tree although every git source verified: %v", err)
	}
	// The mirror export carries everything but the gap, and names it.
	mirror := t.TempDir()
	err = sources.ExportMirror(context.Background(), &l, fx.opts(), mirror)
	wantErr(t, err, "everything else was exported", "file:cabal-install: its pin is pending")
	for _, f := range fx.u.Lock.Files {
		if _, err := os.Stat(filepath.Join(mirror, "files", filepath.Base(f.URL))); err != nil {
			t.Errorf("the export skipped %s because of another input's gap: %v", f.Name, err)
		}
	}
}

// TestMissingMirrorFileIsAGap: a file the mirror lacks is named with its
// path in the mirror; the git sources and other files are still verified.
func TestMissingMirrorFileIsAGap(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	if _, _, err := fx.fetch(t, fx.u.Lock, fx.opts()); err != nil {
		t.Fatal(err)
	}
	mirror := t.TempDir()
	if err := sources.ExportMirror(context.Background(), fx.u.Lock, fx.opts(), mirror); err != nil {
		t.Fatal(err)
	}
	f := fx.u.Lock.Files[0]
	base := filepath.Base(f.URL)
	if err := os.Remove(filepath.Join(mirror, "files", base)); err != nil {
		t.Fatal(err)
	}
	o := sources.Options{CacheDir: t.TempDir(), MirrorDir: mirror}
	res, _, err := fx.fetch(t, fx.u.Lock, o)
	wantErr(t, err, "file:"+f.Name+": not found at "+filepath.Join(mirror, "files", base), "put the pinned file (sha256 "+f.SHA256)
	if res == nil || res.Tree == "" || len(res.Files) != len(fx.u.Lock.Files)-1 {
		t.Fatalf("a missing file blocked more than itself: %+v", res)
	}
}

// TestFetchFreshKeepsTheTreeOnRefusal: a refused fetch removes nothing.
func TestFetchFreshKeepsTheTreeOnRefusal(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	dest := filepath.Join(fx.work, "src")
	if _, err := sources.FetchFresh(context.Background(), fx.u.Lock, dest, fx.opts()); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dest, "previous-build-output")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := *fx.u.Lock
	l.Files = append([]pins.File{{Name: "cabal-install", Role: pins.RoleTool, Version: "1", URL: fx.srv.URL + "/c.tar.gz", Pending: "unknown"}}, l.Files...)
	o := fx.opts()
	o.RefuseGaps = true
	_, err := sources.FetchFresh(context.Background(), &l, dest, o)
	wantErr(t, err, "its pin is pending")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("a refused fetch deleted the previous tree: %v", err)
	}
	// A fetch whose git source is wrong also leaves the previous tree.
	l = *fx.u.Lock
	l.Sources = append([]pins.Source(nil), l.Sources...)
	l.Sources[len(l.Sources)-1].Commit = strings.Repeat("b", 40)
	if _, err := sources.FetchFresh(context.Background(), &l, dest, fx.opts()); err == nil {
		t.Fatal("a wrong pin was accepted")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("a failed fetch deleted the previous tree: %v", err)
	}
	// A successful fetch replaces the previous tree.
	res, err := sources.FetchFresh(context.Background(), fx.u.Lock, dest, fx.opts())
	if err != nil || res.Tree != dest {
		t.Fatalf("FetchFresh = %+v, %v", res, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the previous tree's files survived a successful fetch")
	}
	if head := gitOut(t, dest, "rev-parse", "HEAD"); head != fx.u.Lock.Root().Commit {
		t.Errorf("new tree at %s, want %s", head, fx.u.Lock.Root().Commit)
	}
	for _, e := range mustReadDir(t, fx.work) {
		if e.Name() != "src" {
			t.Errorf("left %s beside the tree", e.Name())
		}
	}
}

// payload is a file pinned for the interruption tests.
func payload(t *testing.T, url string) ([]byte, pins.File) {
	data := bytes.Repeat([]byte("halvm sample payload\n"), 50000)
	sum := sha256.Sum256(data)
	return data, pins.File{Name: "payload", Role: pins.RoleTool, Version: "1", URL: url + "/payload.tar.gz", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func TestInterruptedDownload(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	var data []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // the server goes away mid-body
		}
	}))
	defer srv.Close()
	data, f := payload(t, srv.URL)
	_, err := sources.FetchFile(context.Background(), f, sources.Options{CacheDir: cache})
	wantErr(t, err, "file payload", srv.URL, "interrupted after", "nothing was kept")
	fx := &fixture{cache: cache, work: t.TempDir()}
	fx.assertNothingLeft(t)
}

func TestCancelledDownload(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	started := make(chan struct{})
	var data []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done() // hangs until the client gives up
	}))
	defer srv.Close()
	data, f := payload(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := sources.FetchFile(ctx, f, sources.Options{CacheDir: cache})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	fx := &fixture{cache: cache, work: t.TempDir()}
	fx.assertNothingLeft(t)
}

func TestCancelledGitFetch(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sources.FetchSources(ctx, fx.u.Lock, filepath.Join(fx.work, "tree"), fx.opts())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	fx.assertNothingLeft(t)
}

// TestDeadURLsRewritten fetches by the dead .gitmodules URLs themselves:
// only the lock's rewrite table (as url.<to>.insteadOf) makes them work.
func TestDeadURLsRewritten(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	l := *fx.u.Lock
	l.Sources = append([]pins.Source(nil), l.Sources...)
	for i, s := range l.Sources {
		if s.UpstreamURL != "" {
			l.Sources[i].URL = s.UpstreamURL
		}
	}
	res, dest, err := fx.fetch(t, &l, fx.opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sources) != 5 {
		t.Errorf("%d sources", len(res.Sources))
	}
	if got := gitOut(t, filepath.Join(dest, "halvm-ghc", "libraries", "array"), "rev-parse", "HEAD"); got != fx.u.Commits[sample.RepoArray] {
		t.Errorf("array HEAD %s", got)
	}
}

// TestSharedInputCache: a file fetched by one runner is pushed to the
// registry (docker-registry) by its sha256; another runner with an empty
// local cache and the origin gone gets it from there, verified.
func TestSharedInputCache(t *testing.T) {
	srv := regtest.Start(t)
	fx := newFixture(t, sample.Options{})
	bindist := fx.bindist(t)
	ctx := context.Background()
	reg := func() *regcache.Cache {
		c, err := regcache.New(srv.Addr+"/halvm/cache", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := fx.opts()
	a.Registry = reg()
	if _, err := sources.FetchFile(ctx, bindist, a); err != nil {
		t.Fatal(err)
	}
	if a.Registry.Pushed() < bindist.Size {
		t.Fatalf("pushed %d bytes, want the %d-byte bindist", a.Registry.Pushed(), bindist.Size)
	}
	fx.takeOriginAway(t)
	b := sources.Options{CacheDir: t.TempDir(), DebArchives: map[string]string{}, Registry: reg()}
	res, err := sources.FetchFile(ctx, bindist, b)
	if err != nil {
		t.Fatalf("origin gone, empty local cache: %v", err)
	}
	if _, sum, _ := fsutil.HashFile(res.Path); sum != bindist.SHA256 || b.Registry.Pulled() < bindist.Size {
		t.Fatalf("pulled %s (%d bytes counted), want the pinned bindist", sum, b.Registry.Pulled())
	}
}
