package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
)

// signResult is what sign hands on: the loaded cosign key (nil when sign
// was unchanged since an earlier run: cosignPublic loads it then).
type signResult struct {
	signer signature.SignerVerifier
}

// signInput is what sign reads: the archive key (preflight), the images
// pushed by digest (image; none when it was skipped or had no registry),
// each pushed flavour's SBOM and provenance (sbom, from the ledger) and
// the release files SHA256SUMS covers (the ledger).
type signInput struct {
	key          *pgp.Key
	pushed       []oci.Pushed
	attestations map[string][]cosign.Attestation
	files        []string
}

func (r *runner) signInput(p pipeline.Plan, l *pipeline.Ledger) (signInput, error) {
	in := signInput{attestations: map[string][]cosign.Attestation{}}
	var errs []error
	k, err := r.archiveKey(p, l, "sign")
	if err != nil {
		errs = append(errs, err)
	}
	in.key = k
	if r.out.image != nil {
		in.pushed = r.out.image.pushed
	} else if _, skipped := p.SkipReason("image"); !skipped {
		errs = append(errs, pipeline.MissingInput(p, l, "sign", "the pushed images", "image"))
	}
	for _, pu := range in.pushed {
		a, err := attestations(p, l, pu.Flavour)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		in.attestations[pu.Flavour] = a
	}
	for _, k := range releaseFileKinds {
		for _, a := range l.Find(k, "") {
			in.files = append(in.files, a.Path)
		}
	}
	sort.Strings(in.files)
	return in, errors.Join(errs...)
}

// attestations are the flavour's SBOM and provenance documents, as the
// sbom stage recorded them.
func attestations(p pipeline.Plan, l *pipeline.Ledger, flavour string) ([]cosign.Attestation, error) {
	var out []cosign.Attestation
	var errs []error
	for _, k := range []struct {
		kind      pipeline.Kind
		typ, what string
	}{{pipeline.KindSPDX, cosign.PredicateSPDX, "SPDX SBOM"}, {pipeline.KindCycloneDX, cosign.PredicateCycloneDX, "CycloneDX SBOM"}, {pipeline.KindProvenance, cosign.PredicateSLSA1, "SLSA provenance"}} {
		a := l.Find(k.kind, flavour)
		if len(a) == 0 {
			errs = append(errs, pipeline.MissingInput(p, l, "sign", fmt.Sprintf("the %s of %s (ledger kind %s)", k.what, flavour, k.kind), "sbom"))
			continue
		}
		if len(a) != 1 {
			errs = append(errs, fmt.Errorf("%s of %s: want one in the ledger, found %d", k.kind, flavour, len(a)))
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
	in, err := r.signInput(p, l)
	if err != nil {
		return err
	}
	sv, err := cosign.LoadSigner(r.o.CosignKey)
	if err != nil {
		return fmt.Errorf("cosign key: %w (set HALVM_COSIGN_KEY_FILE and HALVM_COSIGN_PASSWORD_FILE, or run `go run mage.go keys:dev` for a trial)", err)
	}
	r.out.sign = &signResult{signer: sv}
	if len(in.pushed) == 0 {
		if _, skipped := p.SkipReason("image"); !skipped && r.o.Official {
			return errors.New("the images were not pushed, so they cannot be signed: an official release needs a registry (set HALVM_REGISTRY)")
		}
		if r.o.Log != nil {
			fmt.Fprintln(r.o.Log, "sign: no pushed images (no registry configured): image signatures skipped, SHA256SUMS still signed")
		}
	}
	s := &cosign.Signer{SV: sv, Attestations: in.attestations}
	for _, pu := range in.pushed {
		if err := s.Sign(ctx, pu.Flavour, pu.Digest); err != nil {
			return fmt.Errorf("signing the %s image %s: %w", pu.Flavour, pu.Digest, err)
		}
		if err := saveSigned(ctx, p, l, pu); err != nil {
			return err
		}
	}
	_, err = sbom.WriteSignedSums(p.OutDir(), in.files, sv, in.key, p.Epoch(), l)
	return err
}

// signedState is what the sign stage hands on: the flavours whose signed
// images it saved.
type signedState struct {
	Saved []string `json:"saved"`
}

// signReuse: the saved signed images are outputs, digested whole; a reuse
// pushes them (images, signatures, attestations) to the registry again,
// which a throwaway registry needs and a lasting one already holds.
func (r *runner) signReuse() *pipeline.Reuse {
	keyAndImages := func(_ context.Context, _ pipeline.Plan, _ *pipeline.Ledger, m map[string]string) error {
		pub, err := r.cosignPublic()
		if err != nil {
			return err
		}
		m["cosign-key"] = sha256Hex(pub)
		var pushed []string
		for _, pu := range r.pushed() {
			pushed = append(pushed, pu.Flavour+"@"+pu.Digest.DigestStr())
		}
		m["pushed"] = strings.Join(pushed, " ")
		return nil
	}
	return r.reuseOf("sign", keyAndImages, pipeline.Reuse{
		State: func() (json.RawMessage, error) {
			var s signedState
			for _, pu := range r.pushed() {
				s.Saved = append(s.Saved, pu.Flavour)
			}
			return json.Marshal(s)
		},
		Outputs: func(_ context.Context, p pipeline.Plan, state json.RawMessage) (map[string]string, error) {
			var s signedState
			if err := json.Unmarshal(state, &s); err != nil {
				return nil, err
			}
			dirs := map[string]string{}
			for _, fl := range s.Saved {
				dirs["signed "+fl] = filepath.Join(p.OutDir(), filepath.FromSlash(SignedDir(fl)))
			}
			return treeDigests(dirs)
		},
		Restore: func(ctx context.Context, p pipeline.Plan, _ *pipeline.Ledger, _ pipeline.Memo) error {
			for _, pu := range r.pushed() {
				d, err := cosign.Load(ctx, filepath.Join(p.OutDir(), filepath.FromSlash(SignedDir(pu.Flavour))), pu.Digest.Context())
				if err != nil {
					return err
				}
				if d.DigestStr() != pu.Digest.DigestStr() {
					return fmt.Errorf("the saved signed %s image is %s, the image is %s", pu.Flavour, d.DigestStr(), pu.Digest.DigestStr())
				}
			}
			r.out.sign = &signResult{}
			return nil
		},
	})
}

// pushed are the images the image stage pushed by digest (none when it
// was skipped or had no registry).
func (r *runner) pushed() []oci.Pushed {
	if r.out.image == nil {
		return nil
	}
	return r.out.image.pushed
}
