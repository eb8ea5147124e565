package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/oci/registry"
	"github.com/halvm/halvm-release/verify"
)

// ServeSavedImages makes a release's images pullable again when the
// registry they were pushed to was a throwaway one on this machine's
// loopback (a demo's) that no longer serves them: it starts a local
// registry per image, loads each flavour's saved signed image (SignedDir, the
// `cosign save` layout the sign stage wrote) into it under the same
// repository path, checks the digest is the ledger's, and points the
// ledger's image ref there, in memory. The signatures verify wherever the
// image is served: they sign its digest. A release pushed to any other
// registry is verified in that registry, never from dist/: there nothing
// is re-served. stop closes the registry (a no-op when none was needed).
func ServeSavedImages(ctx context.Context, env *verify.Env, scratch string, log io.Writer) (stop func() error, err error) {
	if log == nil {
		log = io.Discard
	}
	var regs []*registry.Registry
	stop = func() error {
		var errs []error
		for _, r := range regs {
			errs = append(errs, r.Close())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (func() error, error) {
		stop()
		return func() error { return nil }, err
	}
	for _, a := range env.Ledger.Find(pipeline.KindOCIImage, "") {
		if a.Ref == "" {
			continue
		}
		d, err := name.NewDigest(a.Ref)
		if err != nil {
			return fail(fmt.Errorf("image %s: ref %q: %w", a.Name, a.Ref, err))
		}
		if !isLoopback(d.RegistryStr()) || serves(ctx, d) {
			continue
		}
		var saved *pipeline.Artifact
		for _, s := range env.Ledger.Find(pipeline.KindOCISigned, a.Flavour) {
			s := s
			saved = &s
		}
		if saved == nil {
			return fail(fmt.Errorf("image %s: the registry %s it was pushed to no longer serves it, and the release saved no signed image (%s): verify while that registry is up, or rebuild the release", a.Name, d.RegistryStr(), SignedDir(a.Flavour)))
		}
		dir := env.Path(saved.Path)
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
			return fail(fmt.Errorf("image %s: the saved signed image: %w", a.Name, err))
		}
		// A registry of its own per image: a registry that already holds
		// a digest (a layer another image shares) skips its upload, and
		// the blob would be served from the other image's copy.
		r, err := registry.Start(filepath.Join(scratch, "registry-"+a.Flavour))
		if err != nil {
			return fail(err)
		}
		regs = append(regs, r)
		reg := r
		repo, err := name.NewRepository(reg.Addr+"/"+d.RepositoryStr(), name.Insecure)
		if err != nil {
			return fail(err)
		}
		got, err := cosign.Load(ctx, dir, repo)
		if err != nil {
			return fail(fmt.Errorf("image %s: %w", a.Name, err))
		}
		if got.DigestStr() != "sha256:"+a.SHA256 {
			return fail(fmt.Errorf("image %s: the saved signed image %s is %s, the ledger recorded sha256:%s", a.Name, saved.Path, got.DigestStr(), a.SHA256))
		}
		fmt.Fprintf(log, "verify: the registry %s of image %s is gone (a throwaway one); serving the saved signed image %s at %s\n", d.RegistryStr(), a.Name, saved.Path, got)
		a.Ref = got.String()
		env.Ledger.Add(a)
	}
	return stop, nil
}

// isLoopback says whether a registry host:port is on this machine's
// loopback interface.
func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// serves says whether the registry still has the manifest d names.
func serves(ctx context.Context, d name.Digest) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := remote.Head(d, remote.WithContext(ctx))
	return err == nil
}
