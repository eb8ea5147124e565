package sample_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
)

func generate(t *testing.T, opts sample.Options) *sample.Upstream {
	t.Helper()
	testenv.NeedCommand(t, "git", "git")
	u, err := sample.Generate(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := run.Output(context.Background(), run.Cmd{Args: append([]string{"git"}, args...), Dir: dir,
		Env: run.BaseEnv("GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestGenerateDeterministic generates twice in different directories: the
// same commit ids, the same tarball bytes, the same lock but for the
// directory.
func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	a, b := generate(t, sample.Options{}), generate(t, sample.Options{})
	if !reflect.DeepEqual(a.Commits, b.Commits) || len(a.Commits) != 6 {
		t.Errorf("commits differ:\n%v\n%v", a.Commits, b.Commits)
	}
	ta, _ := os.ReadFile(a.Files[sample.BindistName])
	tb, _ := os.ReadFile(b.Files[sample.BindistName])
	if !bytes.Equal(ta, tb) || len(ta) == 0 {
		t.Errorf("tarballs differ")
	}
	la := strings.ReplaceAll(string(pins.Bytes(a.Lock)), a.Dir, "DIR")
	lb := strings.ReplaceAll(string(pins.Bytes(b.Lock)), b.Dir, "DIR")
	if la != lb {
		t.Errorf("locks differ beyond the directory:\n%s\n%s", la, lb)
	}
}

func TestLockRoundTrip(t *testing.T) {
	t.Parallel()
	u := generate(t, sample.Options{})
	data := pins.Bytes(u.Lock)
	l, err := pins.Parse("sample.lock", data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pins.Bytes(l), data) {
		t.Error("the sample lock does not round-trip through pins.Bytes and pins.Parse")
	}
	if l.Release.SourceDateEpoch != sample.Epoch {
		t.Errorf("epoch %d", l.Release.SourceDateEpoch)
	}
	// Every pin is a real commit of its repository, and the working URL is
	// what the dead .gitmodules URL rewrites to.
	for _, s := range l.Sources {
		if got := strings.TrimSpace(git(t, u.Repos[s.Name], "rev-parse", s.Commit+"^{commit}")); got != s.Commit {
			t.Errorf("%s: pin %s is not a commit of %s", s.Name, s.Commit, u.Repos[s.Name])
		}
		if s.UpstreamURL != "" {
			if !strings.Contains(s.UpstreamURL, sample.Host) {
				t.Errorf("%s: upstream_url %s is not a dead-style URL", s.Name, s.UpstreamURL)
			}
			if got := l.RewriteURL(s.UpstreamURL); got != s.URL {
				t.Errorf("%s: %s rewrites to %s, want %s", s.Name, s.UpstreamURL, got, s.URL)
			}
		}
	}
	if len(l.Excluded) != 1 || l.Excluded[0].Path != "halvm-ghc/nofib" || l.Excluded[0].Commit != u.Commits[sample.RepoNofib] {
		t.Errorf("excluded %+v", l.Excluded)
	}
}

func TestShape(t *testing.T) {
	t.Parallel()
	u := generate(t, sample.Options{})
	mods := git(t, u.Repos[sample.RepoHaLVM], "show", "main:.gitmodules")
	for _, want := range []string{"[submodule \"halvm-ghc\"]", "url = git://git.sample.invalid/halvm-ghc.git", "path = src/openlibm"} {
		if !strings.Contains(mods, want) {
			t.Errorf("halvm .gitmodules lacks %q:\n%s", want, mods)
		}
	}
	tree := git(t, u.Repos[sample.RepoHaLVMGHC], "ls-tree", "-r", "main")
	for _, want := range []string{
		"160000 commit " + u.Commits[sample.RepoArray] + "\tlibraries/array",
		"160000 commit " + u.Commits[sample.RepoMinlibc] + "\trts/minlibc",
		"160000 commit " + u.Commits[sample.RepoNofib] + "\tnofib",
	} {
		if !strings.Contains(tree, want) {
			t.Errorf("halvm-ghc tree lacks %q:\n%s", want, tree)
		}
	}
	// Every file of tree/halvm-ghc/ is committed.
	for _, f := range treeFiles(t, sample.RepoHaLVMGHC) {
		if !strings.Contains(tree, " blob ") || !strings.Contains(tree, "\t"+f+"\n") {
			t.Errorf("halvm-ghc tree lacks %s", f)
		}
	}
	log := git(t, u.Repos[sample.RepoHaLVM], "log", "-1", "--format=%an <%ae> %at %cn %ct")
	if want := "Sample Upstream <upstream@git.sample.invalid> 1544054400 Sample Upstream 1544054400\n"; log != want {
		t.Errorf("commit identity/date %q, want %q", log, want)
	}
}

func TestOverlayAndModes(t *testing.T) {
	t.Parallel()
	u := generate(t, sample.Options{Overlay: map[string]fs.FS{
		sample.RepoOpenlibm: fstest.MapFS{
			"src/e_exp.c": {Data: []byte("double exp(double x);\n"), Mode: 0o644},
			"configure":   {Data: []byte("#!/bin/sh\nexit 0\n"), Mode: 0o444},
			"tools/run":   {Data: []byte("plain text but executable\n"), Mode: 0o755},
			"README.md":   {Data: []byte("overlay wins\n")},
		},
		sample.Bindist: fstest.MapFS{"bin/ghc": {Data: []byte("#!/bin/sh\necho 8.0.2\n")}},
	}})
	tree := git(t, u.Repos[sample.RepoOpenlibm], "ls-tree", "-r", "main")
	for _, want := range []string{"100644 blob", "\tsrc/e_exp.c", "100755 blob"} {
		if !strings.Contains(tree, want) {
			t.Errorf("openlibm tree lacks %q:\n%s", want, tree)
		}
	}
	for _, line := range strings.Split(tree, "\n") {
		if (strings.HasSuffix(line, "\tconfigure") || strings.HasSuffix(line, "\ttools/run")) && !strings.HasPrefix(line, "100755") {
			t.Errorf("not executable: %s", line)
		}
	}
	if got := git(t, u.Repos[sample.RepoOpenlibm], "show", "main:README.md"); got != "overlay wins\n" {
		t.Errorf("README.md = %q", got)
	}
	// The bindist tarball: normalized entries below ghc-8.0.2/.
	fh, err := os.Open(u.Files[sample.BindistName])
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.ModTime.Unix() != sample.Epoch || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: not normalized: %v %d %d %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
		if h.Name == "ghc-8.0.2/bin/ghc" && h.Mode != 0o755 {
			t.Errorf("bin/ghc mode %o", h.Mode)
		}
	}
	// Every file of tree/ghc-bindist/ and the overlay, below ghc-8.0.2/,
	// each directory before its content.
	want := map[string]bool{"ghc-8.0.2/bin/ghc": true}
	for _, f := range treeFiles(t, sample.Bindist) {
		want["ghc-8.0.2/"+f] = true
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, "ghc-8.0.2/") {
			t.Errorf("tarball entry %s is not below ghc-8.0.2/", n)
		}
		if parent := path.Dir(strings.TrimSuffix(n, "/")) + "/"; parent != "./" && !seen[parent] {
			t.Errorf("tarball entry %s comes before its directory %s", n, parent)
		}
		seen[n] = true
		delete(want, n)
	}
	if len(want) > 0 {
		t.Errorf("tarball lacks %v (entries %v)", want, names)
	}
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	u := generate(t, sample.Options{Advance: true})
	for name, pin := range u.Commits {
		if u.Heads[name] == pin {
			t.Errorf("%s: head did not move", name)
		}
		if got := strings.TrimSpace(git(t, u.Repos[name], "rev-parse", "main~1")); got != pin {
			t.Errorf("%s: head's parent %s is not the pin %s", name, got, pin)
		}
	}
	tree := git(t, u.Repos[sample.RepoHaLVM], "ls-tree", "main", "halvm-ghc")
	if !strings.Contains(tree, u.Heads[sample.RepoHaLVMGHC]) {
		t.Errorf("the moved superproject should point at halvm-ghc's new head: %s", tree)
	}
	pinned := map[string]string{}
	for _, s := range u.Lock.Sources {
		pinned[s.Name] = s.Commit
	}
	for name, c := range pinned {
		if c != u.Commits[name] {
			t.Errorf("%s pinned at %s, want %s", name, c, u.Commits[name])
		}
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	gone := strings.Repeat("e", 40)
	u := generate(t, sample.Options{Gitlinks: map[string]string{"halvm-ghc/rts/minlibc": gone}, Unpinned: []string{"src/openlibm"}})
	if s, ok := u.Lock.Source(sample.RepoMinlibc); !ok || s.Commit != gone {
		t.Errorf("minlibc pin %+v, want %s", s, gone)
	}
	if !strings.Contains(git(t, u.Repos[sample.RepoHaLVMGHC], "ls-tree", "main", "rts/minlibc"), gone) {
		t.Error("gitlink override not recorded")
	}
	if _, ok := u.Lock.Source(sample.RepoOpenlibm); ok {
		t.Error("unpinned openlibm is pinned")
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "git", "git")
	_, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{
		Overlay:  map[string]fs.FS{"nosuch": fstest.MapFS{}},
		Gitlinks: map[string]string{"halvm-ghc/nofib": "xyz", "docs": strings.Repeat("a", 40)},
		Unpinned: []string{"halvm-ghc"},
	})
	for _, want := range []string{`overlay for unknown repository "nosuch"`, "halvm-ghc/nofib: want 40 hex", `"docs", which is not a submodule path`, "only leaf repositories"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	_, err = sample.Generate(context.Background(), t.TempDir(), sample.Options{Overlay: map[string]fs.FS{
		sample.RepoHaLVMGHC: fstest.MapFS{"libraries/array/x.hs": {Data: []byte("x")}, ".gitmodules": {Data: []byte("")}},
	}})
	for _, want := range []string{"libraries/array/x.hs is inside submodule path libraries/array", ".gitmodules must not be in the tree"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sample.Generate(context.Background(), dir, sample.Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("generating into a non-empty directory: %v", err)
	}
}

// treeFiles lists the files of tree/<repo>/ (as embedded).
func treeFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(os.DirFS(filepath.Join("tree", repo)), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("tree/%s: %v (%d files)", repo, err, len(out))
	}
	return out
}

// tarNames lists the entries of a tar.gz.
func tarNames(t *testing.T, p string) map[string]int64 {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h.Mode
	}
}

// TestToolTarballs: every tree/tools/<name>-<version>/ is a pinned tool
// tarball, shaped like its upstream counterpart.
func TestToolTarballs(t *testing.T) {
	t.Parallel()
	ents, err := os.ReadDir(filepath.Join("tree", "tools"))
	if err != nil {
		t.Fatalf("reading tree/tools: %v", err)
	}
	u := generate(t, sample.Options{})
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		n++
		var f pins.File
		for _, lf := range u.Lock.Files {
			if lf.Role == pins.RoleTool && strings.HasPrefix(e.Name(), lf.Name+"-") && e.Name() == lf.Name+"-"+lf.Version {
				f = lf
			}
		}
		if f.Name == "" {
			t.Errorf("tree/tools/%s is not pinned as a tool: %+v", e.Name(), u.Lock.Files)
			continue
		}
		names := tarNames(t, u.Files[f.Name])
		top := e.Name() + "/"
		if f.Name == "cabal-install" {
			top = "" // the bindist holds cabal at its root
			if names["cabal"] != 0o755 {
				t.Errorf("cabal-install tarball: cabal missing or not executable: %v", names)
			}
		}
		for _, tf := range treeFiles(t, "tools/"+e.Name()) {
			if _, ok := names[top+tf]; !ok {
				t.Errorf("%s lacks %s%s: %v", filepath.Base(u.Files[f.Name]), top, tf, names)
			}
		}
	}
	if n == 0 {
		t.Error("tree/tools holds no tool")
	}
}
