package sources_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
	"github.com/halvm/halvm-release/sources"
)

// A rebuild checks before building which pinned inputs it cannot reach:
// neither in its input cache nor fetchable. Each is named; what is cached
// or answers is not.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sample.Options{})
	ctx := context.Background()
	names := func(gs []sources.Gap) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Input)
		}
		sort.Strings(out)
		return out
	}
	// Nothing cached, everything upstream answers: nothing unreachable.
	gs, fetch := sources.Unreachable(ctx, fx.u.Lock, fx.opts())
	if len(gs) != 0 || len(fetch) != len(sources.InputNames(fx.u.Lock)) {
		t.Fatalf("a reachable upstream, nothing cached: unreachable %v, to fetch %v", gs, fetch)
	}
	// Everything cached, upstream gone, one more file pinned at a URL
	// that does not answer: that file alone.
	if _, _, err := fx.fetch(t, fx.u.Lock, fx.opts()); err != nil {
		t.Fatal(err)
	}
	fx.takeOriginAway(t)
	l := *fx.u.Lock
	l.Files = append(append([]pins.File(nil), l.Files...), pins.File{Name: "unreachable-tool", Role: "tool", Version: "1",
		URL: "http://127.0.0.1:1/unreachable-tool-1.tar.gz", Size: 10, SHA256: strings.Repeat("d", 64)})
	gs, fetch = sources.Unreachable(ctx, &l, fx.opts())
	if len(fetch) != 0 {
		t.Errorf("everything is cached, yet to fetch: %v", fetch)
	}
	if got := names(gs); strings.Join(got, " ") != "file:unreachable-tool" {
		t.Fatalf("unreachable: %v, want file:unreachable-tool only", gs)
	}
	if !strings.Contains(gs[0].Reason, "http://127.0.0.1:1/unreachable-tool-1.tar.gz") || !strings.Contains(gs[0].Reason, fx.cache) {
		t.Errorf("the gap does not say where it looked: %+v", gs[0])
	}
	// An empty cache and upstream gone: every input is named, at once.
	o := fx.opts()
	o.CacheDir = t.TempDir()
	want := sources.InputNames(&l)
	sort.Strings(want)
	if len(want) < 3 {
		t.Fatalf("the sample lock pins only %v", want)
	}
	if gs, _ := sources.Unreachable(ctx, &l, o); strings.Join(names(gs), " ") != strings.Join(want, " ") {
		t.Errorf("unreachable with an empty cache and no upstream: %v, want %v", names(gs), want)
	}
}
