package toolchain

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
	"github.com/halvm/halvm-release/sample/musl"
	"github.com/halvm/halvm-release/sample/upstream"
	"github.com/halvm/halvm-release/sources"
)

// testCache is the download cache shared by test runs (see
// rootfstest.CacheDir).
func testCache(testing.TB) string { return rootfstest.CacheDir() }

// sampleUpstream generates the sample upstream (musl's libm and pvrt
// overlaid) with the tool packages of the real lock pinned.
func sampleUpstream(t testing.TB, dir string) *pins.Lock {
	t.Helper()
	testenv.NeedCommand(t, "dpkg-dev", "dpkg-source")
	real, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := musl.Fetch(context.Background(), musl.Options{CacheDir: testCache(t)}); errors.Is(err, musl.ErrUnreachable) {
		testenv.Unavailable(t, err.Error(), "network access to the Debian mirror (apt sources) and dpkg-dev")
	} else if err != nil {
		t.Fatal(err)
	}
	up, err := upstream.Generate(context.Background(), dir, upstream.Options{CacheDir: testCache(t), ToolDebs: real.DebsWithRole(pins.RoleTool)})
	if err != nil {
		t.Fatal(err)
	}
	return up.Lock
}

// TestFetchFromMirror: with every pinned URL dead, the mirror option (a
// directory as sources.ExportMirror writes it) supplies the inputs, still
// checked against the pins; without it the fetch fails with the remedy.
func TestFetchFromMirror(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	l := sampleUpstream(t, filepath.Join(base, "up"))
	filled := filepath.Join(base, "cache")
	if _, err := Fetch(ctx, Config{Lock: l, Flavour: "halvm", CacheDir: filled, FileCacheDir: filled}); err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(base, "mirror")
	if err := sources.ExportMirror(ctx, l, sources.Options{CacheDir: filled}, mirror); err != nil {
		t.Fatal(err)
	}
	dead := *l
	dead.Sources, dead.Files = nil, nil
	for _, s := range l.Sources {
		s.URL = "https://unreachable.invalid/" + s.Name
		dead.Sources = append(dead.Sources, s)
	}
	for _, f := range l.Files {
		f.URL = "https://unreachable.invalid/files/" + path.Base(f.URL)
		dead.Files = append(dead.Files, f)
	}
	dead.Rewrites = []pins.Rewrite{{From: "git://" + sample.Host + "/", To: "https://unreachable.invalid/"}}
	fresh := filepath.Join(base, "fresh")
	_, err := Fetch(ctx, Config{Lock: &dead, Flavour: "halvm", CacheDir: fresh})
	if !errors.Is(err, ErrInputsUnreachable) || !strings.Contains(err.Error(), "remedy:") {
		t.Fatalf("dead URLs without a mirror: err = %v", err)
	}
	if _, err := Fetch(ctx, Config{Lock: &dead, Flavour: "halvm", CacheDir: fresh, Mirror: mirror}); err != nil {
		t.Fatalf("fetching from the mirror: %v", err)
	}
	// A mirror serving other bytes is refused.
	f0 := dead.Files[0]
	os.WriteFile(filepath.Join(mirror, "files", path.Base(f0.URL)), []byte("other bytes"), 0o644)
	_, err = Fetch(ctx, Config{Lock: &dead, Flavour: "halvm", CacheDir: filepath.Join(base, "bad"), Mirror: mirror})
	if !errors.Is(err, ErrInputsUnreachable) || !strings.Contains(err.Error(), f0.Name) {
		t.Fatalf("a mirror with other bytes: err = %v", err)
	}
}
