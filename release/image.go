package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/halvm/halvm-release/internal/fsutil"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci"
	"github.com/halvm/halvm-release/oci/baseimage"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
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

// imageState is what the image stage hands to sign and publish.
type imageState struct {
	pushed []oci.Pushed
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
			errs = append(errs, fmt.Errorf("flavour %s: the ledger has no .deb %q: the packages stage must run first", fl, fl))
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
	var needs hostreq.Set
	needs.AddUsers("image")
	if err := hostreq.Ensure(ctx, needs, hostreq.EnsureOptions{}); err != nil {
		return err
	}
	c, err := r.imageConfig(p, l)
	if err != nil {
		return fmt.Errorf("the image inputs: %w", err)
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
	r.img.pushed = pushed
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
	return r.reuseOf("image", pipeline.Reuse{
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

// attestations are the flavour's SBOM and provenance documents, as the
// sbom stage recorded them.
func attestations(p pipeline.Plan, l *pipeline.Ledger, flavour string) ([]cosign.Attestation, error) {
	var out []cosign.Attestation
	var errs []error
	for _, k := range []struct {
		kind pipeline.Kind
		typ  string
	}{{pipeline.KindSPDX, cosign.PredicateSPDX}, {pipeline.KindCycloneDX, cosign.PredicateCycloneDX}, {pipeline.KindProvenance, cosign.PredicateSLSA1}} {
		a := l.Find(k.kind, flavour)
		if len(a) != 1 {
			errs = append(errs, fmt.Errorf("%s of %s: want one in the ledger, found %d (the sbom stage must run first)", k.kind, flavour, len(a)))
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.OutDir(), filepath.FromSlash(a[0].Path)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, cosign.Attestation{PredicateType: k.typ, Predicate: b})
	}
	return out, errors.Join(errs...)
}

// SignedDir is where the sign stage saves each flavour's signed image
// below dist/, as `cosign save --dir` does: the image with its signatures
// and attestations, which `cosign load --dir` pushes to any registry and
// from which a verification re-serves a throwaway registry that is gone.
func SignedDir(flavour string) string { return "oci/cosign/" + flavour }

// saveSigned saves the pushed, signed image of a flavour to dist/ and
// records it (KindOCISigned, with the ref it was saved from).
func saveSigned(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger, pu oci.Pushed) error {
	rel := SignedDir(pu.Flavour)
	dir := filepath.Join(p.OutDir(), filepath.FromSlash(rel))
	if err := cosign.Save(ctx, pu.Digest, dir); err != nil {
		return fmt.Errorf("the signed %s image: %w", pu.Flavour, err)
	}
	// Its image blobs are the image layout's: link them, do not copy.
	if _, err := oci.LinkSharedBlobs(dir, filepath.Join(p.OutDir(), filepath.FromSlash(ImageLayoutDir))); err != nil {
		return err
	}
	l.Add(pipeline.Artifact{Kind: pipeline.KindOCISigned, Name: pu.Flavour, Flavour: pu.Flavour, Path: rel, Ref: pu.Digest.String()})
	return nil
}

// releaseFileKinds are the files SHA256SUMS covers.
var releaseFileKinds = []pipeline.Kind{pipeline.KindDeb, pipeline.KindRPM, pipeline.KindSPDX, pipeline.KindCycloneDX, pipeline.KindProvenance, pipeline.KindOCILayout, pipeline.KindLock}

func (r *runner) sign(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	sv, err := cosign.LoadSigner(r.o.CosignKey)
	if err != nil {
		return fmt.Errorf("cosign key: %w (set HALVM_COSIGN_KEY_FILE and HALVM_COSIGN_PASSWORD_FILE, or run `go run mage.go keys:dev` for a trial)", err)
	}
	r.signer = sv
	if len(r.img.pushed) == 0 {
		if _, skipped := p.SkipReason("image"); !skipped && r.o.Official {
			return errors.New("the images were not pushed, so they cannot be signed: an official release needs a registry (set HALVM_REGISTRY)")
		}
		if r.o.Log != nil {
			fmt.Fprintln(r.o.Log, "sign: no pushed images (no registry configured): image signatures skipped, SHA256SUMS still signed")
		}
	}
	s := &cosign.Signer{SV: sv, Attestations: map[string][]cosign.Attestation{}}
	var errs []error
	for _, pu := range r.img.pushed {
		a, err := attestations(p, l, pu.Flavour)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Attestations[pu.Flavour] = a
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, pu := range r.img.pushed {
		if err := s.Sign(ctx, pu.Flavour, pu.Digest); err != nil {
			return fmt.Errorf("signing the %s image %s: %w", pu.Flavour, pu.Digest, err)
		}
		if err := saveSigned(ctx, p, l, pu); err != nil {
			return err
		}
	}
	if r.key == nil {
		return errors.New("the archive key is not loaded (the preflight stage loads it)")
	}
	var names []string
	for _, k := range releaseFileKinds {
		for _, a := range l.Find(k, "") {
			names = append(names, a.Path)
		}
	}
	sort.Strings(names)
	_, err = sbom.WriteSignedSums(p.OutDir(), names, r.signer, r.key, p.Epoch(), l)
	return err
}

// publishImages tags the images pushed by digest: 2.4.3, 2.4.3-<release>,
// latest (and the base image's bookworm). It runs last, after verify, so a
// failure anywhere before leaves no tag.
func (r *runner) publishImages(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	if len(r.img.pushed) == 0 {
		return nil
	}
	if err := oci.Tag(ctx, r.img.pushed); err != nil {
		return err
	}
	if r.o.Log != nil {
		for _, pu := range r.img.pushed {
			var tags []string
			for _, t := range pu.Tags {
				tags = append(tags, t.TagStr())
			}
			fmt.Fprintf(r.o.Log, "publish: %s tagged %s\n", pu.Digest.Context(), strings.Join(tags, ", "))
		}
	}
	return nil
}
