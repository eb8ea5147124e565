package release

import (
	"bytes"
	"context"
	"fmt"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/oci/registry"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sbom"
)

// standInDeb builds a toolchain .deb named like the flavour whose Depends
// are the real package's (packaging.Depends), so the lock's image-deps pins
// are exactly its closure.
func standInDeb(t *testing.T, dir, flavour, version string) string {
	t.Helper()
	root := filepath.Join(dir, flavour+"-root")
	for _, d := range []string{"DEBIAN", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: HaLVM <halvm@example.org>\nDepends: %s\nSection: devel\nPriority: optional\nDescription: HaLVM toolchain (test stand-in)\n Builds Haskell programs into Xen unikernels.\n",
		flavour, version, strings.Join(packaging.Depends[packaging.Deb], ", "))
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/halvm-ghc"), []byte("#!/bin/sh\necho 'HaLVM "+version+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, flavour+"_"+version+"_amd64.deb")
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"dpkg-deb", "--build", "--root-owner-group", root, out},
		Env: run.BaseEnv("SOURCE_DATE_EPOCH=1544054400")}); err != nil {
		t.Fatal(err)
	}
	return out
}

// imageRun is one run of the image stage in its own dist/.
func imageRun(t *testing.T, lock *pins.Lock, deb, dir, cache, registry string) (*runner, pipeline.Plan, *pipeline.Ledger) {
	t.Helper()
	p, err := pipeline.NewPlan(pipeline.Config{Version: lock.Release.Version, Release: 1, Flavours: []string{"halvm"}, Epoch: lock.Release.Epoch(),
		LockPath: "../pins/halvm.lock", OutDir: filepath.Join(dir, "dist"), CacheDir: cache, WorkDir: filepath.Join(dir, "work")})
	if err != nil {
		t.Fatal(err)
	}
	var l pipeline.Ledger
	rel := "packages/" + filepath.Base(deb)
	dst := filepath.Join(p.OutDir(), rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(deb, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddFile(pipeline.KindDeb, "halvm", "halvm", dst, rel); err != nil {
		t.Fatal(err)
	}
	r := &runner{o: Options{Lock: lock, Registry: registry}}
	start := time.Now()
	if err := r.image(context.Background(), p, &l); err != nil {
		t.Fatal(err)
	}
	t.Logf("image stage (%s): %s", dir, time.Since(start).Round(time.Second))
	return r, p, &l
}

// TestImageSignPublish runs the image stage twice on a stand-in .deb with
// the committed lock's image pins (the second time with an empty root
// filesystem cache: same digests and tarball bytes), pushes by digest to
// an in-process registry, signs and attests with the sign stage, checks the
// signatures with cosign.Verify and SHA256SUMS with gpgv and the cosign
// public key, and only then tags with publishImages.
func TestImageSignPublish(t *testing.T) {
	testenv.Short(t, "two image builds with mmdebstrap (about 3 minutes)")
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	testenv.NeedCommand(t, "gpgv", "gpgv")
	ctx := context.Background()
	lock, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cache := rootfstest.CacheDir()
	deb := standInDeb(t, dir, "halvm", lock.Release.Version+"-1")

	reg, err := registry.Start(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	prefix := reg.Addr + "/halvm"

	// Run 1 shares the test cache (root filesystems cached by their
	// inputs); run 2 bootstraps everything afresh.
	r, p, l := imageRun(t, lock, deb, filepath.Join(dir, "a"), filepath.Join(cache, "release-image"), prefix)
	// Run 2 gets the verified .debs as the sources stage would hand them
	// over (no second download), nothing else.
	fresh := filepath.Join(dir, "fresh-cache")
	cached, _ := filepath.Glob(filepath.Join(cache, "release-image", "oci", "debs", "sha256", "*.deb"))
	if err := os.MkdirAll(filepath.Join(fresh, "inputs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cached {
		if err := copyFile(c, filepath.Join(fresh, "inputs", "sha256", strings.TrimSuffix(filepath.Base(c), ".deb"))); err != nil {
			t.Fatal(err)
		}
	}
	_, _, l2 := imageRun(t, lock, deb, filepath.Join(dir, "b"), fresh, "")
	img1, img2 := l.Find(pipeline.KindOCIImage, "halvm"), l2.Find(pipeline.KindOCIImage, "halvm")
	if len(img1) != 1 || len(img2) != 1 {
		t.Fatalf("want one oci-image per run, got %v %v", img1, img2)
	}
	if img1[0].SHA256 != img2[0].SHA256 || img1[0].Size != img2[0].Size || img1[0].SHA256 == "" {
		t.Fatalf("same inputs, different images: %+v vs %+v", img1[0], img2[0])
	}
	if img2[0].Ref != "" {
		t.Errorf("an image that was not pushed has Ref %q", img2[0].Ref)
	}
	wantRef := prefix + "/halvm@sha256:" + img1[0].SHA256
	if img1[0].Ref != wantRef {
		t.Errorf("Ref = %q, want %q", img1[0].Ref, wantRef)
	}
	lay1, lay2 := l.Find(pipeline.KindOCILayout, ""), l2.Find(pipeline.KindOCILayout, "")
	if len(lay1) != 1 || lay1[0].Name != "halvm-images.tar" || lay1[0].Path != "oci/halvm-images.tar" {
		t.Fatalf("oci-layout ledger entry: %+v", lay1)
	}
	if len(lay2) != 1 || lay1[0].SHA256 != lay2[0].SHA256 {
		t.Errorf("the docker tarballs differ: %+v vs %+v", lay1, lay2)
	}
	if _, err := os.Stat(filepath.Join(p.OutDir(), ImageLayoutDir, "index.json")); err != nil {
		t.Errorf("no OCI layout: %v", err)
	}

	// Pushed by digest, untagged.
	ref, err := name.NewDigest(img1[0].Ref)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(ref.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 0 {
		t.Errorf("the image stage wrote tags: %v", tags)
	}

	// Sign: attestations from the flavour's documents.
	for _, d := range []struct {
		kind pipeline.Kind
		file string
	}{{pipeline.KindSPDX, "spdx.json"}, {pipeline.KindCycloneDX, "cyclonedx.json"}, {pipeline.KindProvenance, "provenance.json"}} {
		b, err := os.ReadFile(filepath.Join("..", "oci", "testdata", d.file))
		if err != nil {
			t.Fatal(err)
		}
		rel := "sbom/halvm." + d.file
		if err := fsutil.WriteFileAtomic(filepath.Join(p.OutDir(), rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddFile(d.kind, "halvm."+d.file, "halvm", filepath.Join(p.OutDir(), rel), rel); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := devkeys.Ensure(filepath.Join(dir, "keys"), lock.Release.Epoch())
	if err != nil {
		t.Fatal(err)
	}
	k, err := pgp.LoadKey(keys.PGPSource())
	if err != nil {
		t.Fatal(err)
	}
	r.out.preflight = &preflightResult{key: k}
	r.o.CosignKey = keys.CosignSource()
	if err := r.sign(ctx, p, l); err != nil {
		t.Fatal(err)
	}
	pub, err := cosign.PublicKeyPEM(r.out.sign.signer)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{cosign.PredicateSPDX, cosign.PredicateCycloneDX, cosign.PredicateSLSA1}
	v, err := cosign.Verify(ctx, ref, cosign.VerifyOptions{PublicKey: pub, PredicateTypes: all})
	if err != nil {
		t.Fatal(err)
	}
	if v.Signatures < 1 || len(v.PredicateTypes) != 3 {
		t.Errorf("verified %+v", v)
	}

	// SHA256SUMS: every release file, gpgv and the cosign key agree.
	sums, err := os.ReadFile(filepath.Join(p.OutDir(), sbom.SumsName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"packages/" + filepath.Base(deb), "oci/halvm-images.tar", "sbom/halvm.spdx.json", "sbom/halvm.cyclonedx.json", "sbom/halvm.provenance.json"} {
		if !bytes.Contains(sums, []byte("  "+want+"\n")) {
			t.Errorf("SHA256SUMS does not list %s:\n%s", want, sums)
		}
	}
	if err := sbom.VerifySums(p.OutDir(), sums); err != nil {
		t.Error(err)
	}
	sig, err := os.ReadFile(filepath.Join(p.OutDir(), sbom.SumsCosign))
	if err != nil {
		t.Fatal(err)
	}
	if err := cosign.VerifyBlob(pub, sums, sig); err != nil {
		t.Error(err)
	}
	kr := filepath.Join(dir, "archive.gpg")
	if err := os.WriteFile(kr, k.PublicBinary(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run.Output(ctx, run.Cmd{Args: []string{"gpgv", "--homedir", dir, "--keyring", kr,
		filepath.Join(p.OutDir(), sbom.SumsOpenPGP), filepath.Join(p.OutDir(), sbom.SumsName)}, Env: run.BaseEnv()}); err != nil {
		t.Errorf("gpgv: %v\n%s", err, out)
	}
	// Signing writes no tag either.
	tags, _ = remote.List(ref.Context())
	for _, tg := range tags {
		if !strings.HasPrefix(tg, "sha256-") {
			t.Errorf("tag %s exists before publish", tg)
		}
	}

	// Publish: the three tags point at the pushed digest, and verify.
	if err := r.publishImages(ctx, p, l); err != nil {
		t.Fatal(err)
	}
	for _, tg := range []string{lock.Release.Version, lock.Release.Version + "-1", "latest"} {
		tag := ref.Context().Tag(tg)
		desc, err := remote.Get(tag)
		if err != nil {
			t.Errorf("tag %s: %v", tag, err)
			continue
		}
		if desc.Digest.Hex != img1[0].SHA256 {
			t.Errorf("tag %s -> %s, want %s", tag, desc.Digest, img1[0].SHA256)
		}
		if _, err := cosign.Verify(ctx, tag, cosign.VerifyOptions{PublicKey: pub, PredicateTypes: all}); err != nil {
			t.Errorf("verifying %s: %v", tag, err)
		}
	}
}

// TestImageInputsReported: a lock without image pins and a .deb changed
// after the packages stage are both reported, with their remedies.
func TestImageInputsReported(t *testing.T) {
	lock, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	noImage := *lock
	noImage.Debs = lock.DebsWithRole(pins.RoleTool)
	dir := t.TempDir()
	p, err := pipeline.NewPlan(pipeline.Config{Version: lock.Release.Version, Release: 1, Flavours: []string{"halvm", "halvm-gmp"}, Epoch: lock.Release.Epoch(),
		LockPath: "../pins/halvm.lock", OutDir: filepath.Join(dir, "dist"), CacheDir: filepath.Join(dir, "cache"), WorkDir: filepath.Join(dir, "work")})
	if err != nil {
		t.Fatal(err)
	}
	var l pipeline.Ledger
	deb := filepath.Join(p.OutDir(), "packages", "halvm_2.4.3-1_amd64.deb")
	if err := fsutil.WriteFileAtomic(deb, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddFile(pipeline.KindDeb, "halvm", "halvm", deb, "packages/halvm_2.4.3-1_amd64.deb"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deb, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &runner{o: Options{Lock: &noImage}}
	_, err = r.imageConfig(p, &l)
	if err == nil {
		t.Fatal("bad image inputs accepted")
	}
	for _, want := range []string{"pins:update image", "changed after the packages stage", `image cannot start: it needs the .deb "halvm-gmp" (ledger kind deb) from the packages stage, which has not run`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
