package cosign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocilayout "github.com/sigstore/cosign/v2/pkg/oci/layout"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/halvm/halvm-release/internal/fsutil"
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
//
// Every blob of the layout is re-hashed against its digest first
// (VerifyLayoutBlobs): a registry that already holds a digest does not
// read the blob again, so a blob swapped under its file name would
// otherwise go unseen.
func Load(ctx context.Context, dir string, repo name.Repository, ro ...remote.Option) (name.Digest, error) {
	sii, err := ocilayout.SignedImageIndex(dir)
	if err != nil {
		return name.Digest{}, fmt.Errorf("loading %s: not a signed image layout (cosign save writes one): %w", dir, err)
	}
	if _, err := VerifyLayoutBlobs(dir); err != nil {
		return name.Digest{}, err
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

// VerifyLayoutBlobs re-hashes every blob of the OCI image layout dir
// (blobs/sha256/<hex>) and returns how many it read; a blob whose content
// is not its digest, or one of another algorithm, is an error naming the
// file.
func VerifyLayoutBlobs(dir string) (int, error) {
	root := filepath.Join(dir, "blobs")
	algs, err := os.ReadDir(root)
	if err != nil {
		return 0, fmt.Errorf("the image layout %s: %w", dir, err)
	}
	var bad []string
	n := 0
	for _, a := range algs {
		if !a.IsDir() || a.Name() != "sha256" {
			bad = append(bad, fmt.Sprintf("%s: not a sha256 blob directory", filepath.Join(root, a.Name())))
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, a.Name()))
		if err != nil {
			return n, err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			p := filepath.Join(root, a.Name(), e.Name())
			_, got, err := fsutil.HashFile(p)
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			case got != e.Name():
				bad = append(bad, fmt.Sprintf("%s: its content is sha256:%s, not the digest it is stored under (a swapped or damaged blob)", p, got))
			default:
				n++
			}
		}
	}
	if len(bad) > 0 {
		return n, fmt.Errorf("the image layout %s has %d bad blob(s):\n%w", dir, len(bad), errors.New(strings.Join(bad, "\n")))
	}
	return n, nil
}
