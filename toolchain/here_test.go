package toolchain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHereOnTheRealLock: with only the git sources available (a mirror
// holding git/<source>.git, as the real upstream's does), the checkout and
// autoconf can run; bootstrap-ghc and tools cannot, naming the missing
// bindist and the pending cabal-install; the C steps cannot only because of
// configure (their own commands need no GHC); ghc-configure and later steps
// run the GHC.
func TestHereOnTheRealLock(t *testing.T) {
	c := goldenConfig(t, "halvm")
	c.CacheDir = t.TempDir()
	c.FileCacheDir = filepath.Join(c.CacheDir, "inputs")
	c.Mirror = t.TempDir()
	for _, s := range c.Lock.Sources {
		if err := os.MkdirAll(filepath.Join(c.Mirror, "git", s.Name+".git"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRecipe(c, Host{FilePrefixMap: true, Fingerprint: "test"})
	if err != nil {
		t.Fatal(err)
	}
	here := map[string]Here{}
	for _, h := range r.Here() {
		here[h.Step] = h
	}
	for _, s := range []string{"prepare-sources", "autoconf"} {
		if !here[s].Can {
			t.Errorf("%s cannot run: %s", s, here[s].Why)
		}
	}
	if h := here["bootstrap-ghc"]; h.Can || !strings.Contains(h.Why, "file ghc-8.0.2-x86_64-deb8-linux is not in the cache") {
		t.Errorf("bootstrap-ghc: %+v", h)
	}
	if h := here["tools"]; h.Can || !strings.Contains(h.Why, "file cabal-install is pending") {
		t.Errorf("tools: %+v", h)
	}
	for _, s := range []string{"configure", "openlibm", "libIVC", "start.o", "mkrenddir", "convert-profile"} {
		if h := here[s]; h.Can || !h.OwnCommandsNeedNoGHC {
			t.Errorf("%s: %+v, want cannot run only because of the steps before it", s, h)
		}
	}
	for _, s := range []string{"ghc-configure", "stage1-compiler", "rts-v", "libraries", "install", "recache"} {
		if h := here[s]; h.Can || h.OwnCommandsNeedNoGHC {
			t.Errorf("%s: %+v, want cannot run (it runs the GHC)", s, h)
		}
	}
	if s, ok := r.FirstStepNeedingGHC("bootstrap-ghc", "tools"); !ok || s.Name != "ghc-configure" {
		t.Errorf("first step needing the GHC after the stand-ins: %q", s.Name)
	}
}
