package cosign

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocilayout "github.com/sigstore/cosign/v2/pkg/oci/layout"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
)

// Save writes the image ref names, with its signatures and attestations,
// to dir as `cosign save --dir` does: an OCI image layout that
// `cosign load --dir` (and Load) push to any registry. dir is replaced.
func Save(ctx context.Context, ref name.Digest, dir string, ro ...remote.Option) error {
	si, err := ociremote.SignedImage(ref, ociOpts(ctx, ro)...)
	if err != nil {
		return fmt.Errorf("saving %s: reading it from the registry: %w", ref, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("saving %s: %w", ref, err)
	}
	if err := ocilayout.WriteSignedImage(dir, si); err != nil {
		return fmt.Errorf("saving %s to %s: %w", ref, dir, err)
	}
	return nil
}

// Load pushes what Save (or `cosign save`) wrote in dir to repo: the
// image by digest, untagged, and its signatures and attestations, as
// `cosign load --dir` does. It returns the image's reference in repo.
func Load(ctx context.Context, dir string, repo name.Repository, ro ...remote.Option) (name.Digest, error) {
	sii, err := ocilayout.SignedImageIndex(dir)
	if err != nil {
		return name.Digest{}, fmt.Errorf("loading %s: not a signed image layout (cosign save writes one): %w", dir, err)
	}
	si, err := sii.SignedImage(v1.Hash{})
	if err != nil {
		return name.Digest{}, fmt.Errorf("loading %s: %w", dir, err)
	}
	if si == nil {
		return name.Digest{}, fmt.Errorf("loading %s: the layout holds no signed image", dir)
	}
	h, err := si.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("loading %s: %w", dir, err)
	}
	d := repo.Digest(h.String())
	if err := ociremote.WriteSignedImageIndexImages(d, sii, ociOpts(ctx, ro)...); err != nil {
		return name.Digest{}, fmt.Errorf("loading %s into %s: %w", dir, repo, err)
	}
	return d, nil
}
