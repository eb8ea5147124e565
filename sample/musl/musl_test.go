package musl

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/testenv"
)

func TestDebSrcLines(t *testing.T) {
	conf := fstest.MapFS{
		"sources.list":                        {Data: []byte("# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\ndeb http://m.example/debian bullseye main\n")},
		"sources.list.d/debian.sources":       {Data: []byte("Types: deb\nURIs: http://a.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://a.example/debian-security\nSuites: bookworm-security\nComponents: main\n")},
		"sources.list.d/off.sources.disabled": {Data: []byte("Types: deb\nURIs: http://off.example\nSuites: bookworm\nComponents: main\n")},
	}
	got, err := DebSrcLines(conf, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"deb-src [signed-by=/k.gpg] http://m.example/debian bookworm main contrib",
		"deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://a.example/debian bookworm main",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := DebSrcLines(fstest.MapFS{}, "bookworm"); err == nil || !strings.Contains(err.Error(), "bookworm") {
		t.Fatalf("empty config: err = %v", err)
	}
}

// TestFetchLibm fetches the pinned source package (once; then from the
// cache) and checks the libm tree it exposes.
func TestFetchLibm(t *testing.T) {
	testenv.NeedCommand(t, "dpkg-dev", "dpkg-source")
	testenv.NeedCommand(t, "apt", "apt-get")
	paths, err := Fetch(context.Background(), Options{CacheDir: rootfstest.CacheDir()})
	if errors.Is(err, ErrUnreachable) {
		testenv.Unavailable(t, err.Error(), "network access to the Debian mirror configured in /etc/apt")
	}
	if err != nil {
		t.Fatal(err)
	}
	libm, err := Libm(paths[Orig], time.Unix(1544054400, 0))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fs.WalkDir(libm, "src/math", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".c") {
			n++
		}
		return err
	})
	if n < 200 {
		t.Fatalf("only %d C files under src/math", n)
	}
	for _, p := range []string{"COPYRIGHT", "src/internal/libm.h", "arch/x86_64/bits/alltypes.h.in", "tools/mkalltypes.sed", "include/math.h"} {
		if _, err := fs.Stat(libm, p); err != nil {
			t.Errorf("libm tree lacks %s", p)
		}
	}
}

// TestFetchRefusesOtherBytes: a pin that does not match what the mirror
// serves fails the fetch and caches nothing.
func TestFetchRefusesOtherBytes(t *testing.T) {
	testenv.NeedCommand(t, "dpkg-dev", "dpkg-source")
	saved := append([]File(nil), Files...)
	defer func() { Files = saved }()
	Files[0].SHA256 = strings.Repeat("0", 64)
	cache := t.TempDir()
	_, err := Fetch(context.Background(), Options{CacheDir: cache})
	if errors.Is(err, ErrUnreachable) {
		testenv.Unavailable(t, err.Error(), "network access to the Debian mirror configured in /etc/apt")
	}
	if err == nil || !strings.Contains(err.Error(), "musl_1.2.3-1.dsc: sha256 243a7462") || !strings.Contains(err.Error(), "other bytes than the pin") {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "files", "sha256")); len(ents) != 0 {
		t.Errorf("a failed fetch cached %d files", len(ents))
	}
}
