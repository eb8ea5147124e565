package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/oci/registry"
	"github.com/halvm/halvm-release/verify"
)

// TestServeSavedImages: once the throwaway registry an image was pushed
// to is gone, its saved signed image is served from a new one with the
// same digest and valid signatures; without a saved image the error says
// what is missing; a registry that is not on loopback is never replaced.
func TestServeSavedImages(t *testing.T) {
	ctx := context.Background()
	dist := t.TempDir()
	reg, err := registry.Start(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	repo, _ := name.NewRepository(reg.Addr + "/halvm/halvm")
	ref := repo.Digest(h.String())
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	key, pub, err := cosign.GenerateKey([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.ParseSigner(key, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (&cosign.Signer{SV: sv}).Sign(ctx, "halvm", ref); err != nil {
		t.Fatal(err)
	}
	if err := cosign.Save(ctx, ref, filepath.Join(dist, SignedDir("halvm"))); err != nil {
		t.Fatal(err)
	}
	image := pipeline.Artifact{Kind: pipeline.KindOCIImage, Name: "halvm", Flavour: "halvm", SHA256: h.Hex, Ref: ref.String()}
	saved := pipeline.Artifact{Kind: pipeline.KindOCISigned, Name: "halvm", Flavour: "halvm", Path: SignedDir("halvm"), Ref: ref.String()}
	envWith := func(as ...pipeline.Artifact) *verify.Env {
		var l pipeline.Ledger
		for _, a := range as {
			l.Add(a)
		}
		return &verify.Env{Dist: dist, Ledger: &l}
	}

	// While the registry is up, nothing is re-served.
	env := envWith(image, saved)
	stop, err := ServeSavedImages(ctx, env, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if got := env.Ledger.Find(pipeline.KindOCIImage, "halvm")[0].Ref; got != ref.String() {
		t.Fatalf("a live registry's ref was replaced by %s", got)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	stop, err = ServeSavedImages(ctx, env, t.TempDir(), &log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got := env.Ledger.Find(pipeline.KindOCIImage, "halvm")[0].Ref
	if got == ref.String() || !strings.HasSuffix(got, "/halvm/halvm@"+h.String()) {
		t.Fatalf("ref after re-serving: %s", got)
	}
	if !strings.Contains(log.String(), "serving the saved signed image oci/cosign/halvm") {
		t.Errorf("log: %s", log.String())
	}
	d, err := name.NewDigest(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.Verify(ctx, d, cosign.VerifyOptions{PublicKey: pub}); err != nil {
		t.Errorf("the re-served image does not verify: %v", err)
	}

	// Gone, and nothing saved.
	if _, err := ServeSavedImages(ctx, envWith(image), t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "the release saved no signed image (oci/cosign/halvm)") {
		t.Errorf("no saved image: %v", err)
	}
	// Saved, but not the recorded image.
	wrong := image
	wrong.SHA256 = strings.Repeat("0", 64)
	wrong.Ref = reg.Addr + "/halvm/halvm@sha256:" + wrong.SHA256
	if _, err := ServeSavedImages(ctx, envWith(wrong, saved), t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "the ledger recorded sha256:"+wrong.SHA256) {
		t.Errorf("a saved image with another digest: %v", err)
	}
	// Not on loopback: verified where it is, never re-served.
	remoteImg := image
	remoteImg.Ref = "registry.example.org/halvm/halvm@" + h.String()
	env = envWith(remoteImg, saved)
	if _, err := ServeSavedImages(ctx, env, t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	if got := env.Ledger.Find(pipeline.KindOCIImage, "halvm")[0].Ref; got != remoteImg.Ref {
		t.Errorf("a remote registry's ref was replaced by %s", got)
	}
	if _, err := os.Stat(filepath.Join(dist, SignedDir("halvm"), "index.json")); err != nil {
		t.Error(err)
	}
}
