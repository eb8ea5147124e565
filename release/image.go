package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	// The sources stage fetched and verified the image pins already:
	// hand them to the image build's cache instead of fetching twice.
	seedRootfsCache(filepath.Join(p.CacheDir(), "inputs"), c.Rootfs.CacheDir, c.Flavours[0].Pins)
	if err := os.RemoveAll(c.WorkDir); err != nil {
		return err
	}
	images, err := oci.Build(ctx, c)
	if err != nil {
		return err
	}
	defer os.RemoveAll(c.WorkDir)
	if err := oci.WriteLayout(filepath.Join(p.OutDir(), ImageLayoutDir), images); err != nil {
		return err
	}
	tarPath := filepath.Join(p.OutDir(), filepath.FromSlash(ImageTarball))
	if err := oci.WriteTarball(tarPath, TarballRepo, images); err != nil {
		return err
	}
	var pushed []oci.Pushed
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
	if _, err := l.AddFile(pipeline.KindOCILayout, "halvm-images.tar", "", tarPath, ImageTarball); err != nil {
		return err
	}
	return nil
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
