package sources_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAptArchives(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), `# old style
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian bookworm main
deb-src http://src.example/debian bookworm main
`)
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/a-disabled.sources"), `Types: deb
URIs: http://disabled.example/debian-security
Suites: bookworm-security
Components: main
Enabled: no
`)
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/b.sources"), `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://two.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs:
 http://snapshot.example/archive/debian-security/20250520T000000Z/
Suites: bookworm-security
Components: main
`)
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/c.list"), "deb http://three.example/debian-security bookworm-security main\n")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/other.sources"), "Types: deb\nURIs: https://example.org/halvm\nSuites: stable\nComponents: main\n")
	got, err := sources.AptArchives(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"debian":          "http://one.example/debian", // sources.list is read first
		"debian-security": "http://snapshot.example/archive/debian-security/20250520T000000Z",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AptArchives = %v, want %v", got, want)
	}

	_, err = sources.AptArchives(t.TempDir())
	wantErr(t, err, "no Debian archive", "Debian mirror option")
}

// TestAptArchivesOfThisMachine reads the real apt configuration: the
// machines this project builds on are Debian.
func TestAptArchivesOfThisMachine(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/etc/apt"); err != nil {
		testenv.Unavailable(t, "no /etc/apt: not a Debian machine", "run the tests on Debian 12 (CI does)")
	}
	got, err := sources.AptArchives("/")
	if err != nil {
		t.Fatal(err)
	}
	if got["debian"] == "" {
		t.Errorf("no debian archive in this machine's apt sources: %v", got)
	}
}

// debMirror serves a fake Debian archive over http and configures apt
// sources (below a root) pointing at it.
func debMirror(t *testing.T) (deb pins.Deb, data []byte, dir, aptRoot string, srv *httptest.Server) {
	t.Helper()
	dir = t.TempDir()
	data = []byte("!<arch>\nnot really a deb, but pinned bytes all the same\n")
	sum := sha256.Sum256(data)
	deb = pins.Deb{Name: "hello", Version: "1:2.10-3", Arch: "amd64", Role: pins.RoleBuildEnv, Archive: "debian-security",
		Filename: "pool/updates/main/h/hello/hello_2.10-3_amd64.deb", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	writeFile(t, filepath.Join(dir, "debian-security", deb.Filename), string(data))
	srv = httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	aptRoot = t.TempDir()
	writeFile(t, filepath.Join(aptRoot, "etc/apt/sources.list.d/debian.sources"),
		"Types: deb\nURIs: "+srv.URL+"/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: "+srv.URL+"/debian-security\nSuites: bookworm-security\nComponents: main\n")
	return deb, data, dir, aptRoot, srv
}

func TestFetchDebsFromAptConfig(t *testing.T) {
	t.Parallel()
	deb, _, dir, aptRoot, srv := debMirror(t)
	cache := t.TempDir()
	ledger := &pipeline.Ledger{}
	res, err := sources.FetchDebs(context.Background(), []pins.Deb{deb}, sources.Options{CacheDir: cache, AptRoot: aptRoot, Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].URL != srv.URL+"/debian-security/"+deb.Filename || res[0].Path != filepath.Join(cache, "sha256", deb.SHA256) {
		t.Fatalf("result %+v", res)
	}
	a := ledger.Find(pipeline.KindSource, "")
	if len(a) != 1 || a[0].Name != "deb:hello_1:2.10-3_amd64" || a[0].Path != "debian-security/"+deb.Filename || a[0].SHA256 != deb.SHA256 {
		t.Errorf("ledger %+v", a)
	}
	// Explicit mirror option, and the cache makes the second fetch offline.
	srv.Close()
	res, err = sources.FetchDebs(context.Background(), []pins.Deb{deb}, sources.Options{CacheDir: cache, DebArchives: sources.DebMirror("http://127.0.0.1:9")})
	if err != nil || !res[0].Cached {
		t.Fatalf("cached fetch: %+v %v", res, err)
	}

	// The archive's copy is tampered with: refused, nothing kept.
	if err := os.WriteFile(filepath.Join(dir, "debian-security", deb.Filename), []byte(strings.Repeat("x", int(deb.Size))), 0o644); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv2.Close()
	cache2 := t.TempDir()
	_, err = sources.FetchDebs(context.Background(), []pins.Deb{deb}, sources.Options{CacheDir: cache2, DebArchives: sources.DebMirror(srv2.URL)})
	wantErr(t, err, "Debian package hello_1:2.10-3_amd64", srv2.URL+"/debian-security/"+deb.Filename, "the lock pins "+deb.SHA256)
	fx := &fixture{cache: cache2, work: t.TempDir()}
	fx.assertNothingLeft(t)

	// An archive apt does not know is named.
	_, err = sources.FetchDebs(context.Background(), []pins.Deb{deb}, sources.Options{CacheDir: cache2, DebArchives: map[string]string{"debian": srv2.URL}})
	wantErr(t, err, "no URI for archive(s) [debian-security]")
}

// TestFetchRealDeb fetches one small package the real lock pins (gcc, 5 kB)
// from the Debian mirror in this machine's apt configuration: the same
// path a release takes. The download is cached under HALVM_TEST_CACHE.
func TestFetchRealDeb(t *testing.T) {
	t.Parallel()
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	var gcc []pins.Deb
	for _, d := range l.DebsWithRole(pins.RoleBuildEnv) {
		if d.Name == "gcc" {
			gcc = append(gcc, d)
		}
	}
	if len(gcc) != 1 {
		t.Fatalf("the lock pins %d gcc packages for the build environment, want 1", len(gcc))
	}
	if _, err := os.Stat("/etc/apt"); err != nil {
		testenv.Unavailable(t, "no /etc/apt: not a Debian machine", "run the tests on Debian 12 (CI does)")
	}
	res, err := sources.FetchDebs(context.Background(), gcc, sources.Options{CacheDir: filepath.Join(rootfstest.CacheDir(), "sources")})
	var nerr net.Error
	if errors.As(err, &nerr) {
		testenv.Unavailable(t, "the Debian mirror is unreachable: "+err.Error(), "allow access to the mirror in /etc/apt/sources.list.d")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s (cached: %v)", res[0].Name, res[0].URL, res[0].Cached)
}
