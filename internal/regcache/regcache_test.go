package regcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/regcache/regtest"
)

const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func newCache(t *testing.T, ref string) (*regcache.Cache, *bytes.Buffer) {
	t.Helper()
	var warn bytes.Buffer
	c, err := regcache.New(ref, &warn)
	if err != nil {
		t.Fatal(err)
	}
	return c, &warn
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snap.tar")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStepRoundTripCorruptionAndConcurrency(t *testing.T) {
	srv := regtest.Start(t)
	ctx := context.Background()
	ref := srv.Addr + "/halvm/cache"
	a, warnA := newCache(t, ref)
	content := strings.Repeat("step output ", 1000)
	if err := a.PushStep(ctx, key, "stage1", []byte(`{"step":"stage1"}`), writeFile(t, content)); err != nil {
		t.Fatalf("push: %v (%s)", err, warnA)
	}
	if a.Pushed() < int64(len(content)) {
		t.Errorf("pushed %d bytes, want at least %d", a.Pushed(), len(content))
	}
	// A second cache (another process's) pulls it.
	b, warnB := newCache(t, ref)
	if !b.HasStep(ctx, key) {
		t.Fatal("HasStep: false after a push")
	}
	dst := filepath.Join(t.TempDir(), "got.tar")
	meta, found, err := b.PullStep(ctx, key, dst)
	if err != nil || !found || string(meta) != `{"step":"stage1"}` {
		t.Fatalf("pull: found=%v meta=%q err=%v (%s)", found, meta, err, warnB)
	}
	if got, _ := os.ReadFile(dst); string(got) != content || b.Pulled() < int64(len(content)) {
		t.Fatalf("pulled %d bytes (counted %d), want the pushed content", len(got), b.Pulled())
	}
	if _, found, _ := b.PullStep(ctx, strings.Repeat("f", 64), dst); found {
		t.Fatal("an absent key was found")
	}

	// (b) a damaged blob in the registry's storage: discarded, warned, not written.
	_, sum, _ := fsutil.HashFile(dst)
	blob := srv.BlobPath("sha256:" + sum)
	if err := os.WriteFile(blob, []byte(strings.Repeat("POISONED!!!!", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, warnC := newCache(t, ref)
	dst2 := filepath.Join(t.TempDir(), "got.tar")
	_, found, err = c.PullStep(ctx, key, dst2)
	if found || !errors.Is(err, regcache.ErrCorrupt) {
		t.Fatalf("damaged blob: found=%v err=%v, want ErrCorrupt", found, err)
	}
	if !strings.Contains(warnC.String(), "discarded") || !strings.Contains(warnC.String(), "does not match its digest") {
		t.Errorf("warning: %q", warnC)
	}
	if _, err := os.Stat(dst2); !os.IsNotExist(err) {
		t.Error("a damaged entry was written to the local cache")
	}
	if c.Down() != nil {
		t.Errorf("a damaged entry made the registry unusable: %v", c.Down())
	}

	// (c) two pushers of one key at once, different content (a rebuild is
	// not always byte-identical): one valid entry remains.
	k2 := strings.Repeat("e", 64)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	contents := []string{strings.Repeat("one ", 50000), strings.Repeat("two ", 50000)}
	for i := range 2 {
		wg.Add(1)
		p := writeFile(t, contents[i])
		go func() {
			defer wg.Done()
			cc, _ := newCache(t, ref)
			errs[i] = cc.PushStep(ctx, k2, "racy", []byte(fmt.Sprintf(`{"n":%d}`, i)), p)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent pushes: %v / %v", errs[0], errs[1])
	}
	d, _ := newCache(t, ref)
	meta, found, err = d.PullStep(ctx, k2, dst2)
	got, _ := os.ReadFile(dst2)
	if err != nil || !found || !(string(meta) == `{"n":0}` && string(got) == contents[0] || string(meta) == `{"n":1}` && string(got) == contents[1]) {
		t.Fatalf("after concurrent pushes: found=%v meta=%q err=%v: want one whole entry", found, meta, err)
	}
}

func TestInputAndRegistryDown(t *testing.T) {
	srv := regtest.Start(t)
	ctx := context.Background()
	ref := srv.Addr + "/halvm/inputs"
	a, _ := newCache(t, ref)
	p := writeFile(t, "an input")
	size, sum, _ := fsutil.HashFile(p)
	if err := a.PushInput(ctx, sum, size, "file x", p); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), sum)
	if found, err := a.PullInput(ctx, sum, dst); !found || err != nil {
		t.Fatalf("input: found=%v err=%v", found, err)
	}
	srv.Stop()
	down, warn := newCache(t, ref)
	if found, err := down.PullInput(ctx, sum, dst+"2"); found || err != nil {
		t.Fatalf("registry down: found=%v err=%v, want a plain miss", found, err)
	}
	if err := down.PushInput(ctx, sum, size, "file x", p); err == nil {
		t.Fatal("push to a stopped registry: no error")
	}
	if n := strings.Count(warn.String(), "warning:"); n != 1 || !strings.Contains(warn.String(), "carrying on with the local cache only") {
		t.Fatalf("want exactly one warning, got %d: %q", n, warn)
	}
}

func TestNewRefusesTagsAndTags(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:5000/x:tag", "127.0.0.1:5000/x@sha256:" + key, "Bad Name"} {
		if _, err := regcache.New(bad, nil); err == nil {
			t.Errorf("New(%q): no error", bad)
		}
	}
	if got := regcache.StepTag(key); got != "step-"+key {
		t.Errorf("StepTag = %q", got)
	}
	if got := regcache.StepTag("not hex"); len(got) != 5+64 {
		t.Errorf("StepTag of a non-hex key = %q", got)
	}
}
