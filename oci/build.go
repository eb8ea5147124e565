package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/oci/baseimage"
	"github.com/halvm/halvm-release/oci/layer"
)

// Flavour is the input of one flavour's image.
type Flavour struct {
	Meta Meta          // Meta.Flavour names it
	Deb  string        // the toolchain .deb, the same bytes the apt repository publishes
	Pins baseimage.Set // pinned base and dependency packages (from the lock)
}

// Config is the input of Build.
type Config struct {
	Flavours []Flavour
	Rootfs   baseimage.Config // mirror and content-addressed cache
	WorkDir  string           // scratch; layers are written below it
	// RootfsCache, when set, caches bootstrapped root filesystems by a key
	// over all their inputs, so a version bump only re-runs the toolchain
	// stage. "" bootstraps everything afresh.
	RootfsCache string
}

// Image is one built flavour.
type Image struct {
	Flavour string
	Meta    Meta
	Image   v1.Image
	Base    v1.Image
	Digest  v1.Hash
	Layers  []LayerFile
}

// Build builds one image per flavour: it fetches the pins, bootstraps the
// base, base+deps and base+deps+toolchain root filesystems with mmdebstrap
// from exactly those .debs, checks each against its pins, and turns the
// differences into the three layers. Needs root and mmdebstrap.
func Build(ctx context.Context, c Config) ([]Image, error) {
	if len(c.Flavours) == 0 {
		return nil, errors.New("building images: no flavours")
	}
	var errs []error
	for _, f := range c.Flavours {
		if err := f.Meta.validate(); err != nil {
			errs = append(errs, fmt.Errorf("flavour %q: %w", f.Meta.Flavour, err))
		}
		if _, err := os.Stat(f.Deb); err != nil {
			errs = append(errs, fmt.Errorf("flavour %q: toolchain package: %w: build the .deb first (go run mage.go deb)", f.Meta.Flavour, err))
		}
		if len(f.Pins.Base) == 0 {
			errs = append(errs, fmt.Errorf("flavour %q: no base pins: run \"go run mage.go pins:update\"", f.Meta.Flavour))
		}
		if err := baseimage.Validate("base", f.Pins.Base); err != nil {
			errs = append(errs, fmt.Errorf("flavour %q: %w", f.Meta.Flavour, err))
		}
		if err := baseimage.Validate("deps", f.Pins.Deps); err != nil {
			errs = append(errs, fmt.Errorf("flavour %q: %w", f.Meta.Flavour, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("building images: %w", err)
	}
	blobs := filepath.Join(c.WorkDir, "blobs")
	defer os.RemoveAll(blobs)
	var out []Image
	for _, f := range c.Flavours {
		img, err := buildFlavour(ctx, c, f, blobs)
		if err != nil {
			return nil, fmt.Errorf("building the %s image: %w", f.Meta.Flavour, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func buildFlavour(ctx context.Context, c Config, f Flavour, blobs string) (Image, error) {
	epoch := f.Meta.Epoch
	basePaths, err := baseimage.Fetch(ctx, c.Rootfs, f.Pins.Base)
	if err != nil {
		return Image{}, err
	}
	depPaths, err := baseimage.Fetch(ctx, c.Rootfs, f.Pins.Deps)
	if err != nil {
		return Image{}, err
	}
	tc, err := debControl(ctx, f.Deb)
	if err != nil {
		return Image{}, err
	}
	names := func(sets ...[]baseimage.Pin) []string {
		var n []string
		for _, s := range sets {
			for _, p := range s {
				n = append(n, p.Name)
			}
		}
		return n
	}
	allPins := append(append([]baseimage.Pin(nil), f.Pins.Base...), f.Pins.Deps...)
	stages := []struct {
		role    string
		debs    []string
		include []string
		want    []baseimage.Pin
	}{
		{RoleBase, basePaths, names(f.Pins.Base), f.Pins.Base},
		{RoleDeps, append(append([]string(nil), basePaths...), depPaths...), names(f.Pins.Base, f.Pins.Deps), allPins},
		{RoleToolchain, append(append(append([]string(nil), basePaths...), depPaths...), f.Deb),
			append(names(f.Pins.Base, f.Pins.Deps), tc.Name), append(append([]baseimage.Pin(nil), allPins...), tc)},
	}
	var trees []*layer.Tree
	var files []LayerFile
	for i, st := range stages {
		tarPath, err := baseimage.Bootstrap{
			Epoch: epoch, Debs: st.debs, Include: st.include,
			WorkDir: filepath.Join(c.WorkDir, "rootfs"), CacheDir: c.RootfsCache,
		}.Run(ctx)
		if err != nil {
			return Image{}, fmt.Errorf("%s root filesystem: %w", st.role, err)
		}
		tree, err := layer.ReadFile(tarPath, blobs, layer.Options{Epoch: epoch, Exclude: layer.DefaultExclude})
		if err != nil {
			return Image{}, fmt.Errorf("%s root filesystem: %w", st.role, err)
		}
		if err := checkTree(tree, st.want); err != nil {
			return Image{}, fmt.Errorf("%s root filesystem: %w", st.role, err)
		}
		var lower *layer.Tree
		if i > 0 {
			lower = trees[i-1]
		}
		comment := fmt.Sprintf("%d pinned Debian packages", len(st.want))
		if st.role == RoleToolchain {
			comment = fmt.Sprintf("%s %s (%s)", tc.Name, tc.Version, filepath.Base(f.Deb))
		} else if st.role == RoleDeps {
			comment = fmt.Sprintf("%d pinned runtime dependencies of %s", len(f.Pins.Deps), tc.Name)
		}
		lf, err := WriteLayerFile(filepath.Join(c.WorkDir, "layers"), st.role, comment, tree, lower)
		if err != nil {
			return Image{}, err
		}
		trees = append(trees, tree)
		files = append(files, lf)
	}
	img, base, err := Assemble(f.Meta, files)
	if err != nil {
		return Image{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return Image{}, err
	}
	return Image{Flavour: f.Meta.Flavour, Meta: f.Meta, Image: img, Base: base, Digest: d, Layers: files}, nil
}

func checkTree(t *layer.Tree, want []baseimage.Pin) error {
	r, err := t.Open("var/lib/dpkg/status")
	if err != nil {
		return fmt.Errorf("checking installed packages: %w", err)
	}
	defer r.Close()
	got, err := baseimage.ParseStatus(r)
	if err != nil {
		return err
	}
	return baseimage.CheckInstalled(got, want)
}

// debControl reads name, version and architecture of a .deb.
func debControl(ctx context.Context, deb string) (baseimage.Pin, error) {
	out, err := run.Output(ctx, run.Cmd{Args: []string{"dpkg-deb", "--show", "--showformat=${Package}\t${Version}\t${Architecture}", deb}, Env: run.BaseEnv()})
	if err != nil {
		return baseimage.Pin{}, fmt.Errorf("reading the toolchain package %s: %w", deb, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\t")
	if len(f) != 3 {
		return baseimage.Pin{}, fmt.Errorf("reading the toolchain package %s: unexpected dpkg-deb output %q", deb, out)
	}
	return baseimage.Pin{Name: f[0], Version: f[1], Arch: f[2]}, nil
}
