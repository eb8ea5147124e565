package oci

import (
	"context"
	"fmt"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/regcache/regtest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/baseimage"
	"github.com/halvm/halvm-release/oci/cosign"
)

// testCache is the content-addressed download cache shared by test runs.
func testCache(t *testing.T) string {
	return rootfstest.CacheDir() // the one definition of the shared test cache
}

// halvmGHC is the stand-in toolchain: answers --version and "compiles".
const halvmGHC = `#!/bin/sh
set -e
case "$1" in
--version) echo "The Glorious Glasgow Haskell Compilation System, version 8.0.2 (HaLVM @VERSION@)"; exit 0;;
--help|"") echo "Usage: halvm-ghc [--make] FILE.hs"; exit 0;;
--make) shift;;
esac
src="$1"
[ -f "$src" ] || { echo "halvm-ghc: can't find $src" >&2; exit 1; }
out="${src%.hs}"
make --version >/dev/null
printf 'HaLVM unikernel from %s\n' "$src" > "$out"
echo "[1 of 1] Compiling Main ( $src, $out.o )"
echo "Linking $out ..."
`

// buildDeb builds a tiny toolchain .deb with dpkg-deb.
func buildDeb(t *testing.T, dir, pkg, version, depends string) string {
	t.Helper()
	root := filepath.Join(dir, pkg+"-"+version)
	for _, d := range []string{"DEBIAN", "usr/bin", "usr/share/doc/" + pkg} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s-1\nArchitecture: amd64\nMaintainer: HaLVM <halvm@example.org>\nDepends: %s\nSection: devel\nPriority: optional\nDescription: HaLVM toolchain (test stand-in)\n Builds Haskell programs into Xen unikernels.\n", pkg, version, depends)
	files := map[string]string{
		"DEBIAN/control":                   control,
		"usr/bin/halvm-ghc":                strings.ReplaceAll(halvmGHC, "@VERSION@", version),
		"usr/share/doc/" + pkg + "/README": "HaLVM " + version + "\n",
	}
	for p, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(p, "usr/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(filepath.Join(root, p), testEpoch, testEpoch)
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s-1_amd64.deb", pkg, version))
	err := run.Run(context.Background(), run.Cmd{Args: []string{"dpkg-deb", "--build", "--root-owner-group", root, out},
		Env: run.BaseEnv("SOURCE_DATE_EPOCH=1700000000")})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startRegistry runs Debian's docker-registry on a free 127.0.0.1 port.
func startRegistry(t *testing.T) (addr string, stop func()) {
	s := regtest.Start(t)
	return s.Addr, s.Stop
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run.Output(context.Background(), run.Cmd{Args: append([]string{"docker"}, args...), Env: run.BaseEnv()})
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestImageEndToEnd builds both flavours from pinned Debian packages with
// mmdebstrap, twice, pushes and signs them into Debian's docker-registry,
// verifies in-process and with the stock cosign CLI, and runs them with
// Docker. It then measures a version bump.
func TestImageEndToEnd(t *testing.T) {
	testenv.Short(t, "the image end-to-end build (about 3 minutes)")
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	testenv.NeedCommand(t, "docker.io", "docker")
	if _, err := run.Output(context.Background(), run.Cmd{Args: []string{"docker", "info"}, Env: run.BaseEnv()}); err != nil {
		testenv.Unavailable(t, "the Docker daemon is not running: "+err.Error(), "start dockerd (service docker start)")
	}
	ctx := context.Background()
	cache := testCache(t)
	rc := baseimage.Config{CacheDir: filepath.Join(cache, "oci")}
	dir := t.TempDir()
	debs := map[string]string{
		"halvm":     buildDeb(t, dir, "halvm", "2.4.3", "make"),
		"halvm-gmp": buildDeb(t, dir, "halvm-gmp", "2.4.3", "make, libgmp-dev"),
	}

	start := time.Now()
	var flavours []Flavour
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		set, err := baseimage.ResolveSet(ctx, rc, nil, []string{debs[fl]})
		if err != nil {
			t.Fatal(err)
		}
		m := meta(fl, "2.4.3")
		flavours = append(flavours, Flavour{Meta: m, Deb: debs[fl], Pins: set})
		t.Logf("%s: %d base pins, %d dependency pins", fl, len(set.Base), len(set.Deps))
	}
	t.Logf("resolve: %s", time.Since(start).Round(time.Second))

	// Build 1 fills the root filesystem cache; build 2 of halvm bootstraps
	// everything afresh: same digests, or the build is not reproducible.
	rcache := filepath.Join(t.TempDir(), "rootfs-cache")
	start = time.Now()
	images, err := Build(ctx, Config{Flavours: flavours, Rootfs: rc, WorkDir: filepath.Join(dir, "w1"), RootfsCache: rcache})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build 1 (both flavours): %s", time.Since(start).Round(time.Second))
	start = time.Now()
	again, err := Build(ctx, Config{Flavours: flavours[:1], Rootfs: rc, WorkDir: filepath.Join(dir, "w2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build 2 (halvm, no cache): %s", time.Since(start).Round(time.Second))
	if again[0].Digest != images[0].Digest {
		for i := range again[0].Layers {
			t.Logf("layer %s: %s vs %s", again[0].Layers[i].Role, filepath.Base(images[0].Layers[i].Path), filepath.Base(again[0].Layers[i].Path))
		}
		t.Fatalf("same inputs, different image digests: %s vs %s", images[0].Digest, again[0].Digest)
	}
	for _, im := range images {
		sizes, _ := LayerSizes(im.Image)
		var total int64
		for i, s := range sizes {
			total += s
			t.Logf("%s %s layer: %d bytes compressed, %d entries, %d bytes uncompressed", im.Flavour, im.Layers[i].Role, s, im.Layers[i].Stats.Entries, im.Layers[i].Stats.Bytes)
		}
		t.Logf("%s image %s: %d bytes compressed", im.Flavour, im.Digest, total)
	}
	if filepath.Base(images[0].Layers[0].Path) != filepath.Base(images[1].Layers[0].Path) {
		t.Errorf("the flavours do not share the base layer")
	}

	out := filepath.Join(dir, "dist")
	if err := WriteLayout(filepath.Join(out, "oci"), images); err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(filepath.Join(out, "halvm-images.tar"), "halvm.test", images); err != nil {
		t.Fatal(err)
	}

	// Push and sign into a real registry.
	addr, stopRegistry := startRegistry(t)
	password := "test password"
	keyPEM, pubPEM, err := cosign.GenerateKey([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.ParseSigner(keyPEM, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	atts := map[string][]cosign.Attestation{}
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		for file, typ := range map[string]string{"spdx.json": cosign.PredicateSPDX, "cyclonedx.json": cosign.PredicateCycloneDX, "provenance.json": cosign.PredicateSLSA1} {
			b, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			atts[fl] = append(atts[fl], cosign.Attestation{PredicateType: typ, Predicate: b})
		}
	}
	start = time.Now()
	pushed, err := Push(ctx, images, PushOptions{Prefix: addr, Signer: &cosign.Signer{SV: sv, Attestations: atts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push + sign: %s", time.Since(start).Round(time.Second))
	allTypes := []string{cosign.PredicateSPDX, cosign.PredicateCycloneDX, cosign.PredicateSLSA1}
	for _, p := range pushed {
		for _, ref := range []name.Reference{p.Digest, p.Tags[0], p.Tags[1], p.Tags[2]} {
			if _, err := cosign.Verify(ctx, ref, cosign.VerifyOptions{PublicKey: pubPEM, PredicateTypes: allTypes}); err != nil {
				t.Errorf("verifying %s: %v", ref, err)
			}
		}
	}

	// The stock cosign CLI agrees.
	bin := filepath.Join(cache, "gobin", "cosign")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "the stock cosign v2.6.5 CLI is not built", "GOFLAGS= GOBIN="+filepath.Dir(bin)+" go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	}
	pubFile := filepath.Join(dir, "halvm.pub")
	os.WriteFile(pubFile, pubPEM, 0o644)
	cenv := run.BaseEnv("HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	for _, args := range [][]string{
		{"verify", "--key", pubFile, "--insecure-ignore-tlog", pushed[0].Tags[0].String()},
		{"verify", "--key", pubFile, "--insecure-ignore-tlog", pushed[1].Digest.String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", "spdxjson", pushed[0].Tags[0].String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", "cyclonedx", pushed[1].Tags[2].String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", "slsaprovenance1", pushed[0].Digest.String()},
	} {
		if _, err := run.Output(ctx, run.Cmd{Args: append([]string{bin}, args...), Env: cenv}); err != nil {
			t.Errorf("stock cosign: %v", err)
		}
	}

	// Docker: pull from the registry, load the tarball, run, compile.
	ref := addr + "/halvm:2.4.3"
	start = time.Now()
	docker(t, "pull", "-q", ref)
	t.Cleanup(func() {
		run.Run(context.Background(), run.Cmd{Args: []string{"docker", "rmi", "-f", ref, "halvm.test/halvm-gmp:2.4.3", "halvm.test/halvm:2.4.3"}, Env: run.BaseEnv()})
	})
	if id := strings.TrimSpace(docker(t, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref)); !strings.HasSuffix(id, images[0].Digest.String()) {
		t.Errorf("docker pulled %s, pushed %s", id, images[0].Digest)
	}
	if v := docker(t, "run", "--rm", ref, "halvm-ghc", "--version"); !strings.Contains(v, "HaLVM 2.4.3") {
		t.Errorf("halvm-ghc --version: %q", v)
	}
	if h := docker(t, "run", "--rm", ref); !strings.Contains(h, "Usage: halvm-ghc") {
		t.Errorf("default command: %q", h)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "Hello.hs"), []byte("main = putStrLn \"Hello, HaLVM\"\n"), 0o644)
	docker(t, "run", "--rm", "-v", src+":/src", "-w", "/src", ref, "halvm-ghc", "--make", "Hello.hs")
	if b, err := os.ReadFile(filepath.Join(src, "Hello")); err != nil || !strings.Contains(string(b), "Hello.hs") {
		t.Errorf("compiling with a mounted source directory: %q %v", b, err)
	}
	docker(t, "load", "-q", "-i", filepath.Join(out, "halvm-images.tar"))
	if v := docker(t, "run", "--rm", "halvm.test/halvm-gmp:2.4.3", "halvm-ghc", "--version"); !strings.Contains(v, "HaLVM 2.4.3") {
		t.Errorf("loaded halvm-gmp: halvm-ghc --version: %q", v)
	}
	if v := docker(t, "run", "--rm", "halvm.test/halvm-gmp:2.4.3", "sh", "-c", "dpkg -s libgmp-dev >/dev/null && pwd"); strings.TrimSpace(v) != "/src" {
		t.Errorf("halvm-gmp: %q", v)
	}
	t.Logf("docker checks: %s", time.Since(start).Round(time.Second))

	// A version-only bump re-uses the base and dependency layers.
	bumped := flavours[0]
	bumped.Meta = meta("halvm", "2.4.4")
	bumped.Deb = buildDeb(t, dir, "halvm", "2.4.4", "make")
	start = time.Now()
	next, err := Build(ctx, Config{Flavours: []Flavour{bumped}, Rootfs: rc, WorkDir: filepath.Join(dir, "w3"), RootfsCache: rcache})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build of the bump (cached base and deps): %s", time.Since(start).Round(time.Second))
	for i, role := range []string{RoleBase, RoleDeps} {
		if filepath.Base(next[0].Layers[i].Path) != filepath.Base(images[0].Layers[i].Path) {
			t.Errorf("the %s layer changed with a version-only bump", role)
		}
	}
	ct := &countingTransport{rt: http.DefaultTransport}
	if _, err := Push(ctx, next, PushOptions{Prefix: addr, Signer: &cosign.Signer{SV: sv, Attestations: atts}, Remote: []remote.Option{remote.WithTransport(ct)}}); err != nil {
		t.Fatal(err)
	}
	sizes, _ := LayerSizes(next[0].Image)
	t.Logf("version bump: re-pushed %d bytes (toolchain layer %d of %d compressed image bytes; includes signature and attestation blobs)",
		ct.bytes.Load(), sizes[2], sizes[0]+sizes[1]+sizes[2])
	if ct.bytes.Load() > sizes[2]+200_000 {
		t.Errorf("version bump re-pushed %d bytes", ct.bytes.Load())
	}

	// Registry down: a clear error and no tag moved.
	stopRegistry()
	if _, err := Push(ctx, next, PushOptions{Prefix: addr}); err == nil || !strings.Contains(err.Error(), "no tags were written") {
		t.Errorf("registry down: %v", err)
	} else {
		t.Logf("registry down: %v", err)
	}
}

func TestBuildBadInputs(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	ctx := context.Background()
	m := meta("halvm", "2.4.3")
	_, err := Build(ctx, Config{Flavours: []Flavour{{Meta: m, Deb: "/nonexistent/halvm_2.4.3-1_amd64.deb",
		Pins: baseimage.Set{Base: []baseimage.Pin{{Name: "dash", Version: "0.5.12-2", Arch: "amd64", SHA256: "xyz"}}}}}, WorkDir: t.TempDir()})
	if err == nil {
		t.Fatal("a missing toolchain package was accepted")
	}
	for _, want := range []string{"toolchain package", "/nonexistent/halvm_2.4.3-1_amd64.deb", "base[0].sha256"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestFetchPinGoneFromMirror(t *testing.T) {
	testenv.Short(t, "a mirror round trip")
	testenv.NeedCommand(t, "apt", "apt-get")
	rc := baseimage.Config{CacheDir: filepath.Join(testCache(t), "oci")}
	_, err := baseimage.Fetch(context.Background(), rc, []baseimage.Pin{
		{Name: "make", Version: "4.3-4.1", Arch: "amd64", SHA256: strings.Repeat("0", 64)},
		{Name: "make-dfsg-gone", Version: "1.0-1", Arch: "amd64", SHA256: strings.Repeat("1", 64)},
	})
	if err == nil {
		t.Fatal("a pin the mirror does not have was fetched")
	}
	if !strings.Contains(err.Error(), "make-dfsg-gone:amd64=1.0-1 is not on the mirror") || !strings.Contains(err.Error(), "pins:update") {
		t.Errorf("unclear error: %v", err)
	}
}
