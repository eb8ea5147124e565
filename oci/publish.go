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

	"github.com/halvm/halvm-release/internal/fsutil"
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
	err := fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error { return writeDockerTar(w, repoPrefix, images) })
	if err != nil {
		return fmt.Errorf("writing the docker tarball %s: %w", path, err)
	}
	return nil
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
	Tags    []name.Tag  // the tags Tag writes: 2.4.3, 2.4.3-<release>, latest
	Base    name.Digest // <prefix>/halvm-base@sha256:... (zero when the image has no base)
	BaseTag name.Tag    // <prefix>/halvm-base:bookworm
}

// Push pushes every image by digest, signs each, and only then writes the
// tags (2.4.3, 2.4.3-<release>, latest). When the registry is unreachable
// or anything before tagging fails, no tag is written or moved.
func Push(ctx context.Context, images []Image, o PushOptions) ([]Pushed, error) {
	out, err := PushDigests(ctx, images, o)
	if err != nil {
		return nil, err
	}
	// Signatures and attestations, by digest.
	if o.Signer != nil {
		for _, p := range out {
			if err := o.Signer.Sign(ctx, p.Flavour, p.Digest); err != nil {
				return nil, fmt.Errorf("signing the %s image %s (no tags were written): %w", p.Flavour, p.Digest, err)
			}
		}
	}
	if err := Tag(ctx, out, o.Remote...); err != nil {
		return nil, err
	}
	return out, nil
}

// PushDigests pushes every image (and its base) by digest only: it writes
// no tag, so a release that fails later leaves nothing a user could pull
// by name. Tag names them once the release is verified.
func PushDigests(ctx context.Context, images []Image, o PushOptions) ([]Pushed, error) {
	if o.Prefix == "" {
		return nil, errors.New("pushing images: no registry prefix given")
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, o.Remote...)
	baseRepo := o.BaseRepo
	if baseRepo == "" {
		baseRepo = o.Prefix + "/halvm-base"
	}
	var out []Pushed
	for _, im := range images {
		repo, err := name.NewRepository(o.Prefix + "/" + im.Flavour)
		if err != nil {
			return nil, fmt.Errorf("pushing the %s image: %w", im.Flavour, err)
		}
		ref := repo.Digest(im.Digest.String())
		if err := remote.Write(ref, im.Image, ropts...); err != nil {
			return nil, fmt.Errorf("pushing the %s image to %s (no tags were written): %w", im.Flavour, ref, err)
		}
		p := Pushed{Flavour: im.Flavour, Digest: ref}
		if im.Base != nil {
			br, err := name.NewRepository(baseRepo)
			if err != nil {
				return nil, fmt.Errorf("pushing the base image: %w", err)
			}
			bd, err := im.Base.Digest()
			if err != nil {
				return nil, err
			}
			p.Base, p.BaseTag = br.Digest(bd.String()), br.Tag("bookworm")
			if err := remote.Write(p.Base, im.Base, ropts...); err != nil {
				return nil, fmt.Errorf("pushing the base image to %s (no tags were written): %w", br, err)
			}
		}
		for _, t := range im.Meta.Tags() {
			p.Tags = append(p.Tags, repo.Tag(t))
		}
		out = append(out, p)
	}
	return out, nil
}

// Tag points the tags of images pushed by PushDigests at their digests,
// reading each manifest back from the registry (so the images need not be
// in memory: only what was pushed is tagged).
func Tag(ctx context.Context, pushed []Pushed, ro ...remote.Option) error {
	ropts := append([]remote.Option{remote.WithContext(ctx)}, ro...)
	tag := func(d name.Digest, tags ...name.Tag) error {
		desc, err := remote.Get(d, ropts...)
		if err != nil {
			return fmt.Errorf("tagging %s: reading it back from the registry: %w", d, err)
		}
		for _, t := range tags {
			if err := remote.Tag(t, desc, ropts...); err != nil {
				return fmt.Errorf("tagging %s as %s: %w", d, t, err)
			}
		}
		return nil
	}
	for _, p := range pushed {
		if err := tag(p.Digest, p.Tags...); err != nil {
			return err
		}
		if p.Base.DigestStr() != "" {
			if err := tag(p.Base, p.BaseTag); err != nil {
				return fmt.Errorf("the base image: %w", err)
			}
		}
	}
	return nil
}

// BaseName is the base.name annotation value for a registry prefix.
func BaseName(prefix string) string {
	return strings.TrimSuffix(prefix, "/") + "/halvm-base:bookworm"
}

// LinkSharedBlobs replaces each blob of the OCI layout dir that the layout
// shared also holds with a hard link to shared's copy, after checking both
// are the same size: a signed-image layout (cosign save) next to the
// release's image layout then costs only its signatures on disk. Blobs are
// content-addressed, so equal names are equal bytes; where linking fails
// (another file system) the copy is kept.
func LinkSharedBlobs(dir, shared string) (linked int, err error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return 0, fmt.Errorf("linking shared blobs of %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(blobs, e.Name())
		s := filepath.Join(shared, "blobs", "sha256", e.Name())
		pi, err1 := os.Stat(p)
		si, err2 := os.Stat(s)
		if err1 != nil || err2 != nil || !pi.Mode().IsRegular() || pi.Size() != si.Size() || os.SameFile(pi, si) {
			continue
		}
		tmp := p + ".link"
		if err := os.Link(s, tmp); err != nil {
			continue
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
			return linked, fmt.Errorf("linking shared blobs of %s: %w", dir, err)
		}
		linked++
	}
	return linked, nil
}
