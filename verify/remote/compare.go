package remote

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/verify/signed"
	"github.com/halvm/halvm-release/verify/vsa"
)

// Artifact is one published artifact and its verdict.
type Artifact struct {
	// Name is where it is published, relative to the publish root
	// (files/<id>/deb/..., apt/pool/..., dnf/Packages/...), or an image
	// reference by digest.
	Name    string
	SHA256  string // the published bytes' sha256 (an image's manifest digest)
	Verdict signed.Verdict
}

// Image is a rebuilt image: its flavour and manifest digest (hex).
type Image struct {
	Flavour, Digest string
}

// Rebuilt is what a rebuild made: its output directory (the release files
// at the paths SHA256SUMS names), its staged apt and dnf publications and
// its images.
type Rebuilt struct {
	Out      string
	Apt, Dnf string
	Images   []Image
}

// Compare judges every artifact of the published release r against the
// rebuild b with the published keys k (verify/signed: signed artifacts on
// the content their signature covers, the rest byte for byte): each file
// SHA256SUMS lists, SHA256SUMS and its signatures, every file of the apt
// and dnf publications, and each image by digest in the registry
// repository prefix registry ("" when the images are judged by the
// published layout tarball, a file of SHA256SUMS).
func Compare(ctx context.Context, r *Release, b Rebuilt, k signed.Keys, registry string) []Artifact {
	var out []Artifact
	add := func(prefix, root string, vs ...signed.Verdict) {
		for _, v := range vs {
			sum := ""
			if _, s, err := fsutil.HashFile(filepath.Join(root, filepath.FromSlash(v.Path))); err == nil {
				sum = s
			}
			out = append(out, Artifact{Name: prefix + v.Path, SHA256: sum, Verdict: v})
		}
	}
	filesPrefix := "files/" + r.ID + "/"
	if r.ID == "" {
		filesPrefix = "" // a local release (verify): the names SHA256SUMS gives
	}
	add(filesPrefix, r.Files, signed.Sums(r.Files, b.Out, k)...)
	for _, s := range r.Sums {
		add(filesPrefix, r.Files, signed.File(r.Files, b.Out, s.Name, k))
	}
	for _, p := range []struct{ name, pub, reb string }{{"apt", r.Apt, b.Apt}, {"dnf", r.Dnf, b.Dnf}} {
		if p.pub == "" {
			continue
		}
		if p.reb == "" {
			out = append(out, Artifact{Name: p.name + "/", Verdict: signed.Verdict{Path: p.name, Status: signed.Missing, How: "the rebuild's publication", Detail: []string{"the rebuild staged no " + p.name + " publication"}}})
			continue
		}
		vs, err := signed.Tree(p.pub, p.reb, k, nil)
		if err != nil {
			out = append(out, Artifact{Name: p.name + "/", Verdict: signed.Verdict{Path: p.name, Status: signed.Differs, How: "the publication", Detail: []string{err.Error()}}})
			continue
		}
		add(p.name+"/", p.pub, vs...)
	}
	if registry == "" && len(b.Images) > 0 {
		r.Notes = append(r.Notes, "the images are judged by the published image layout tarballs (files of SHA256SUMS), not in a registry: none given (HALVM_REBUILD_REGISTRY)")
	}
	for _, im := range b.Images {
		if registry != "" {
			out = append(out, compareImage(ctx, im, registry))
		}
	}
	return out
}

// compareImage looks the rebuilt image up by digest in the registry the
// release was pushed to: a registry serves a manifest by digest only when
// it holds exactly those bytes.
func compareImage(ctx context.Context, im Image, registry string) Artifact {
	const how = "the rebuilt image's manifest digest, served by the release's registry"
	ref := strings.TrimRight(registry, "/") + "/" + im.Flavour + "@sha256:" + im.Digest
	a := Artifact{Name: ref, SHA256: im.Digest, Verdict: signed.Verdict{Path: ref, How: how}}
	d, err := name.NewDigest(ref)
	if err != nil {
		a.Verdict.Status, a.Verdict.Detail = signed.Differs, []string{err.Error()}
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	desc, err := remote.Head(d, remote.WithContext(ctx))
	switch {
	case err != nil:
		a.Verdict.Status, a.Verdict.Detail = signed.Differs, []string{fmt.Sprintf("the registry serves no image with the rebuilt digest: %v", err)}
	case desc.Digest.Hex != im.Digest:
		a.Verdict.Status, a.Verdict.Detail = signed.Differs, []string{"the registry answers with digest " + desc.Digest.String()}
	default:
		a.Verdict.Status = signed.Identical
	}
	return a
}

// Passed says whether every artifact is IDENTICAL.
func Passed(as []Artifact) bool {
	for _, a := range as {
		if a.Verdict.Status != signed.Identical {
			return false
		}
	}
	return len(as) > 0
}

// Report is the readable report: one line per artifact, IDENTICAL or
// DIFFERS (MISSING, EXTRA) with the comparison made, and under each that
// is not IDENTICAL why, with verify/diff's listing.
func Report(r *Release, as []Artifact) []byte {
	var b strings.Builder
	n := 0
	for _, a := range as {
		if a.Verdict.Status == signed.Identical {
			n++
		}
	}
	verdict := "PASSED"
	if !Passed(as) {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "rebuild of %s/files/%s/: %s, %d of %d artifacts IDENTICAL\n", r.Base, r.ID, verdict, n, len(as))
	for _, note := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", note)
	}
	for _, a := range as {
		fmt.Fprintf(&b, "%-9s %s (%s)\n", a.Verdict.Status, a.Name, a.Verdict.How)
		for _, d := range a.Verdict.Detail {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	return []byte(b.String())
}

// WriteReport writes Report into path.
func WriteReport(path string, r *Release, as []Artifact) error {
	return os.WriteFile(path, Report(r, as), 0o644)
}

// Summary is in with its subjects and verdict from the artifacts: one
// subject per artifact, by its published digest, with its verdict; an
// artifact with no published bytes (EXTRA) is named by the rebuild's.
func Summary(in vsa.Input, r *Release, as []Artifact) vsa.Input {
	in.ResourceURI = r.Base + "/files/" + r.ID + "/"
	in.Passed = Passed(as)
	in.Artifacts = Verdicts(as)
	return in
}

// Verdicts are the artifacts' verdicts as a verification summary states
// them: one per artifact, by its published digest, with its verdict and
// the first line of why; an artifact with no published bytes (EXTRA) is
// named by an all-zero digest. The URL rebuild and verify's
// reproducibility check state theirs alike.
func Verdicts(as []Artifact) []vsa.Artifact {
	var out []vsa.Artifact
	for _, a := range as {
		sum := a.SHA256
		if sum == "" {
			sum = strings.Repeat("0", 64) // nothing published: no digest to name
		}
		d := ""
		if len(a.Verdict.Detail) > 0 {
			d = a.Verdict.Detail[0]
			if len(d) > 200 {
				d = d[:200] + "..."
			}
		}
		out = append(out, vsa.Artifact{Name: a.Name, SHA256: sum, Verdict: string(a.Verdict.Status), Detail: d})
	}
	return out
}

// ReadRebuilt is what the finished rebuild in dir made: its staged
// publications and its images, from its ledger.
func ReadRebuilt(dir string) (Rebuilt, error) {
	l, err := pipeline.ReadLedger(filepath.Join(dir, "ledger.json"))
	if err != nil {
		return Rebuilt{}, fmt.Errorf("the rebuild %s holds no finished rebuild: %w", dir, err)
	}
	b := Rebuilt{Out: dir}
	for _, p := range []struct {
		kind pipeline.Kind
		dst  *string
	}{{pipeline.KindAptRepo, &b.Apt}, {pipeline.KindDnfRepo, &b.Dnf}} {
		if as := l.Find(p.kind, ""); len(as) > 0 {
			d := as[0].Path
			if !filepath.IsAbs(d) {
				d = filepath.Join(dir, "repos", filepath.FromSlash(d))
			}
			*p.dst = d
		}
	}
	for _, a := range l.Find(pipeline.KindOCIImage, "") {
		b.Images = append(b.Images, Image{Flavour: a.Flavour, Digest: a.SHA256})
	}
	return b, nil
}
