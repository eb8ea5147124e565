package pins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// gitRepo makes a repository with two commits on branch main (the second
// at a fixed time) and a tag v1 on the first; it returns its file URL and
// both commits.
func gitRepo(t *testing.T) (url, first, second string) {
	testenv.NeedCommand(t, "git", "git")
	dir := t.TempDir()
	env := run.BaseEnv("GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE=@1544054400 +0000", "GIT_COMMITTER_DATE=@1544054400 +0000")
	git := func(args ...string) string {
		out, err := run.Output(context.Background(), run.Cmd{Args: append([]string{"git", "-C", dir}, args...), Env: env})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("commit", "-q", "--allow-empty", "-m", "one")
	first = git("rev-parse", "HEAD")
	git("tag", "-a", "-m", "v1", "v1")
	env = run.Merge(env, "GIT_COMMITTER_DATE=@1544140800 +0000")
	git("commit", "-q", "--allow-empty", "-m", "two")
	second = git("rev-parse", "HEAD")
	return "file://" + dir, first, second
}

func TestUpdateWithRealResolvers(t *testing.T) {
	url, first, second := gitRepo(t)
	payload := []byte("cabal-install bytes")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer srv.Close()

	l := &Lock{
		Release:  Release{Name: "HaLVM", Version: "2.4.3", SourceDateEpoch: 1, EpochNote: "x", Homepage: "https://example.org", License: "BSD-3-Clause", Suite: "bookworm"},
		Flavours: []Flavour{{Name: "halvm", IntegerLibrary: "integer-simple", Description: "x"}},
		Sources:  []Source{{Name: "halvm", Path: ".", URL: url, Commit: first}},
		Files: []File{
			{Name: "ghc", Role: RoleBootstrapGHC, Version: "8.0.2", URL: srv.URL + "/ghc", Size: 1, SHA256: strings.Repeat("a", 64)},
			{Name: "cabal-install", Role: RoleTool, Version: "1.24.0.2", URL: srv.URL + "/cabal", Pending: "unknown"},
		},
	}
	n, err := Update(context.Background(), l, HostResolver{}, []string{"source:halvm@main", "file:cabal-install", "epoch"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Root().Commit != second || l.Root().Commit != first {
		t.Fatalf("source:halvm@main gave %s (old lock changed: %v)", n.Root().Commit, l.Root().Commit != first)
	}
	cabal, _ := n.File("cabal-install")
	sum := sha256.Sum256(payload)
	if cabal.Pending != "" || cabal.Size != int64(len(payload)) || cabal.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("cabal-install = %+v", cabal)
	}
	if n.Release.SourceDateEpoch != 1544140800 {
		t.Fatalf("epoch = %d, want the committer time of %s", n.Release.SourceDateEpoch, second)
	}
	// An annotated tag pins the commit it points at.
	if c, err := (HostResolver{}).ResolveRef(context.Background(), url, "v1"); err != nil || c != first {
		t.Fatalf("tag v1 = %s, %v", c, err)
	}
	diff, err := Diff(context.Background(), l, n)
	if err != nil || !strings.Contains(diff, "-commit = \""+first) || !strings.Contains(diff, "+commit = \""+second) {
		t.Fatalf("diff:\n%s\nerr %v", diff, err)
	}
}

func TestUpdateReportsEveryFailedRequest(t *testing.T) {
	url, first, _ := gitRepo(t)
	l := &Lock{Sources: []Source{{Name: "halvm", Path: ".", URL: url, Commit: first}}}
	_, err := Update(context.Background(), l, HostResolver{}, []string{"source:halvm@no-such-branch", "file:nope", "bogus", "deb:nothing"})
	if err == nil {
		t.Fatal("bad requests accepted")
	}
	for _, w := range []string{`has no branch or tag "no-such-branch"`, `no file "nope" is pinned`, "bogus: unknown request", `no Debian package "nothing" is pinned`, "4 request(s) failed"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestResolveDebWithAptCache(t *testing.T) {
	testenv.NeedCommand(t, "apt", "apt-cache")
	// The one missing prerequisite is apt's package lists; with them, any
	// failure is a fault.
	if lists, _ := filepath.Glob("/var/lib/apt/lists/*_Packages*"); len(lists) == 0 {
		testenv.Unavailable(t, "apt has no package lists in /var/lib/apt/lists", "run apt-get update")
	}
	d, err := HostResolver{}.ResolveDeb(context.Background(), "make", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "make" || d.Arch != "amd64" || !strings.HasPrefix(d.Filename, "pool/") || d.Size <= 0 || len(d.SHA256) != 64 {
		t.Fatalf("make = %+v", d)
	}
}

func TestParseAptStanza(t *testing.T) {
	d, err := ParseAptStanza([]byte("Package: perl\nVersion: 5.36.0-7+deb12u4\nArchitecture: amd64\nFilename: pool/updates/main/p/perl/perl_5.36.0-7+deb12u4_amd64.deb\nSize: 239392\nSHA256: 67e7a883c5d835939638f89a750799282df243ac1446281aa92ef9e19300940b\nDescription: x\n multi\n\nPackage: other\n"))
	if err != nil || d.Archive != "debian-security" || d.Size != 239392 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := ParseAptStanza([]byte("Package: x\n")); err == nil {
		t.Fatal("incomplete record accepted")
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "none.lock"))
	if err == nil || !strings.Contains(err.Error(), "pins:update") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestUpdateKeepsAPublishedSHA256: file:NAME on a file pinned by a
// published sha256 (size not yet known) records the size when the download
// matches, and refuses a download with another sha256.
func TestUpdateKeepsAPublishedSHA256(t *testing.T) {
	payload := []byte("happy 1.19.12 bytes")
	sum := sha256.Sum256(payload)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer srv.Close()
	l := &Lock{
		Release:  Release{Name: "HaLVM", Version: "2.4.3", SourceDateEpoch: 1, EpochNote: "x", Homepage: "https://example.org", License: "BSD-3-Clause", Suite: "bookworm"},
		Flavours: []Flavour{{Name: "halvm", IntegerLibrary: "integer-simple", Description: "x"}},
		Sources:  []Source{{Name: "halvm", Path: ".", URL: "https://example.org/halvm", Commit: strings.Repeat("c", 40)}},
		Files: []File{
			{Name: "happy", Role: RoleTool, Version: "1.19.12", URL: srv.URL + "/happy.tar.gz", SHA256: hex.EncodeToString(sum[:])},
			{Name: "ghc", Role: RoleBootstrapGHC, Version: "8.0.2", URL: srv.URL + "/ghc", Size: 1, SHA256: strings.Repeat("a", 64)},
		},
	}
	n, err := Update(context.Background(), l, HostResolver{}, []string{"file:happy"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Files[0].Size != int64(len(payload)) || n.Files[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Update = %+v, %v", n.Files, err)
	}
	l.Files[0].SHA256 = strings.Repeat("b", 64)
	_, err = Update(context.Background(), l, HostResolver{}, []string{"file:happy"})
	if err == nil || !strings.Contains(err.Error(), "the lock pins "+strings.Repeat("b", 64)) {
		t.Fatalf("a download with another sha256 was recorded: %v", err)
	}
}
