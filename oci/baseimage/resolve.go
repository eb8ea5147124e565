package baseimage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Config is where rootfs keeps its state and which mirror it talks to.
type Config struct {
	Mirror   Mirror
	CacheDir string // apt state and the content-addressed .deb cache live below it
}

func resolve(ctx context.Context, a *apt, top []string, essential bool) ([]Pin, error) {
	args := append([]string(nil), top...)
	local := map[string]bool{}
	for _, t := range top {
		if isDebPath(t) {
			name, err := debField(ctx, t, "Package")
			if err != nil {
				return nil, err
			}
			local[name] = true
		}
	}
	if essential {
		ess, err := a.essential(ctx)
		if err != nil {
			return nil, err
		}
		args = append(append(ess, "usr-is-merged"), args...)
	}
	if len(args) == 0 {
		return nil, errors.New("resolving packages: nothing to resolve")
	}
	sim, err := a.simulate(ctx, args)
	if err != nil {
		return nil, err
	}
	var want []Pin
	for _, p := range sim {
		if !local[p.Name] {
			want = append(want, p)
		}
	}
	locs, err := a.locate(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("resolving packages: %w", err)
	}
	for i := range want {
		want[i].SHA256 = locs[i].sha256
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	return want, nil
}

// ResolveSet resolves an image's Debian layers: base is the essential set
// plus basePackages; Deps is what the toolchain needs on top of it:
// toolchainDebs are paths to the toolchain .deb(s) or the names of its
// dependencies (pins:update resolves before any .deb exists).
func ResolveSet(ctx context.Context, c Config, basePackages []string, toolchainDebs []string) (Set, error) {
	a, err := newApt(c.CacheDir, c.Mirror)
	if err != nil {
		return Set{}, err
	}
	if err := a.update(ctx); err != nil {
		return Set{}, err
	}
	base, err := resolve(ctx, a, basePackages, true)
	if err != nil {
		return Set{}, fmt.Errorf("resolving the base layer: %w", err)
	}
	all, err := resolve(ctx, a, append(append([]string(nil), basePackages...), toolchainDebs...), true)
	if err != nil {
		return Set{}, fmt.Errorf("resolving the dependency layer: %w", err)
	}
	inBase := map[string]Pin{}
	for _, p := range base {
		inBase[p.Name+":"+p.Arch] = p
	}
	var deps []Pin
	for _, p := range all {
		b, ok := inBase[p.Name+":"+p.Arch]
		if !ok {
			deps = append(deps, p)
			continue
		}
		if b.Version != p.Version {
			return Set{}, fmt.Errorf("resolving the dependency layer: the toolchain needs %s, the base has %s: pin the base package to the newer version", p, b)
		}
	}
	return Set{Base: base, Deps: deps}, nil
}

func isDebPath(s string) bool { return strings.Contains(s, "/") && strings.HasSuffix(s, ".deb") }
