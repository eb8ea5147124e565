package release

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/registry"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
	"github.com/halvm/halvm-release/verify/checks/checkstest"
)

// demoChecks runs, on TestDemo's finished demo in out, the tests of the
// verify suite that only a real release can give them something to tamper
// with: pushed and saved images of a real toolchain, and a toolchain that
// compiles a unikernel that boots under Xen. Each subtest works on its own
// copy of the demo (hard links: a file is changed only by replacing it),
// so no demo is built for them. Every other check is tested on the
// synthetic release of verify/checks (checkstest), which needs no demo.
// cache is the demo's cache (its development keys), testCache the shared
// test cache (the Xen machine the boot check runs).
func demoChecks(t *testing.T, out, cache, testCache string) {
	t.Helper()
	lock, err := pins.LoadFile(filepath.Join(out, "sample.lock"))
	if err != nil {
		t.Fatal(err)
	}
	d := demoDist{dist: out, keys: devkeys.In(filepath.Join(cache, "dev-keys")), lock: lock, cache: testCache}
	t.Run("an image built from another deb", d.imageDebs)
	t.Run("an image ref that is not the ledger's digest", d.imageRefIsTheLedgers)
	t.Run("an image without the toolchain", d.imageWithoutToolchain)
	t.Run("a saved image's shared layer swapped", d.sharedLayerSwapped)
	t.Run("a unikernel that prints the wrong text", d.bootWrongText)
}

// demoDist is the finished demo the checks' tests copy.
type demoDist struct {
	dist  string
	keys  devkeys.Files
	lock  *pins.Lock
	cache string
}

// link hard-links the demo's dist/ into a fresh directory (cp -al: cheap,
// no copy of the bytes) and returns it.
func (d demoDist) link(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dist")
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-al", d.dist, dst}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// demoCopy is a private copy of the demo a test tampers with, and the
// suite's configuration for it.
type demoCopy struct {
	dist string
	cfg  checks.Config
	env  *verify.Env
}

func (d demoDist) copy(t *testing.T) *demoCopy {
	t.Helper()
	dst := d.link(t)
	env, err := verify.LoadEnv(dst, d.cache)
	if err != nil {
		t.Fatal(err)
	}
	c := &demoCopy{dist: dst, env: env}
	pub, err := os.ReadFile(d.keys.PGPPublic)
	if err != nil {
		t.Fatal(err)
	}
	cpub, err := os.ReadFile(d.keys.CosignPublic)
	if err != nil {
		t.Fatal(err)
	}
	c.cfg = checks.Config{ArchiveKey: pub, CosignKey: cpub, Lock: d.lock, Flavours: []string{"halvm", "halvm-gmp"}}
	for _, k := range []pipeline.Kind{pipeline.KindAptRepo, pipeline.KindDnfRepo} {
		as := env.Ledger.Find(k, "")
		if len(as) != 1 {
			t.Fatalf("ledger: %d %s artifacts", len(as), k)
		}
		if k == pipeline.KindAptRepo {
			c.cfg.AptDir = env.RepoPath(as[0].Path)
		} else {
			c.cfg.DnfDir = env.RepoPath(as[0].Path)
		}
	}
	return c
}

// serveImages re-serves the copy's saved signed images (the demo's
// registry is gone) and points the copy's ledger at them.
func (c *demoCopy) serveImages(t *testing.T) {
	t.Helper()
	stop, err := ServeSavedImages(context.Background(), c.env, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
}

// setImage replaces the copy's ledger by one with the halvm image recorded by
// digest hex (and by ref, if not empty).
func (c *demoCopy) setImage(hex, ref string) {
	var l pipeline.Ledger
	for _, a := range c.env.Ledger.Artifacts() {
		if a.Kind == pipeline.KindOCIImage && a.Flavour == "halvm" {
			a.SHA256 = hex
			if ref != "" {
				a.Ref = ref
			}
		}
		l.Add(a)
	}
	c.env.Ledger = &l
}

// check runs one check of the suite on the copy and returns its result.
func (c *demoCopy) check(t *testing.T, name string) verify.Result {
	t.Helper()
	return checkstest.RunCheck(t, c.env, c.cfg, name)
}

// imageDebs: the images hold the released .debs' files; an image built
// from another .deb (here: the released one with one file changed,
// rebuilt with dpkg-deb) is caught with the file named.
func (d demoDist) imageDebs(t *testing.T) {
	c := d.copy(t)
	c.serveImages(t)
	res := c.check(t, checks.CheckImageDebs)
	checkstest.WantStatus(t, res, verify.Pass)
	if res.Checked < 10 {
		t.Errorf("checked only %d files", res.Checked)
	}
	t.Run("a different deb", func(t *testing.T) {
		c := d.copy(t)
		c.serveImages(t)
		var deb pipeline.Artifact
		for _, x := range c.env.Ledger.Find(pipeline.KindDeb, "halvm") {
			if x.Name == "halvm" {
				deb = x
			}
		}
		p := c.env.Path(deb.Path)
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
		f, err := os.OpenFile(victim, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString("-- changed\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		// Built beside the copy's file, then renamed over it: the demo's
		// own file (a hard link) stays as it was.
		if err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "--root-owner-group", "-b", tree, p + ".new"}, Env: run.BaseEnv()}); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
		if _, err := c.env.Ledger.AddFile(deb.Kind, deb.Name, deb.Flavour, p, deb.Path); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(tree, victim)
		checkstest.WantStatus(t, c.check(t, checks.CheckImageDebs), verify.Fail, "1 image(s) do not hold the released packages", "/"+rel+": ")
	})
}

// imageRefIsTheLedgers: a ref that is not the ledger's digest is refused
// before anything is pulled.
func (d demoDist) imageRefIsTheLedgers(t *testing.T) {
	testenv.NeedCommand(t, "docker.io", "docker")
	c := d.copy(t)
	c.setImage(strings.Repeat("ab", 32), "")
	checkstest.WantStatus(t, c.check(t, checks.CheckImageRun("halvm")), verify.Fail, "is not the ledger's digest")
}

// imageWithoutToolchain: an image whose toolchain is missing (the
// released halvm image with /usr/bin/halvm-ghc whited out by one more
// layer), pushed to a registry and recorded by its digest, is caught by
// the image check: docker cannot run halvm-ghc in it, and the report says
// so.
func (d demoDist) imageWithoutToolchain(t *testing.T) {
	testenv.NeedCommand(t, "docker.io", "docker")
	c := d.copy(t)
	var img pipeline.Artifact
	for _, a := range c.env.Ledger.Find(pipeline.KindOCIImage, "halvm") {
		img = a
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(c.dist, filepath.FromSlash(ImageLayoutDir)))
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
	c.setImage(h.Hex, ref.String())
	res := c.check(t, checks.CheckImageRun("halvm"))
	if res.Status == verify.NotRun && strings.Contains(res.Reason, "docker") {
		testenv.Unavailable(t, "docker daemon: "+res.Reason, res.Remedy)
	}
	checkstest.WantStatus(t, res, verify.Fail, "the image "+ref.String()+" does not hold the toolchain: halvm-ghc is not on its PATH (docker run exits 127)")
	if !strings.Contains(res.Reason+strings.Join(res.Details, "\n"), "executable file not found") {
		t.Errorf("the report does not carry docker's own explanation: %q", res.Reason)
	}
}

// bootWrongText: a unikernel that prints the wrong text, compiled by the
// installed toolchain, is caught by the boot check with what it printed
// and what was expected.
func (d demoDist) bootWrongText(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "qemu-system-x86", "qemu-system-x86_64")
	c := d.copy(t)
	c.cfg.Programs = []checks.Program{{Source: "Hello.hs", Expect: "Hello, World!",
		Text: []byte("import Hypervisor.Console\nmain = do con <- initXenConsole; writeConsole con \"Goodbye, World!\\n\"\n")}}
	checkstest.WantStatus(t, c.check(t, checks.CheckBoot("halvm")), verify.Fail, "1 of 1 unikernel(s) built by the installed halvm did not boot as expected",
		`guest printed "Goodbye, World!", expected "Hello, World!"`)
}

// sharedLayerSwapped: a layer the two saved images share, swapped in one
// of them, aborts `go run mage.go verify` (VerifyBuiltWith, signature and
// consistency checks only) naming the blob.
func (d demoDist) sharedLayerSwapped(t *testing.T) {
	out := d.link(t)
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
	// A new file renamed over the victim: the demo's own blob (a hard
	// link) stays as it was.
	if err := os.WriteFile(victim+".new", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(victim+".new", victim); err != nil {
		t.Fatal(err)
	}
	// verify writes its own report: not into the demo's (a hard link).
	if err := os.Remove(filepath.Join(out, "verify.json")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HALVM_OUT": out, "HALVM_CACHE": filepath.Dir(d.keys.Dir), "HALVM_LOCK": filepath.Join(out, sbom.LockPath),
		"HALVM_PGP_PUBLIC_KEY_FILE": d.keys.PGPPublic, "HALVM_COSIGN_PUBLIC_KEY_FILE": d.keys.CosignPublic}
	var log bytes.Buffer
	err = VerifyBuiltWith(context.Background(), config.LoadVerification(func(k string) string { return env[k] }), &log, VerifyOptions{
		Select: func(c verify.Check) bool { return c.Family == verify.Signatures || c.Family == verify.Consistency },
	})
	t.Logf("verify %s: %v\n%s", out, err, log.String())
	b, rerr := os.ReadFile(filepath.Join(out, "verify.json"))
	if rerr != nil {
		t.Fatalf("no report: %v", rerr)
	}
	var rep struct{ Status, Aborted string }
	if jerr := json.Unmarshal(b, &rep); jerr != nil {
		t.Fatalf("verify.json: %v", jerr)
	}
	if err == nil || rep.Status != "fail" || !strings.Contains(rep.Aborted, victim) {
		t.Errorf("a swapped layer: %v; report %s, aborted %q (want it to name %s)", err, rep.Status, rep.Aborted, victim)
	}
}
