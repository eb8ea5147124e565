package oci

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FromLayout returns the image of a flavour with manifest digest d from the
// OCI layout dir (WriteLayout), with its base image, for a re-run whose
// image inputs did not change. Its blobs are read from dir as needed: the
// caller checks them against their digests first (cosign.VerifyLayoutBlobs).
// The base image, which the layout does not hold, is assembled again from
// the image's first layer and must have the digest the image's base.digest
// annotation records.
func FromLayout(dir string, m Meta, d v1.Hash) (Image, error) {
	fail := func(err error) (Image, error) {
		return Image{}, fmt.Errorf("the %s image %s in the layout %s: %w", m.Flavour, d, dir, err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return fail(err)
	}
	img, err := p.Image(d)
	if err != nil {
		return fail(err)
	}
	if got, err := img.Digest(); err != nil || got != d {
		return fail(fmt.Errorf("its manifest has digest %v (%v)", got, err))
	}
	mf, err := img.Manifest()
	if err != nil {
		return fail(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 || len(cf.History) == 0 {
		return fail(fmt.Errorf("no base layer (%v)", err))
	}
	base, err := baseImage(cf.Created, mutate.Addendum{Layer: layers[0], MediaType: types.OCILayer, History: cf.History[0]})
	if err != nil {
		return fail(err)
	}
	bd, err := base.Digest()
	if err != nil {
		return fail(err)
	}
	if want := mf.Annotations["org.opencontainers.image.base.digest"]; want != bd.String() {
		return fail(fmt.Errorf("its base image assembles to %s, the image records %q", bd, want))
	}
	m.BaseDigest = bd.String()
	return Image{Flavour: m.Flavour, Meta: m, Image: img, Base: base, Digest: d}, nil
}
