package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/halvm/halvm-release/internal/fsutil"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci"
	"github.com/halvm/halvm-release/oci/baseimage"
	"github.com/halvm/halvm-release/oci/cosign"
)

// Where the image stage writes below dist/ (the ledger's oci-layout entry
// names ImageTarball; the verification suite relies on it).
const (
	ImageLayoutDir = "oci/layout"
	ImageTarball   = "oci/halvm-images.tar"
	// TarballRepo names the images in the docker tarball
	// (`docker load` gives halvm/halvm:2.4.3 and halvm/halvm-gmp:2.4.3):
	// fixed, so the tarball's bytes do not depend on where images are pushed.
	TarballRepo = "halvm"
)

// imageResult is what the image stage hands to sign and publish: the
// images pushed by digest (none without a registry).
type imageResult struct {
	pushed []oci.Pushed
}

// imageInput is what the image stage reads: the build of every flavour's
// image (imageConfig), from the .deb files of the packages stage.
type imageInput struct {
	config oci.Config
}

func (r *runner) imageInput(p pipeline.Plan, l *pipeline.Ledger) (imageInput, error) {
	if _, err := r.lock(); err != nil {
		return imageInput{}, err
	}
	c, err := r.imageConfig(p, l)
	if err != nil {
		return imageInput{}, fmt.Errorf("the image inputs: %w", err)
	}
	return imageInput{config: c}, nil
}

// imageConfig is the build of every flavour's image from the .deb files
// the packages stage recorded in the ledger and the lock's image pins.
func (r *runner) imageConfig(p pipeline.Plan, l *pipeline.Ledger) (oci.Config, error) {
	var errs []error
	set := baseimage.SetFromLock(r.o.Lock)
	if len(set.Base) == 0 || len(set.Deps) == 0 {
		errs = append(errs, errors.New("the lock pins no image packages (roles image-base, image-deps): run `go run mage.go pins:update image`"))
	}
	root := r.o.Lock.Root()
	c := oci.Config{
		Rootfs:      baseimage.Config{CacheDir: filepath.Join(p.CacheDir(), "oci")},
		WorkDir:     filepath.Join(p.WorkDir(), "oci"),
		RootfsCache: filepath.Join(p.CacheDir(), "oci", "rootfs"),
	}
	for _, fl := range p.Flavours() {
		var deb *pipeline.Artifact
		for _, a := range l.Find(pipeline.KindDeb, fl) {
			if a.Name == fl {
				a := a
				deb = &a
			}
		}
		if deb == nil {
			errs = append(errs, pipeline.MissingInput(p, l, "image", fmt.Sprintf("the .deb %q (ledger kind deb)", fl), "packages"))
			continue
		}
		path := filepath.Join(p.OutDir(), filepath.FromSlash(deb.Path))
		if _, sum, err := fsutil.HashFile(path); err != nil {
			errs = append(errs, fmt.Errorf("flavour %s: %w", fl, err))
			continue
		} else if sum != deb.SHA256 {
			errs = append(errs, fmt.Errorf("flavour %s: %s has sha256 %s, the ledger recorded %s: it changed after the packages stage; re-run the release", fl, deb.Path, sum, deb.SHA256))
			continue
		}
		// No base.name: an image's bytes must not depend on where it is
		// pushed (the reproducibility rebuild pushes nowhere); base.digest
		// names the base exactly.
		m := oci.Meta{Flavour: fl, Version: p.Version(), Release: p.Release(), Revision: root.Commit,
			Source: root.URL, URL: r.o.Lock.Release.Homepage, Vendor: "HaLVM", Epoch: p.Epoch()}
		c.Flavours = append(c.Flavours, oci.Flavour{Meta: m, Deb: path, Pins: set})
	}
	return c, errors.Join(errs...)
}

func (r *runner) image(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	in, err := r.imageInput(p, l)
	if err != nil {
		return err
	}
	c := in.config
	var needs hostreq.Set
	needs.AddUsers("image")
	if err := hostreq.Ensure(ctx, needs, hostreq.EnsureOptions{}); err != nil {
		return err
	}
	keys, err := r.imageKeys(ctx, c)
	if err != nil {
		return err
	}
	layoutDir := filepath.Join(p.OutDir(), ImageLayoutDir)
	reused, items := r.reusableImages(p, l, c, keys, layoutDir)
	var build []oci.Flavour
	for _, f := range c.Flavours {
		if _, ok := reused[f.Meta.Flavour]; !ok {
			build = append(build, f)
		}
	}
	var built []oci.Image
	if len(build) > 0 {
		// The sources stage fetched and verified the image pins already:
		// hand them to the image build's cache instead of fetching twice.
		seedRootfsCache(filepath.Join(p.CacheDir(), "inputs"), c.Rootfs.CacheDir, build[0].Pins)
		if err := os.RemoveAll(c.WorkDir); err != nil {
			return err
		}
		bc := c
		bc.Flavours = build
		if built, err = oci.Build(ctx, bc); err != nil {
			return err
		}
		defer os.RemoveAll(c.WorkDir)
	}
	var images []oci.Image
	for _, f := range c.Flavours {
		fl := f.Meta.Flavour
		if im, ok := reused[fl]; ok {
			images = append(images, im)
			continue
		}
		for _, im := range built {
			if im.Flavour == fl {
				images = append(images, im)
				items[fl] = pipeline.Item{Key: keys[fl], Run: l.Run()}
			}
		}
	}
	l.SetMemo("image", pipeline.Memo{Items: items})
	tarPath := filepath.Join(p.OutDir(), filepath.FromSlash(ImageTarball))
	if len(build) > 0 {
		// Reused images read their blobs from the layout: the new one is
		// written beside it and takes its place.
		tmp := layoutDir + ".new"
		if err := oci.WriteLayout(tmp, images); err != nil {
			return err
		}
		if err := oci.WriteTarball(tarPath, TarballRepo, images); err != nil {
			return err
		}
		if err := os.RemoveAll(layoutDir); err != nil {
			return err
		}
		if err := os.Rename(tmp, layoutDir); err != nil {
			return err
		}
	} else if err := oci.WriteTarball(tarPath, TarballRepo, images); err != nil {
		return err
	}
	if err := r.pushImages(ctx, l, images); err != nil {
		return err
	}
	if _, err := l.AddFile(pipeline.KindOCILayout, "halvm-images.tar", "", tarPath, ImageTarball); err != nil {
		return err
	}
	return nil
}

// pushImages pushes the images by digest (when a registry is configured)
// and records them.
func (r *runner) pushImages(ctx context.Context, l *pipeline.Ledger, images []oci.Image) error {
	var pushed []oci.Pushed
	var err error
	if r.o.Registry != "" {
		if pushed, err = oci.PushDigests(ctx, images, oci.PushOptions{Prefix: r.o.Registry}); err != nil {
			return err
		}
	}
	r.out.image = &imageResult{pushed: pushed}
	for i, im := range images {
		raw, err := im.Image.RawManifest()
		if err != nil {
			return err
		}
		a := pipeline.Artifact{Kind: pipeline.KindOCIImage, Name: im.Flavour, Flavour: im.Flavour, SHA256: im.Digest.Hex, Size: int64(len(raw))}
		if len(pushed) > 0 {
			a.Ref = pushed[i].Digest.String()
		}
		l.Add(a)
		if r.o.Log != nil {
			where := "not pushed (no registry configured)"
			if a.Ref != "" {
				where = "pushed untagged as " + a.Ref
			}
			fmt.Fprintf(r.o.Log, "image %s: %s, %s\n", im.Flavour, im.Digest, where)
		}
	}
	return nil
}

// imageKeys are the keys of each flavour's image: its base and dependency
// pins, its .deb's digest, its image configuration, this program and the
// versions of the host tools that assemble it. An image with the key an
// earlier run recorded is that run's image.
func (r *runner) imageKeys(ctx context.Context, c oci.Config) (map[string]string, error) {
	prog, err := pipeline.ProgramDigest()
	if err != nil {
		return nil, err
	}
	tools, err := r.hostTools(ctx, "image")
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	for _, f := range c.Flavours {
		_, deb, err := fsutil.HashFile(f.Deb)
		if err != nil {
			return nil, err
		}
		meta, err := json.Marshal(f.Meta)
		if err != nil {
			return nil, err
		}
		pinsJSON, err := json.Marshal(f.Pins)
		if err != nil {
			return nil, err
		}
		keys[f.Meta.Flavour] = pipeline.MemoKey(map[string]string{"pins": string(pinsJSON), "deb": deb, "config": string(meta),
			"program": prog, "host-tools": tools})
	}
	return keys, nil
}

// reusableImages are the images of the layout an earlier run wrote whose
// keys are unchanged (every blob of the layout re-hashed first), and the
// memo items of those images.
func (r *runner) reusableImages(p pipeline.Plan, l *pipeline.Ledger, c oci.Config, keys map[string]string, layoutDir string) (map[string]oci.Image, map[string]pipeline.Item) {
	reused, items := map[string]oci.Image{}, map[string]pipeline.Item{}
	logf := func(format string, a ...any) {
		if r.o.Log != nil {
			fmt.Fprintf(r.o.Log, format+"\n", a...)
		}
	}
	prev, ok := l.PreviousStage("image")
	if p.Fresh("image") || !ok || prev.Memo == nil || prev.Status != pipeline.Passed {
		return reused, items
	}
	blobsChecked := false
	for _, f := range c.Flavours {
		fl := f.Meta.Flavour
		it, ok := prev.Memo.Items[fl]
		if !ok || it.Key != keys[fl] {
			logf("image %s: built: its key changed (base pins, .deb, image config, program or tools)", fl)
			continue
		}
		var digest string
		for _, a := range prev.Memo.Artifacts {
			if a.Kind == pipeline.KindOCIImage && a.Flavour == fl {
				digest = a.SHA256
			}
		}
		if !blobsChecked {
			if _, err := cosign.VerifyLayoutBlobs(layoutDir); err != nil {
				logf("image: every image is built: the layout of run %s does not check: %v", it.Run, err)
				return map[string]oci.Image{}, map[string]pipeline.Item{}
			}
			blobsChecked = true
		}
		im, err := oci.FromLayout(layoutDir, f.Meta, v1.Hash{Algorithm: "sha256", Hex: digest})
		if err != nil {
			logf("image %s: built: %v", fl, err)
			continue
		}
		reused[fl], items[fl] = im, it
		logf("image %s: unchanged since %s (same base pins, .deb and image config)", fl, it.Run)
	}
	return reused, items
}

// imageReuse: the image layout is an output, digested whole; a reuse reads
// the images back from it and pushes them again.
func (r *runner) imageReuse() *pipeline.Reuse {
	return r.reuseOf("image", nil, pipeline.Reuse{
		Outputs: func(_ context.Context, p pipeline.Plan, _ json.RawMessage) (map[string]string, error) {
			return treeDigests(map[string]string{"layout": filepath.Join(p.OutDir(), ImageLayoutDir)})
		},
		Restore: func(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger, prev pipeline.Memo) error {
			c, err := r.imageConfig(p, l)
			if err != nil {
				return err
			}
			var images []oci.Image
			for _, f := range c.Flavours {
				a := l.Find(pipeline.KindOCIImage, f.Meta.Flavour)
				if len(a) != 1 {
					return fmt.Errorf("the %s image is not recorded", f.Meta.Flavour)
				}
				im, err := oci.FromLayout(filepath.Join(p.OutDir(), ImageLayoutDir), f.Meta, v1.Hash{Algorithm: "sha256", Hex: a[0].SHA256})
				if err != nil {
					return err
				}
				images = append(images, im)
			}
			return r.pushImages(ctx, l, images)
		},
	})
}

// seedRootfsCache links the .debs the sources stage verified (cached by
// sha256 below inputs) into the image build's content-addressed cache.
// Best effort: the build re-hashes every file and fetches what is missing.
func seedRootfsCache(inputs, cacheDir string, set baseimage.Set) {
	for _, pin := range append(append([]baseimage.Pin(nil), set.Base...), set.Deps...) {
		dst := baseimage.CachePath(cacheDir, pin.SHA256)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		src := filepath.Join(inputs, "sha256", pin.SHA256)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return
		}
		if err := os.Link(src, dst); err != nil {
			_ = copyFile(src, dst)
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
