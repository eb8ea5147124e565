package debian

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
)

// TestAptInstallsFromRepository is the real client check: a clean Debian
// 12 rootfs configured exactly as the README tells users (key in
// /etc/apt/keyrings, deb822 snippet with Signed-By), the tree served over
// HTTP on 127.0.0.1. A wrong key, tampered indexes and a tampered .deb are
// refused; the genuine tree installs, with several versions to choose from.
func TestAptInstallsFromRepository(t *testing.T) {
	root := rootfstest.New(t) // needs root and mmdebstrap; skips or fails the testenv way
	key, other := testKeys(t)
	h1, h2, doc := testDebs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	url := "http://" + ln.Addr().String() + "/apt"
	var served atomic.Value // directory being served
	srv := &http.Server{Handler: http.StripPrefix("/apt", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.FileServer(http.Dir(served.Load().(string))).ServeHTTP(w, r)
	}))}
	go srv.Serve(ln)
	defer srv.Close()

	good := filepath.Join(t.TempDir(), "good")
	_, err = Write(good, Input{Repo: testRepo(url), Key: key, Debs: []string{h1, h2, doc}})
	must(t, err)
	badIndex := copyTree(t, good)
	for _, pat := range []string{"Packages*", "by-hash/SHA256/*"} {
		m, _ := filepath.Glob(filepath.Join(badIndex, "dists/stable/main/binary-amd64", pat))
		for _, f := range m {
			if !strings.HasSuffix(f, "/Release") {
				flip(t, f)
			}
		}
	}
	badSig := copyTree(t, good)
	inRel := filepath.Join(badSig, "dists/stable/InRelease")
	b, err := os.ReadFile(inRel)
	must(t, err)
	must(t, os.WriteFile(inRel, bytes.Replace(b, []byte("Label: HaLVM"), []byte("Label: Evil!"), 1), 0o644))
	badDeb := copyTree(t, good)
	flip(t, filepath.Join(badDeb, "pool/main/h/halvm-hello/halvm-hello_1.1-1_amd64.deb"))
	served.Store(good)

	// The README's steps, with Go's HTTP client standing in for curl.
	fetch := func(name, dst string) {
		t.Helper()
		resp, err := http.Get(url + "/" + name)
		must(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", name, resp.Status)
		}
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, dst)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, dst), b, 0o644))
	}
	repo := testRepo(url)
	// Only our repository: nothing else is downloaded.
	must(t, os.Remove(filepath.Join(root, "etc/apt/sources.list")))
	fetch(repo.KeyringFile(), repo.KeyringPath())
	fetch(repo.SourcesFile(), repo.SourcesPath())

	apt := func(args ...string) (string, error) {
		var out lockedBuffer // stdout and stderr are copied by two goroutines
		err := rootfs.Run(ctx, root, run.Cmd{Args: args, Stdout: &out, Stderr: &out})
		t.Logf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		return out.String(), err
	}
	resetLists := func() {
		t.Helper()
		if out, err := apt("sh", "-c", "rm -rf /var/lib/apt/lists/* && apt-get clean"); err != nil {
			t.Fatalf("resetting apt state: %v\n%s", err, out)
		}
	}

	t.Run("wrong key", func(t *testing.T) {
		must(t, os.WriteFile(filepath.Join(root, repo.KeyringPath()), other.PublicBinary(), 0o644))
		defer fetch(repo.KeyringFile(), repo.KeyringPath())
		resetLists()
		out, err := apt("apt-get", "update")
		if err == nil {
			t.Fatalf("apt-get update succeeded with the wrong key:\n%s", out)
		}
		if !strings.Contains(out, "NO_PUBKEY "+key.KeyID()) || !strings.Contains(out, "is not signed") {
			t.Errorf("apt-get update failed, but not with NO_PUBKEY %s / not signed:\n%s", key.KeyID(), out)
		}
	})

	t.Run("tampered InRelease", func(t *testing.T) {
		served.Store(badSig)
		defer served.Store(good)
		resetLists()
		out, err := apt("apt-get", "update")
		if err == nil {
			t.Fatalf("apt-get update accepted a tampered InRelease:\n%s", out)
		}
		if !strings.Contains(out, "BADSIG "+key.KeyID()) {
			t.Errorf("apt-get update failed, but not with BADSIG %s:\n%s", key.KeyID(), out)
		}
	})

	t.Run("tampered Packages", func(t *testing.T) {
		served.Store(badIndex)
		defer served.Store(good)
		resetLists()
		out, err := apt("apt-get", "update")
		if err == nil {
			t.Fatalf("apt-get update accepted tampered indexes:\n%s", out)
		}
		if !strings.Contains(out, "Hash Sum mismatch") {
			t.Errorf("apt-get update failed, but not with a hash mismatch:\n%s", out)
		}
	})

	t.Run("tampered deb", func(t *testing.T) {
		served.Store(badDeb)
		defer served.Store(good)
		resetLists()
		if out, err := apt("apt-get", "update"); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		}
		out, err := apt("apt-get", "install", "-y", "halvm-hello")
		if err == nil {
			t.Fatalf("apt-get install accepted a tampered .deb:\n%s", out)
		}
		if !strings.Contains(out, "Hash Sum mismatch") {
			t.Errorf("apt-get install failed, but not with a hash mismatch:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/share/halvm-hello/payload")); err == nil {
			t.Error("the tampered package got installed")
		}
	})

	t.Run("install", func(t *testing.T) {
		resetLists()
		if out, err := apt("apt-get", "update"); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		} else if strings.Contains(out, "W: ") {
			t.Errorf("apt-get update warned:\n%s", out)
		}
		if out, err := apt("apt-get", "install", "-y", "halvm-hello", "halvm-doc"); err != nil {
			t.Fatalf("apt-get install: %v\n%s", err, out)
		}
		payload := func() string {
			b, _ := os.ReadFile(filepath.Join(root, "usr/share/halvm-hello/payload"))
			return string(b)
		}
		if got := payload(); got != "hello two\n" {
			t.Errorf("installed payload %q, want the newest version's", got)
		}
		out, err := apt("dpkg-query", "-W", "halvm-hello", "halvm-doc")
		if err != nil || out != "halvm-doc\t1.0-1\nhalvm-hello\t1.1-1\n" {
			t.Errorf("dpkg-query: %v\n%s", err, out)
		}
		// The older version is still in the archive and installable.
		if out, err := apt("apt-get", "install", "-y", "--allow-downgrades", "halvm-hello=1.0-1"); err != nil {
			t.Fatalf("installing the older version: %v\n%s", err, out)
		}
		if got := payload(); got != "hello one\n" {
			t.Errorf("after downgrade payload %q", got)
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
