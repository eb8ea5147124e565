// Package oci owns the toolchain container image: one image per flavour
// (halvm, halvm-gmp) made of three deterministic layers — the pinned Debian
// base, the toolchain's pinned runtime dependencies, and the toolchain
// .deb installed by dpkg — with the image config and OCI annotations, and
// its outputs: an OCI layout directory, a `docker load` tarball, and a
// push by digest then tags. Signing happens through the tiny Signer
// interface (implemented by oci/cosign) between the push by digest and the
// tagging, so no tag ever points at an unsigned image.
//
// Same inputs, same digests: every timestamp is SOURCE_DATE_EPOCH and every
// layer is normalized by oci/layer.
package oci

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/halvm/halvm-release/oci/layer"
)

// Meta is what the image says about itself.
type Meta struct {
	Flavour     string    // "halvm" or "halvm-gmp": also the repository name
	Version     string    // upstream version, "2.4.3"
	Release     int       // package release, the 1 of 2.4.3-1
	Revision    string    // superproject commit
	Source      string    // https://github.com/halvm/halvm-release
	URL         string    // project home page; "" means Source
	Docs        string    // documentation URL; "" means URL
	Vendor      string    // "HaLVM"
	Description string    // "" means a default naming the flavour
	Epoch       time.Time // SOURCE_DATE_EPOCH: config created, history, org.opencontainers.image.created
	BaseName    string    // org.opencontainers.image.base.name, e.g. "registry.example/halvm-base:bookworm"
	BaseDigest  string    // org.opencontainers.image.base.digest; filled by Assemble when empty
	Path        []string  // directories put in front of the standard PATH (where the toolchain lives)
	Cmd         []string  // default command; nil means ["halvm-ghc", "--help"]
}

// StandardPath is Debian's PATH for root in a container.
const StandardPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Prefix is the reverse-DNS prefix of this project's own annotations.
const Prefix = "io.github.halvm."

// Annotations returns the OCI annotations of the image manifest (also set
// as config labels, where docker inspect shows them).
func (m Meta) Annotations() map[string]string {
	url := m.URL
	if url == "" {
		url = m.Source
	}
	docs := m.Docs
	if docs == "" {
		docs = url
	}
	desc := m.Description
	if desc == "" {
		desc = fmt.Sprintf("HaLVM %s toolchain (%s): builds Haskell programs into Xen PV unikernels", m.Version, m.Flavour)
	}
	a := map[string]string{
		"org.opencontainers.image.created":       m.Epoch.UTC().Format(time.RFC3339),
		"org.opencontainers.image.version":       m.Version,
		"org.opencontainers.image.revision":      m.Revision,
		"org.opencontainers.image.source":        m.Source,
		"org.opencontainers.image.url":           url,
		"org.opencontainers.image.documentation": docs,
		"org.opencontainers.image.vendor":        m.Vendor,
		"org.opencontainers.image.licenses":      "BSD-3-Clause",
		"org.opencontainers.image.title":         m.Flavour,
		"org.opencontainers.image.description":   desc,
		"org.opencontainers.image.base.name":     m.BaseName,
		"org.opencontainers.image.base.digest":   m.BaseDigest,
		Prefix + "flavour":                       m.Flavour,
		Prefix + "package-version":               fmt.Sprintf("%s-%d", m.Version, m.Release),
	}
	for k, v := range a {
		if v == "" {
			delete(a, k)
		}
	}
	return a
}

func (m Meta) validate() error {
	var errs []error
	if m.Flavour == "" {
		errs = append(errs, errors.New("image meta: flavour is empty"))
	}
	if m.Version == "" {
		errs = append(errs, errors.New("image meta: version is empty"))
	}
	if m.Release < 1 {
		errs = append(errs, fmt.Errorf("image meta: release %d: want at least 1", m.Release))
	}
	if m.Epoch.IsZero() {
		errs = append(errs, errors.New("image meta: no epoch: set SOURCE_DATE_EPOCH"))
	}
	if m.Revision == "" {
		errs = append(errs, errors.New("image meta: revision (the superproject commit) is empty"))
	}
	if m.Source == "" {
		errs = append(errs, errors.New("image meta: source URL is empty"))
	}
	return errors.Join(errs...)
}

// Tags are the tags an image gets: 2.4.3, 2.4.3-<release>, latest.
func (m Meta) Tags() []string {
	return []string{m.Version, fmt.Sprintf("%s-%d", m.Version, m.Release), "latest"}
}

// Layer roles, bottom to top.
const (
	RoleBase      = "base"
	RoleDeps      = "deps"
	RoleToolchain = "toolchain"
)

// LayerFile is one normalized, gzip-compressed layer on disk.
type LayerFile struct {
	Role    string
	Path    string // the .tar.gz
	Comment string // history entry: what the layer holds
	Stats   layer.Stats
}

// WriteLayerFile writes tree (as a diff to lower when lower is not nil)
// into dir as a gzip-compressed layer named by its digest.
func WriteLayerFile(dir, role, comment string, tree, lower *layer.Tree) (LayerFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return LayerFile{}, fmt.Errorf("writing the %s layer: %w", role, err)
	}
	tmp, err := os.CreateTemp(dir, ".layer-*")
	if err != nil {
		return LayerFile{}, fmt.Errorf("writing the %s layer: %w", role, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(tmp, h), gzip.DefaultCompression)
	if err != nil {
		return LayerFile{}, err
	}
	st, err := tree.Write(zw, lower)
	if err == nil {
		err = zw.Close()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return LayerFile{}, fmt.Errorf("writing the %s layer: %w", role, err)
	}
	final := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))+".tar.gz")
	if err := os.Rename(tmp.Name(), final); err != nil {
		return LayerFile{}, fmt.Errorf("writing the %s layer: %w", role, err)
	}
	return LayerFile{Role: role, Path: final, Comment: comment, Stats: st}, nil
}

// Assemble makes the image of one flavour from its layers (bottom to top)
// and returns it with its base image (the first layer alone, same
// platform), whose digest the image's base.digest annotation records.
func Assemble(m Meta, layers []LayerFile) (img, base v1.Image, err error) {
	if err := m.validate(); err != nil {
		return nil, nil, err
	}
	if len(layers) == 0 {
		return nil, nil, errors.New("assembling the image: no layers")
	}
	created := v1.Time{Time: m.Epoch.UTC()}
	path := strings.Join(append(append([]string(nil), m.Path...), StandardPath), ":")
	cmd := m.Cmd
	if cmd == nil {
		cmd = []string{"halvm-ghc", "--help"}
	}
	start := func(c v1.Config) (v1.Image, error) { return emptyImage(created, c) }
	addendum := func(lf LayerFile) (mutate.Addendum, error) {
		l, err := tarball.LayerFromFile(lf.Path, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return mutate.Addendum{}, fmt.Errorf("assembling the image: %s layer: %w", lf.Role, err)
		}
		return mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "halvm-release oci: " + lf.Role + " layer", Comment: lf.Comment,
		}}, nil
	}

	add, err := addendum(layers[0])
	if err != nil {
		return nil, nil, err
	}
	b, err := baseImage(created, add)
	if err != nil {
		return nil, nil, err
	}
	if m.BaseDigest == "" {
		d, err := b.Digest()
		if err != nil {
			return nil, nil, fmt.Errorf("assembling the base image: %w", err)
		}
		m.BaseDigest = d.String()
	}

	ann := m.Annotations()
	i, err := start(v1.Config{
		Env:        []string{"PATH=" + path, "LANG=C.UTF-8"},
		WorkingDir: "/src",
		Cmd:        cmd,
		Labels:     ann,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("assembling the image: %w", err)
	}
	for _, lf := range layers {
		add, err := addendum(lf)
		if err != nil {
			return nil, nil, err
		}
		if i, err = mutate.Append(i, add); err != nil {
			return nil, nil, fmt.Errorf("assembling the image: %w", err)
		}
	}
	img = mutate.Annotations(i, ann).(v1.Image)
	return img, b, nil
}

// emptyImage is an OCI image with no layers yet: linux/amd64, created at
// the epoch, with config c.
func emptyImage(created v1.Time, c v1.Config) (v1.Image, error) {
	i := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	i = mutate.ConfigMediaType(i, types.OCIConfigJSON)
	return mutate.ConfigFile(i, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Created: created, Config: c,
		RootFS: v1.RootFS{Type: "layers"},
	})
}

// baseImage is the base image of a flavour: its base layer alone.
func baseImage(created v1.Time, base mutate.Addendum) (v1.Image, error) {
	b, err := emptyImage(created, v1.Config{Env: []string{"PATH=" + StandardPath}, Cmd: []string{"/bin/bash"}})
	if err != nil {
		return nil, fmt.Errorf("assembling the base image: %w", err)
	}
	if b, err = mutate.Append(b, base); err != nil {
		return nil, fmt.Errorf("assembling the base image: %w", err)
	}
	return b, nil
}

// LayerSizes lists an image's layers as "role digest compressed-size".
func LayerSizes(img v1.Image) ([]int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
