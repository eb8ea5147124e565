package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/oci/layer"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

func meta(flavour, version string) Meta {
	return Meta{Flavour: flavour, Version: version, Release: 1, Revision: "0123456789abcdef0123456789abcdef01234567",
		Source: "https://github.com/halvm/halvm-release", Vendor: "HaLVM", Epoch: testEpoch,
		BaseName: "registry.example/halvm-base:bookworm"}
}

func tree(t *testing.T, blobs string, files map[string]string) *layer.Tree {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for n, body := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(body)), ModTime: time.Now(), Typeflag: tar.TypeReg})
		io.WriteString(tw, body)
	}
	tw.Close()
	tr, err := layer.Read(&b, blobs, layer.Options{Epoch: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// synthetic builds a flavour image from small trees: a fat base, deps,
// and a toolchain whose content depends on the version.
func synthetic(t *testing.T, dir, flavour, version string) Image {
	t.Helper()
	blobs := filepath.Join(dir, "blobs")
	big := incompressible(300 << 10)
	base := map[string]string{"bin/sh": "#!shell", "usr/lib/libc.so": big}
	deps := map[string]string{"bin/sh": "#!shell", "usr/lib/libc.so": big, "usr/bin/make": "make " + flavour}
	tc := map[string]string{"bin/sh": "#!shell", "usr/lib/libc.so": big, "usr/bin/make": "make " + flavour,
		"usr/bin/halvm-ghc": "halvm-ghc " + version}
	t0, t1, t2 := tree(t, blobs, base), tree(t, blobs, deps), tree(t, blobs, tc)
	var files []LayerFile
	for i, p := range [][2]*layer.Tree{{t0, nil}, {t1, t0}, {t2, t1}} {
		lf, err := WriteLayerFile(filepath.Join(dir, "layers"), []string{RoleBase, RoleDeps, RoleToolchain}[i], "test", p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, lf)
	}
	img, b, err := Assemble(meta(flavour, version), files)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return Image{Flavour: flavour, Meta: meta(flavour, version), Image: img, Base: b, Digest: d, Layers: files}
}

// incompressible returns n deterministic pseudo-random bytes as a string.
func incompressible(n int) string {
	var b []byte
	s := sha256.Sum256([]byte("seed"))
	for len(b) < n {
		s = sha256.Sum256(s[:])
		b = append(b, s[:]...)
	}
	return string(b[:n])
}

func TestAssembleConfigAndAnnotations(t *testing.T) {
	im := synthetic(t, t.TempDir(), "halvm", "2.4.3")
	cf, err := im.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.WorkingDir != "/src" || strings.Join(cf.Config.Cmd, " ") != "halvm-ghc --help" ||
		cf.Architecture != "amd64" || cf.OS != "linux" || !cf.Created.Time.Equal(testEpoch) {
		t.Errorf("config: %+v", cf)
	}
	if len(cf.History) != 3 || !cf.History[2].Created.Time.Equal(testEpoch) {
		t.Errorf("history: %+v", cf.History)
	}
	m, err := im.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := im.Base.Digest()
	want := map[string]string{
		"org.opencontainers.image.created":     "2023-11-14T22:13:20Z",
		"org.opencontainers.image.version":     "2.4.3",
		"org.opencontainers.image.revision":    "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.licenses":    "BSD-3-Clause",
		"org.opencontainers.image.title":       "halvm",
		"org.opencontainers.image.source":      "https://github.com/halvm/halvm-release",
		"org.opencontainers.image.base.name":   "registry.example/halvm-base:bookworm",
		"org.opencontainers.image.base.digest": bd.String(),
	}
	for k, v := range want {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if string(m.MediaType) != "application/vnd.oci.image.manifest.v1+json" || len(m.Layers) != 3 {
		t.Errorf("manifest: %s with %d layers", m.MediaType, len(m.Layers))
	}
	// The base image's only layer is the image's first layer.
	bl, _ := im.Base.Layers()
	il, _ := im.Image.Layers()
	d0, _ := bl[0].Digest()
	d1, _ := il[0].Digest()
	if d0 != d1 {
		t.Errorf("base image layer %s differs from the image's base layer %s", d0, d1)
	}
}

func hashFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBuildTwiceSameBytes(t *testing.T) {
	var digests, tarballs, indexes []string
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		images := []Image{synthetic(t, dir, "halvm", "2.4.3"), synthetic(t, dir, "halvm-gmp", "2.4.3")}
		digests = append(digests, images[0].Digest.String()+" "+images[1].Digest.String())
		if err := WriteLayout(filepath.Join(dir, "oci"), images); err != nil {
			t.Fatal(err)
		}
		if err := WriteTarball(filepath.Join(dir, "halvm.tar"), "registry.example", images); err != nil {
			t.Fatal(err)
		}
		tarballs = append(tarballs, hashFile(t, filepath.Join(dir, "halvm.tar")))
		indexes = append(indexes, hashFile(t, filepath.Join(dir, "oci", "index.json")))
		if i == 0 {
			time.Sleep(1100 * time.Millisecond)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("image digests differ between builds: %v", digests)
	}
	if tarballs[0] != tarballs[1] {
		t.Errorf("docker tarballs differ between builds: %v", tarballs)
	}
	if indexes[0] != indexes[1] {
		t.Errorf("OCI layout index.json differs between builds: %v", indexes)
	}
}

// countingTransport counts the bytes of blob uploads.
type countingTransport struct {
	rt    http.RoundTripper
	bytes atomic.Int64
	down  atomic.Bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.down.Load() {
		return nil, errors.New("connection refused (simulated)")
	}
	if (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength > 0 {
		c.bytes.Add(r.ContentLength)
	} else if r.Method == http.MethodPatch && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		c.bytes.Add(int64(len(b)))
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return c.rt.RoundTrip(r)
}

type recordingSigner struct {
	signed []string
	fail   bool
}

func (s *recordingSigner) Sign(_ context.Context, flavour string, ref name.Digest) error {
	if s.fail {
		return errors.New("key not usable")
	}
	s.signed = append(s.signed, flavour+" "+ref.String())
	return nil
}

func TestPushSignThenTagAndVersionBump(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	prefix := strings.TrimPrefix(srv.URL, "http://")
	ct := &countingTransport{rt: http.DefaultTransport}
	ctx := context.Background()
	dir := t.TempDir()
	v1Images := []Image{synthetic(t, dir, "halvm", "2.4.3")}
	s := &recordingSigner{}
	pushed, err := Push(ctx, v1Images, PushOptions{Prefix: prefix, Signer: s, Remote: []remote.Option{remote.WithTransport(ct)}})
	if err != nil {
		t.Fatal(err)
	}
	first := ct.bytes.Load()
	if len(s.signed) != 1 || !strings.Contains(s.signed[0], "@sha256:") {
		t.Errorf("signed %v", s.signed)
	}
	for _, tag := range []string{"2.4.3", "2.4.3-1", "latest"} {
		d, err := remote.Head(pushed[0].Digest.Repository.Tag(tag))
		if err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		if d.Digest != v1Images[0].Digest {
			t.Errorf("tag %s points at %s, want %s", tag, d.Digest, v1Images[0].Digest)
		}
	}
	// A version-only bump re-pushes the toolchain layer, config and manifest only.
	ct.bytes.Store(0)
	v2Images := []Image{synthetic(t, dir, "halvm", "2.4.4")}
	if _, err := Push(ctx, v2Images, PushOptions{Prefix: prefix, Signer: s, Remote: []remote.Option{remote.WithTransport(ct)}}); err != nil {
		t.Fatal(err)
	}
	bump := ct.bytes.Load()
	tcSize, _ := os.Stat(v2Images[0].Layers[2].Path)
	t.Logf("first push %d bytes of blobs; version bump re-pushed %d bytes (toolchain layer %d bytes)", first, bump, tcSize.Size())
	if bump >= first/4 || bump < tcSize.Size() {
		t.Errorf("version bump re-pushed %d bytes of %d", bump, first)
	}
}

func TestPushFailuresLeaveTagsAlone(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	prefix := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	dir := t.TempDir()
	old := []Image{synthetic(t, dir, "halvm", "2.4.3")}
	if _, err := Push(ctx, old, PushOptions{Prefix: prefix}); err != nil {
		t.Fatal(err)
	}
	next := synthetic(t, dir, "halvm", "2.4.4")
	next.Meta.Version = "2.4.3" // re-release under the same tags
	latest, _ := name.NewTag(prefix + "/halvm:latest")

	ct := &countingTransport{rt: http.DefaultTransport}
	ct.down.Store(true)
	_, err := Push(ctx, []Image{next}, PushOptions{Prefix: prefix, Remote: []remote.Option{remote.WithTransport(ct)}})
	if err == nil || !strings.Contains(err.Error(), "no tags were written") {
		t.Fatalf("registry down: want a clear error, got %v", err)
	}
	_, err = Push(ctx, []Image{next}, PushOptions{Prefix: prefix, Signer: &recordingSigner{fail: true}})
	if err == nil || !strings.Contains(err.Error(), "no tags were written") {
		t.Fatalf("signing failure: want a clear error, got %v", err)
	}
	d, err := remote.Head(latest)
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != old[0].Digest {
		t.Errorf("latest moved to %s after failed pushes", d.Digest)
	}
	// Refused connection from a registry that is not there at all.
	_, err = Push(ctx, old, PushOptions{Prefix: "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "no tags were written") {
		t.Fatalf("unreachable registry: want a clear error, got %v", err)
	}
}

func TestMetaValidation(t *testing.T) {
	_, _, err := Assemble(Meta{Flavour: "halvm"}, nil)
	if err == nil {
		t.Fatal("empty meta accepted")
	}
	for _, want := range []string{"version", "release", "SOURCE_DATE_EPOCH", "revision", "source"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
