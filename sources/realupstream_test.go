package sources_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
)

// The tests on the real lock: pins/halvm.lock fetched from the air-gapped
// mirror of the real HaLVM sources (../shared/real-upstream, or
// $HALVM_REAL_UPSTREAM), which holds every pinned commit and no file input.

func realLock(t *testing.T) *pins.Lock {
	t.Helper()
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRealLockFromTheMirror: every one of the real lock's git sources is
// fetched at its pin from the mirror, every gitlink and .gitmodules URL is
// checked (by the fetch, and again here with git), submodule status is
// clean, the excluded submodules are present but empty, and the file inputs
// the mirror lacks are reported by name with their remedy.
func TestRealLockFromTheMirror(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	mirror := testenv.UnpackRealUpstream(t)
	l := realLock(t)
	if len(l.Sources) != 27 {
		t.Fatalf("the real lock pins %d sources, want 27", len(l.Sources))
	}
	dest := filepath.Join(t.TempDir(), "src")
	res, err := sources.Fetch(context.Background(), l, dest, sources.Options{CacheDir: t.TempDir(), MirrorDir: mirror})
	if err == nil {
		t.Fatal("the fetch succeeded although the mirror holds no file inputs")
	}
	if !sources.OnlyGaps(err) {
		t.Fatalf("the fetch failed for more than absent inputs:\n%v", err)
	}
	var gaps *sources.GapsError
	errors.As(err, &gaps)
	got := map[string]string{}
	for _, g := range gaps.Gaps {
		got[g.Input] = g.Reason + " / " + g.Remedy
	}
	for _, f := range l.Files {
		g, ok := got["file:"+f.Name]
		if !ok {
			t.Errorf("file %s is absent from the mirror but not reported", f.Name)
			continue
		}
		if f.Pending != "" && !strings.Contains(g, "pins:update file:"+f.Name) || f.Pending == "" && !strings.Contains(g, filepath.Join(mirror, "files")) {
			t.Errorf("gap of file %s lacks its remedy: %s", f.Name, g)
		}
	}
	for _, d := range l.Debs {
		if _, ok := got["deb:"+sources.DebName(d)]; !ok {
			t.Errorf("Debian package %s is absent from the mirror but not reported", sources.DebName(d))
		}
	}
	t.Logf("gaps reported by name (the mirror holds git only): %d, e.g. %s", len(gaps.Gaps), strings.Join(firstKeys(got, 3), ", "))

	if res.Tree != dest || len(res.Sources) != len(l.Sources) {
		t.Fatalf("tree %q with %d sources, want %s with %d", res.Tree, len(res.Sources), dest, len(l.Sources))
	}
	for _, s := range l.Sources {
		dir := filepath.Join(dest, filepath.FromSlash(s.Path))
		if head := gitOut(t, dir, "rev-parse", "HEAD"); head != s.Commit {
			t.Errorf("%s at %s: HEAD %s, pinned %s", s.Name, s.Path, head, s.Commit)
		}
		if s.IsRoot() {
			continue
		}
		// The gitlink in the parent's tree and the parent's .gitmodules URL.
		p, _ := l.Source(s.Parent)
		pdir := filepath.Join(dest, filepath.FromSlash(p.Path))
		rel := l.RelPath(s)
		if f := strings.Fields(gitOut(t, pdir, "ls-tree", "HEAD", rel)); len(f) < 3 || f[0] != "160000" || f[2] != s.Commit {
			t.Errorf("%s: the gitlink in %s is %v, pinned %s", s.Path, p.Name, f, s.Commit)
		}
		url := ""
		for _, line := range strings.Split(gitOut(t, pdir, "config", "--file", ".gitmodules", "--get-regexp", `^submodule\..*\.path$`), "\n") {
			key, path, _ := strings.Cut(line, " ")
			if path == rel {
				url = gitOut(t, pdir, "config", "--file", ".gitmodules", strings.TrimSuffix(key, ".path")+".url")
			}
		}
		if url != s.UpstreamURL {
			t.Errorf("%s: %s's .gitmodules URL is %q, the lock's upstream_url %q", s.Path, p.Name, url, s.UpstreamURL)
		}
	}
	status := gitRaw(t, dest, "submodule", "status", "--recursive")
	excluded := map[string]bool{}
	for _, e := range l.Excluded {
		excluded[e.Path] = true
	}
	clean := 0
	for _, line := range strings.Split(strings.TrimRight(status, "\n"), "\n") {
		f := strings.Fields(line[1:])
		switch {
		case line[0] == ' ':
			clean++
		case line[0] == '-' && excluded[f[1]]:
		default:
			t.Errorf("submodule status not clean: %q", line)
		}
	}
	if clean != len(l.Sources)-1 {
		t.Errorf("%d submodules checked out clean, want %d", clean, len(l.Sources)-1)
	}
	for _, e := range l.Excluded {
		ents, err := os.ReadDir(filepath.Join(dest, filepath.FromSlash(e.Path)))
		if err != nil || len(ents) != 0 {
			t.Errorf("excluded submodule %s: want an empty directory, got %d entries (%v)", e.Path, len(ents), err)
		}
	}
	if dirty := gitOut(t, dest, "status", "--porcelain", "--ignore-submodules=none"); dirty != "" {
		t.Errorf("the tree is not clean:\n%s", dirty)
	}
}

// TestRealLockVerifyAgainstTheMirror: pins:verify compares every source
// and names the absent files; the lock's epoch equals the superproject's
// committer time, and the old, wrong epoch is caught naming both values.
func TestRealLockVerifyAgainstTheMirror(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	mirror := testenv.UnpackRealUpstream(t)
	l := realLock(t)
	rep, err := sources.Verify(context.Background(), l, sources.Options{MirrorDir: mirror})
	if err != nil {
		t.Fatalf("pins:verify on the real lock: %v", err)
	}
	t.Logf("report:\n%s", rep)
	if rep.Sources != 27 || rep.Committed != 1544117080 || len(rep.Absent) != len(l.Files)+len(l.Debs) {
		t.Errorf("report: %d sources, committed %d, %d absent", rep.Sources, rep.Committed, len(rep.Absent))
	}
	wrong := *l
	wrong.Release.SourceDateEpoch = 1544054400 // the lock's former guess
	_, err = sources.Verify(context.Background(), &wrong, sources.Options{MirrorDir: mirror})
	wantErr(t, err, "release.source_date_epoch is 1544054400", "committed at 1544117080", "pins:update epoch")
}

// copyMirror unpacks a fresh copy of the mirror for tampering.
func copyMirror(t *testing.T) string { return testenv.UnpackRealUpstream(t) }

// TestRealLockGitlinkMoved: a mirror copy where the superproject's commit
// was rewritten so its openlibm gitlink points elsewhere (the lock pins
// the rewritten superproject, openlibm unchanged): the fetch fails naming
// openlibm and both commits, and leaves no tree.
func TestRealLockGitlinkMoved(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	mirror := copyMirror(t)
	l := realLock(t)
	root := l.Root()
	ol, _ := l.Source("openlibm")
	olRepo := filepath.Join(mirror, "git", "openlibm.git")
	moved := gitEnv(t, olRepo, nil, "commit-tree", "-p", ol.Commit, "-m", "moved", ol.Commit+"^{tree}")
	gitOut(t, olRepo, "update-ref", "refs/pins/"+moved, moved)
	hv := filepath.Join(mirror, "git", "halvm.git")
	index := filepath.Join(t.TempDir(), "index")
	withIndex := func(args ...string) string { return gitEnv(t, hv, []string{"GIT_INDEX_FILE=" + index}, args...) }
	withIndex("read-tree", root.Commit)
	withIndex("update-index", "--cacheinfo", "160000,"+moved+",src/openlibm")
	tree := withIndex("write-tree")
	rewritten := gitEnv(t, hv, nil, "commit-tree", "-p", root.Commit, "-m", "openlibm moved", tree)
	gitOut(t, hv, "update-ref", "refs/pins/"+rewritten, rewritten)

	tampered := *l
	tampered.Sources = append([]pins.Source(nil), l.Sources...)
	for i := range tampered.Sources {
		if tampered.Sources[i].IsRoot() {
			tampered.Sources[i].Commit = rewritten
		}
	}
	dest := filepath.Join(t.TempDir(), "src")
	_, err := sources.Fetch(context.Background(), &tampered, dest, sources.Options{CacheDir: t.TempDir(), MirrorDir: mirror})
	wantErr(t, err, "src/openlibm: the gitlink in halvm records "+moved+" but the lock pins "+ol.Commit, `(sources "openlibm")`)
	if sources.OnlyGaps(err) {
		t.Error("a moved gitlink was reported as a mere gap")
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("a tree was left behind although a gitlink moved")
	}
}

// TestRealLockPinnedCommitMissing: a mirror copy without minlibc's pinned
// commit (ref and objects deleted): the fetch fails naming minlibc and the
// commit.
func TestRealLockPinnedCommitMissing(t *testing.T) {
	testenv.NeedCommand(t, "git", "git")
	mirror := copyMirror(t)
	l := realLock(t)
	mc, _ := l.Source("minlibc")
	repo := filepath.Join(mirror, "git", "minlibc.git")
	gitOut(t, repo, "update-ref", "-d", "refs/pins/"+mc.Commit)
	gitOut(t, repo, "reflog", "expire", "--expire=now", "--all")
	gitOut(t, repo, "gc", "-q", "--prune=now")
	if _, err := run.Output(context.Background(), run.Cmd{Args: []string{"git", "cat-file", "-e", mc.Commit}, Dir: repo, Env: run.BaseEnv()}); err == nil {
		t.Fatal("the commit is still in the mirror copy")
	}
	dest := filepath.Join(t.TempDir(), "src")
	_, err := sources.Fetch(context.Background(), l, dest, sources.Options{CacheDir: t.TempDir(), MirrorDir: mirror})
	wantErr(t, err, "fetching minlibc", mc.Commit)
	if sources.OnlyGaps(err) {
		t.Error("a missing pinned commit was reported as a mere gap")
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("a tree was left behind although a pinned commit is missing")
	}
}

// gitEnv runs git with a fixed identity and date, and extra variables.
func gitEnv(t *testing.T, dir string, extra []string, args ...string) string {
	t.Helper()
	env := run.BaseEnv(append([]string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=tamper", "GIT_AUTHOR_EMAIL=tamper@example.invalid", "GIT_AUTHOR_DATE=@1544117080 +0000",
		"GIT_COMMITTER_NAME=tamper", "GIT_COMMITTER_EMAIL=tamper@example.invalid", "GIT_COMMITTER_DATE=@1544117080 +0000"}, extra...)...)
	out, err := run.Output(context.Background(), run.Cmd{Args: append([]string{"git"}, args...), Dir: dir, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func firstKeys(m map[string]string, n int) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}
