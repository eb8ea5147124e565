package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefName is the annotation an OCI layout uses to name its images.
const RefName = "org.opencontainers.image.ref.name"

// WriteLayout writes the images to a fresh OCI layout directory. Its
// index.json lists one image manifest per flavour, named
// "<flavour>:<version>" by org.opencontainers.image.ref.name (the names
// `skopeo copy oci:DIR:halvm:2.4.3` and friends use). Both images are
// linux/amd64, so the layout index is a list of images, not a platform
// index: a platform index with two amd64 entries would make `docker pull`
// of it pick one and hide the other.
func WriteLayout(dir string, images []Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout %s: %w", dir, err)
	}
	for _, im := range images {
		if err := p.AppendImage(im.Image, layout.WithAnnotations(map[string]string{
			RefName: im.Flavour + ":" + im.Meta.Version,
		})); err != nil {
			return fmt.Errorf("writing the %s image to the OCI layout %s: %w", im.Flavour, dir, err)
		}
	}
	return nil
}

// WriteTarball writes a `docker load` tarball (the docker save format:
// manifest.json, config blobs, gzip layers) holding every image under
// <repoPrefix>/<flavour>:<version>. Entries are written in the order of
// images with fixed headers, so the same images give the same bytes.
func WriteTarball(path, repoPrefix string, images []Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing the docker tarball: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing the docker tarball: %w", err)
	}
	defer os.Remove(tmp)
	if err := writeDockerTar(f, repoPrefix, images); err != nil {
		f.Close()
		return fmt.Errorf("writing the docker tarball %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the docker tarball %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func writeDockerTar(w io.Writer, repoPrefix string, images []Image) error {
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	tw := tar.NewWriter(w)
	var manifest []entry
	seen := map[string]bool{}
	var mtime time.Time
	add := func(name string, size int64, r io.Reader) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	for _, im := range images {
		mtime = im.Meta.Epoch
		tag, err := name.NewTag(repoPrefix + "/" + im.Flavour + ":" + im.Meta.Version)
		if err != nil {
			return err
		}
		cfgName, err := im.Image.ConfigName()
		if err != nil {
			return err
		}
		cfg, err := im.Image.RawConfigFile()
		if err != nil {
			return err
		}
		e := entry{Config: cfgName.Hex + ".json", RepoTags: []string{tag.String()}}
		if err := add(e.Config, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
			return err
		}
		layers, err := im.Image.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			size, err := l.Size()
			if err != nil {
				return err
			}
			file := d.Hex + ".tar.gz"
			e.Layers = append(e.Layers, file)
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			err = add(file, size, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		manifest = append(manifest, e)
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	seen["manifest.json"] = false
	if err := add("manifest.json", int64(len(m)), bytes.NewReader(m)); err != nil {
		return err
	}
	return tw.Close()
}

// Signer signs and attests one pushed image, addressed by digest. It is
// called after every image is pushed by digest and before any tag is
// written. oci/cosign implements it.
type Signer interface {
	Sign(ctx context.Context, flavour string, ref name.Digest) error
}

// PushOptions configure Push.
type PushOptions struct {
	Prefix string          // registry and namespace, e.g. "ghcr.io/halvm" or "127.0.0.1:5000"
	Signer Signer          // nil pushes unsigned images (tests only)
	Remote []remote.Option // transport, auth, context
	// BaseRepo is the repository the base image goes to ("" means
	// <Prefix>/halvm-base), tagged "bookworm".
	BaseRepo string
}

// Pushed is one image in the registry.
type Pushed struct {
	Flavour string
	Digest  name.Digest // <prefix>/<flavour>@sha256:...
	Tags    []name.Tag
}

// Push pushes every image by digest, signs each, and only then writes the
// tags (2.4.3, 2.4.3-<release>, latest). When the registry is unreachable
// or anything before tagging fails, no tag is written or moved.
func Push(ctx context.Context, images []Image, o PushOptions) ([]Pushed, error) {
	if o.Prefix == "" {
		return nil, errors.New("pushing images: no registry prefix given")
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, o.Remote...)
	baseRepo := o.BaseRepo
	if baseRepo == "" {
		baseRepo = o.Prefix + "/halvm-base"
	}
	var out []Pushed
	// 1. Everything by digest.
	for _, im := range images {
		repo, err := name.NewRepository(o.Prefix + "/" + im.Flavour)
		if err != nil {
			return nil, fmt.Errorf("pushing the %s image: %w", im.Flavour, err)
		}
		ref := repo.Digest(im.Digest.String())
		if err := remote.Write(ref, im.Image, ropts...); err != nil {
			return nil, fmt.Errorf("pushing the %s image to %s (no tags were written): %w", im.Flavour, ref, err)
		}
		if im.Base != nil {
			br, err := name.NewRepository(baseRepo)
			if err != nil {
				return nil, fmt.Errorf("pushing the base image: %w", err)
			}
			bd, err := im.Base.Digest()
			if err != nil {
				return nil, err
			}
			if err := remote.Write(br.Digest(bd.String()), im.Base, ropts...); err != nil {
				return nil, fmt.Errorf("pushing the base image to %s (no tags were written): %w", br, err)
			}
		}
		p := Pushed{Flavour: im.Flavour, Digest: ref}
		for _, t := range im.Meta.Tags() {
			p.Tags = append(p.Tags, repo.Tag(t))
		}
		out = append(out, p)
	}
	// 2. Signatures and attestations, by digest.
	if o.Signer != nil {
		for _, p := range out {
			if err := o.Signer.Sign(ctx, p.Flavour, p.Digest); err != nil {
				return nil, fmt.Errorf("signing the %s image %s (no tags were written): %w", p.Flavour, p.Digest, err)
			}
		}
	}
	// 3. Tags last.
	for i, p := range out {
		im := images[i]
		for _, t := range p.Tags {
			if err := remote.Tag(t, im.Image, ropts...); err != nil {
				return nil, fmt.Errorf("tagging %s as %s: %w", p.Digest, t, err)
			}
		}
		if im.Base != nil {
			bt, err := name.NewTag(baseRepo + ":bookworm")
			if err != nil {
				return nil, err
			}
			if err := remote.Tag(bt, im.Base, ropts...); err != nil {
				return nil, fmt.Errorf("tagging the base image as %s: %w", bt, err)
			}
		}
	}
	return out, nil
}

// BaseName is the base.name annotation value for a registry prefix.
func BaseName(prefix string) string {
	return strings.TrimSuffix(prefix, "/") + "/halvm-base:bookworm"
}
