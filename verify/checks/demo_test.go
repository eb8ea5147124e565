package checks_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/registry"
	"github.com/halvm/halvm-release/release"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// TestDemoRunsTheSuite is the integration test of the whole release, on
// the one full demo run of this test binary (release.Demo: the sample
// upstream's toolchain built, packaged, imaged, signed, verified with this
// suite, published). Its subtests are what only a real release has to
// tamper with: pushed and saved images of a real toolchain, and a
// toolchain that compiles a unikernel that boots under Xen. Every other
// check is tested on the synthetic release (checkstest), which needs no
// demo: `go test -short ./verify/checks/` runs only those (about a minute).
func TestDemoRunsTheSuite(t *testing.T) {
	testenv.Short(t, "the full demo release (about 13 minutes on 2 busy cores, 7 of them its rebuild)")
	t.Run("the release's verify stage passed", demoRunsTheSuite)
	t.Run("an image built from another deb", demoImageDebs)
	t.Run("an image ref that is not the ledger's digest", demoImageRefIsTheLedgers)
	t.Run("an image without the toolchain", demoImageWithoutToolchain)
	t.Run("a saved image's shared layer swapped", demoSharedLayerSwapped)
	t.Run("a unikernel that prints the wrong text", demoBootWrongText)
}

// demoRunsTheSuite: the release's verify stage ran this suite on the
// staged repositories and wrote verify.json with every check passing or
// (only for stages the demo skips) not run.
func demoRunsTheSuite(t *testing.T) {
	f := demo(t)
	t.Logf("demo (with the verification and its rebuild) took %s:\n%s", f.taken.Round(time.Millisecond), f.log)
	for _, want := range []string{"PASS    signatures/apt-release-signatures", "PASS    signatures/rpm-signatures", "PASS    signatures/sha256sums-signatures",
		"PASS    signatures/image-signatures", "PASS    consistency/apt-repository-index", "PASS    consistency/image-installs-released-debs",
		"PASS    consistency/sbom-halvm-gmp", "PASS    reproducibility/rebuild-identical", "PASS    install/apt-install-halvm-gmp", "PASS    install/dnf-install-halvm",
		"PASS    image/image-run-halvm", "PASS    boot/xen-boot-halvm-gmp", "PASS    boot/xen-boot-image-halvm", "verify: PASS"} {
		if !strings.Contains(f.log, want) {
			t.Errorf("the demo's verification report lacks %q:\n%s", want, f.log)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dist, "verify.json")); err != nil {
		t.Error(err)
	}
}

// demoImageDebs: the images hold the released .debs' files; an image
// built from another .deb (here: the released one with one file changed,
// rebuilt with dpkg-deb) is caught with the file named.
func demoImageDebs(t *testing.T) {
	r := copyDemo(t)
	r.serveImages(t)
	res := r.runCheck(t, checks.CheckImageDebs)
	wantStatus(t, res, verify.Pass)
	if res.Checked < 10 {
		t.Errorf("checked only %d files", res.Checked)
	}
	t.Run("a different deb", func(t *testing.T) {
		r := copyDemo(t)
		r.serveImages(t)
		a := r.env.Ledger.Find(pipeline.KindDeb, "halvm")
		var deb pipeline.Artifact
		for _, x := range a {
			if x.Name == "halvm" {
				deb = x
			}
		}
		p := r.env.Path(deb.Path)
		tree := filepath.Join(t.TempDir(), "tree")
		ctx := context.Background()
		if err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "-R", p, tree}, Env: run.BaseEnv()}); err != nil {
			t.Fatal(err)
		}
		out, err := run.Output(ctx, run.Cmd{Args: []string{"find", tree, "-path", "*/DEBIAN", "-prune", "-o", "-type", "f", "-name", "*.hs", "-print", "-quit"}, Env: run.BaseEnv()})
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			t.Fatalf("no .hs file in %s: %v", deb.Path, err)
		}
		victim := string(bytes.TrimSpace(out))
		appendTo(t, victim, "-- changed\n")
		if err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "--root-owner-group", "-b", tree, p}, Env: run.BaseEnv()}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.env.Ledger.AddFile(deb.Kind, deb.Name, deb.Flavour, p, deb.Path); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(tree, victim)
		wantStatus(t, r.runCheck(t, checks.CheckImageDebs), verify.Fail, "1 image(s) do not hold the released packages", "/"+rel+": ")
	})
}

// demoImageRefIsTheLedgers: a ref that is not the ledger's digest is
// refused before anything is pulled.
func demoImageRefIsTheLedgers(t *testing.T) {
	testenv.NeedCommand(t, "docker.io", "docker")
	r := copyDemo(t)
	var l pipeline.Ledger
	for _, a := range r.env.Ledger.Artifacts() {
		if a.Kind == pipeline.KindOCIImage && a.Flavour == "halvm" {
			a.SHA256 = strings.Repeat("ab", 32)
		}
		l.Add(a)
	}
	r.env.Ledger = &l
	wantStatus(t, r.runCheck(t, checks.CheckImageRun("halvm")), verify.Fail, "is not the ledger's digest")
}

// demoImageWithoutToolchain: an image whose toolchain is missing (the
// released halvm image with /usr/bin/halvm-ghc whited out by one more
// layer), pushed to a registry and recorded by its digest, is caught by
// the image check: docker cannot run halvm-ghc in it, and the report says so.
func demoImageWithoutToolchain(t *testing.T) {
	testenv.NeedCommand(t, "docker.io", "docker")
	r := copyDemo(t)
	var img pipeline.Artifact
	for _, a := range r.env.Ledger.Find(pipeline.KindOCIImage, "halvm") {
		img = a
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(r.dist, filepath.FromSlash(release.ImageLayoutDir)))
	if err != nil {
		t.Fatal(err)
	}
	base, err := idx.Image(v1.Hash{Algorithm: "sha256", Hex: img.SHA256})
	if err != nil {
		t.Fatalf("the released halvm image in the layout: %v", err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "usr/bin/.wh.halvm-ghc", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	whiteout, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	broken, err := mutate.AppendLayers(base, whiteout)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Start(filepath.Join(t.TempDir(), "registry"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	h, err := broken.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(reg.Addr + "/halvm/halvm@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, broken); err != nil {
		t.Fatal(err)
	}
	var l pipeline.Ledger
	for _, a := range r.env.Ledger.Artifacts() {
		if a.Kind == pipeline.KindOCIImage && a.Flavour == "halvm" {
			a.SHA256, a.Ref = h.Hex, ref.String()
		}
		l.Add(a)
	}
	r.env.Ledger = &l
	res := r.runCheck(t, checks.CheckImageRun("halvm"))
	if res.Status == verify.NotRun && strings.Contains(res.Reason, "docker") {
		testenv.Unavailable(t, "docker daemon: "+res.Reason, res.Remedy)
	}
	wantStatus(t, res, verify.Fail, "the image "+ref.String()+" does not hold the toolchain: halvm-ghc is not on its PATH (docker run exits 127)")
	if !strings.Contains(res.Reason+strings.Join(res.Details, "\n"), "executable file not found") {
		t.Errorf("the report does not carry docker's own explanation: %q", res.Reason)
	}
}

// demoBootWrongText: a unikernel that prints the wrong text, compiled by
// the installed toolchain, is caught by the boot check with what it
// printed and what was expected.
func demoBootWrongText(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "qemu-system-x86", "qemu-system-x86_64")
	r := copyDemo(t)
	r.env.CacheDir = rootfstest.CacheDir()
	r.cfg.Programs = []checks.Program{{Source: "Hello.hs", Expect: "Hello, World!",
		Text: []byte("import Hypervisor.Console\nmain = do con <- initXenConsole; writeConsole con \"Goodbye, World!\\n\"\n")}}
	wantStatus(t, r.runCheck(t, checks.CheckBoot("halvm")), verify.Fail, "1 of 1 unikernel(s) built by the installed halvm did not boot as expected",
		`guest printed "Goodbye, World!", expected "Hello, World!"`)
}

// demoSharedLayerSwapped: a layer the two saved images share, swapped in
// one of them, aborts the verification naming the blob.
func demoSharedLayerSwapped(t *testing.T) {
	f := demo(t)
	out := linkRelease(t, f, "dist")
	gmp := filepath.Join(out, "oci", "cosign", "halvm-gmp", "blobs", "sha256")
	plain := filepath.Join(out, "oci", "cosign", "halvm", "blobs", "sha256")
	blobs, _ := os.ReadDir(gmp)
	var shared, other string
	var sharedSize int64
	for _, b := range blobs {
		fi, err := b.Info()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(plain, b.Name())); err == nil && fi.Size() > sharedSize {
			shared, sharedSize = b.Name(), fi.Size()
		}
	}
	for _, b := range blobs {
		if b.Name() != shared {
			other = b.Name()
		}
	}
	if shared == "" || other == "" {
		t.Fatal("no layer shared by the two saved images")
	}
	victim := filepath.Join(gmp, shared)
	data, err := os.ReadFile(filepath.Join(gmp, other))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, victim, data)
	err, rep := verifyBuilt(t, f, out)
	if err == nil || rep.Status != "fail" || !strings.Contains(rep.Aborted, victim) {
		t.Errorf("a swapped layer: %v; report %s, aborted %q (want it to name %s)", err, rep.Status, rep.Aborted, victim)
	}
}
