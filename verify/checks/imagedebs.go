package checks

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/verify"
)

// CheckImageDebs is the image-content consistency check's name.
const CheckImageDebs = "image-installs-released-debs"

// ImageLayoutDir is where the release writes the OCI layout of its images
// (release.ImageLayoutDir).
const ImageLayoutDir = "oci/layout"

func imageDebsCheck(c Config) verify.Check {
	return verify.Check{
		Name: CheckImageDebs, Family: verify.Consistency, Required: c.requiredUnless("image"),
		Doc:   "each flavour's image (by the ledger's manifest digest) holds every file of the released .deb with the same sha256, and dpkg records that package version as installed",
		Needs: []verify.Prereq{verify.NeedCommand("dpkg", "dpkg-deb"), c.stageRan("image")},
		Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
			return imageDebs(ctx, env)
		},
	}
}

// debFiles lists the regular files (sha256) and symlinks ("-> target")
// of a .deb's data, by absolute path, from dpkg-deb --fsys-tarfile.
func debFiles(ctx context.Context, deb string) (map[string]string, error) {
	out, err := run.Output(ctx, run.Cmd{Args: []string{"dpkg-deb", "--fsys-tarfile", deb}, Env: run.BaseEnv()})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", deb, err)
	}
	return tarDigests(bytes.NewReader(out), nil)
}

// tarDigests reads a tar stream and returns the digest of each entry
// (regular files: sha256 hex; symlinks: "-> target") keyed by absolute
// path; with want set, only those paths are hashed (others are skipped).
func tarDigests(r io.Reader, want map[string]string) (map[string]string, error) {
	tr := tar.NewReader(r)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + strings.TrimPrefix(h.Name, "./"))
		if want != nil {
			if _, ok := want[p]; !ok {
				continue
			}
		}
		switch h.Typeflag {
		case tar.TypeReg:
			s := sha256.New()
			if _, err := io.Copy(s, tr); err != nil {
				return nil, err
			}
			out[p] = hex.EncodeToString(s.Sum(nil))
		case tar.TypeSymlink:
			out[p] = "-> " + h.Linkname
		case tar.TypeLink: // the same content as its target, read before it
			out[p] = out[path.Clean("/"+strings.TrimPrefix(h.Linkname, "./"))]
		}
	}
}

func imageDebs(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
	imgs, err := env.Artifacts(pipeline.KindOCIImage, "")
	if err != nil {
		return verify.Evidence{}, err
	}
	lp, err := layout.FromPath(env.Path(ImageLayoutDir))
	if err != nil {
		return verify.Evidence{}, fmt.Errorf("opening the image layout %s: %w", ImageLayoutDir, err)
	}
	var ev verify.Evidence
	var errs []error
	for _, a := range imgs {
		n, err := imageHoldsDeb(ctx, env, lp, a)
		ev.Checked += n
		if err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", a.Name, err))
			continue
		}
		ev.Details = append(ev.Details, fmt.Sprintf("image %s sha256:%s: %d files of the released .deb, byte for byte; dpkg status: installed", a.Name, a.SHA256, n))
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("%d image(s) do not hold the released packages:\n%w", len(errs), errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("%d images hold the %d files of their flavour's released .deb with the same sha256 (flattened layers vs dpkg-deb --fsys-tarfile) and dpkg records the released version installed", len(imgs), ev.Checked)
	return ev, nil
}

func imageHoldsDeb(ctx context.Context, env *verify.Env, lp layout.Path, a pipeline.Artifact) (int, error) {
	var deb *pipeline.Artifact
	for _, d := range env.Ledger.Find(pipeline.KindDeb, a.Flavour) {
		if d.Name == a.Flavour {
			d := d
			deb = &d
		}
	}
	if deb == nil {
		return 0, fmt.Errorf("no .deb of flavour %s in the ledger", a.Flavour)
	}
	f, err := env.Open(*deb)
	if err != nil {
		return 0, err
	}
	ctl, err := debian.ReadControl(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", deb.Path, err)
	}
	want, err := debFiles(ctx, env.Path(deb.Path))
	if err != nil {
		return 0, err
	}
	if len(want) == 0 {
		return 0, fmt.Errorf("%s installs no files", deb.Path)
	}
	img, err := servedImage(ctx, lp, a)
	if err != nil {
		return 0, err
	}
	const status = "/var/lib/dpkg/status"
	wantAll := map[string]string{status: ""}
	for p := range want {
		wantAll[p] = ""
	}
	rc := mutate.Extract(img)
	got, err := statusAndDigests(rc, wantAll, status)
	rc.Close()
	if err != nil {
		return 0, fmt.Errorf("reading the image's file system: %w", err)
	}
	var bad []string
	n := 0
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		g, ok := got.digests[p]
		switch {
		case !ok:
			bad = append(bad, p+": not in the image")
		case g != want[p]:
			bad = append(bad, fmt.Sprintf("%s: %s in the image, %s in %s", p, g, want[p], filepath.Base(deb.Path)))
		default:
			n++
		}
	}
	name, ver := ctl.Get("Package"), ctl.Get("Version")
	if !got.installed(name, ver) {
		bad = append(bad, fmt.Sprintf("%s: does not record %s %s as \"install ok installed\"", status, name, ver))
	}
	if len(bad) > 0 {
		return n, fmt.Errorf("%d difference(s) from %s:\n%s", len(bad), filepath.Base(deb.Path), strings.Join(bad, "\n"))
	}
	return n, nil
}

type imageFS struct {
	digests map[string]string
	status  []debian.Paragraph
}

func (f imageFS) installed(name, version string) bool {
	for _, p := range f.status {
		if p.Get("Package") == name && p.Get("Version") == version && p.Get("Status") == "install ok installed" {
			return true
		}
	}
	return false
}

func statusAndDigests(r io.Reader, want map[string]string, status string) (imageFS, error) {
	var fs imageFS
	fs.digests = map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fs, nil
		}
		if err != nil {
			return fs, err
		}
		p := path.Clean("/" + strings.TrimPrefix(h.Name, "./"))
		if _, ok := want[p]; !ok {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if p == status {
				b, err := io.ReadAll(tr)
				if err != nil {
					return fs, err
				}
				if fs.status, err = debian.ParseParagraphs(b); err != nil {
					return fs, fmt.Errorf("%s: %w", status, err)
				}
				continue
			}
			s := sha256.New()
			if _, err := io.Copy(s, tr); err != nil {
				return fs, err
			}
			fs.digests[p] = hex.EncodeToString(s.Sum(nil))
		case tar.TypeSymlink:
			fs.digests[p] = "-> " + h.Linkname
		case tar.TypeLink: // the same content as its target, read before it
			fs.digests[p] = fs.digests[path.Clean("/"+strings.TrimPrefix(h.Linkname, "./"))]
		}
	}
}

// servedImage is the image users pull: from the registry it was pushed to
// (or re-served from the saved signed image), by digest, its layers
// verified against their digests as they are read. An image that was not
// pushed is read from the release's layout.
func servedImage(ctx context.Context, lp layout.Path, a pipeline.Artifact) (v1.Image, error) {
	if a.Ref == "" {
		img, err := lp.Image(v1.Hash{Algorithm: "sha256", Hex: a.SHA256})
		if err != nil {
			return nil, fmt.Errorf("the layout %s has no image sha256:%s (the ledger's digest): %w", ImageLayoutDir, a.SHA256, err)
		}
		return img, nil
	}
	ref, err := name.NewDigest(a.Ref)
	if err != nil {
		return nil, fmt.Errorf("ref %q is not by digest: %w", a.Ref, err)
	}
	img, err := remote.Image(ref, append(registryOptions(ref), remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("pulling the served image %s: %w", a.Ref, err)
	}
	return img, nil
}
