package baseimage

import (
	"context"
	"errors"
	"fmt"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/pins"
)

// ImageBasePackages are installed on top of Debian's Essential set in the
// image's base layer.
var ImageBasePackages = []string{"apt", "ca-certificates"}

// ImageResolver resolves the lock's image pins (pins.ImageResolver): the
// base layer (Essential + ImageBasePackages) and the dependency layer (the
// closure of Depends on top of it), with the archive, pool filename, size
// and sha256 the mirror publishes for each.
type ImageResolver struct {
	Config  Config
	Depends []string // the toolchain .deb's runtime dependencies (packaging.Depends)
}

// ResolveImage implements pins.ImageResolver.
func (r ImageResolver) ResolveImage(ctx context.Context) (base, deps []pins.Deb, err error) {
	if len(r.Depends) == 0 {
		return nil, nil, errors.New("resolving the image packages: no toolchain dependencies given")
	}
	set, err := ResolveSet(ctx, r.Config, ImageBasePackages, r.Depends)
	if err != nil {
		return nil, nil, err
	}
	a, err := newApt(r.Config.CacheDir, r.Config.Mirror)
	if err != nil {
		return nil, nil, err
	}
	if base, err = a.describe(ctx, set.Base); err != nil {
		return nil, nil, err
	}
	if deps, err = a.describe(ctx, set.Deps); err != nil {
		return nil, nil, err
	}
	return base, deps, nil
}

// describe reads each pin's record from the mirror's package lists.
func (a *apt) describe(ctx context.Context, set []Pin) ([]pins.Deb, error) {
	var out []pins.Deb
	var errs []error
	for _, p := range set {
		b, err := run.Output(ctx, a.cmd("", "apt-cache", "show", p.Name+"="+p.Version))
		if err != nil {
			errs = append(errs, fmt.Errorf("describing %s: %w", p, err))
			continue
		}
		d, err := pins.ParseAptStanza(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("describing %s: %w", p, err))
			continue
		}
		if d.SHA256 != p.SHA256 || d.Version != p.Version {
			errs = append(errs, fmt.Errorf("describing %s: the package lists disagree (%s %s): run again after the mirror settles", p, d.Version, d.SHA256))
			continue
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// SetFromLock is the image's pinned Debian layers as the lock records them.
func SetFromLock(l *pins.Lock) Set {
	conv := func(debs []pins.Deb) []Pin {
		var out []Pin
		for _, d := range debs {
			out = append(out, Pin{Name: d.Name, Version: d.Version, Arch: d.Arch, SHA256: d.SHA256})
		}
		return out
	}
	return Set{Base: conv(l.DebsWithRole(pins.RoleImageBase)), Deps: conv(l.DebsWithRole(pins.RoleImageDeps))}
}
