package cosign

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/halvm/halvm-release/internal/run"
)

func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestSaveLoad: a signed, attested image saved to a layout and loaded into
// another registry verifies there (the signatures sign the digest, not
// the place); the stock CLI's `cosign load` reads what Save wrote.
func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	if err := f.signer.Sign(ctx, "halvm", f.ref); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "saved")
	if err := Save(ctx, f.ref, dir); err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(newRegistry(t) + "/halvm")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(ctx, dir, repo)
	if err != nil {
		t.Fatal(err)
	}
	if got.DigestStr() != f.ref.DigestStr() {
		t.Fatalf("loaded %s, saved %s", got, f.ref)
	}
	v, err := Verify(ctx, got, VerifyOptions{PublicKey: f.pub, PredicateTypes: []string{PredicateSPDX, PredicateSLSA1}})
	if err != nil {
		t.Fatalf("the loaded image does not verify: %v", err)
	}
	if v.Signatures != 1 || len(v.PredicateTypes) != 2 {
		t.Errorf("verified %+v", v)
	}
	if _, err := Load(ctx, t.TempDir(), repo); err == nil || !strings.Contains(err.Error(), "not a signed image layout") {
		t.Errorf("loading an empty directory: %v", err)
	}

	// Every blob is re-hashed before anything is pushed: a blob swapped
	// under its name (here into a registry that already holds the
	// digest, which would skip the upload) is named.
	swapped := filepath.Join(t.TempDir(), "swapped")
	if err := run.Run(ctx, run.Cmd{Args: []string{"cp", "-a", dir, swapped}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(swapped, "blobs", "sha256", "*"))
	if n, err := VerifyLayoutBlobs(swapped); err != nil || n != len(blobs) || n < 3 {
		t.Fatalf("VerifyLayoutBlobs of a good layout: %d of %d, %v", n, len(blobs), err)
	}
	other, err := os.ReadFile(blobs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobs[1], other, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, swapped, repo); err == nil || !strings.Contains(err.Error(), blobs[1]+": its content is sha256:"+filepath.Base(blobs[0])) {
		t.Errorf("loading a layout with a swapped blob into a registry holding it: %v", err)
	}

	// The stock CLI loads our layout and verifies the result.
	bin := cosignCLI(t)
	home := t.TempDir()
	env := run.BaseEnv("HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"), "SIGSTORE_NO_CACHE=true")
	pubFile := filepath.Join(home, "halvm.pub")
	if err := os.WriteFile(pubFile, f.pub, 0o644); err != nil {
		t.Fatal(err)
	}
	third := newRegistry(t) + "/halvm"
	ref := third + "@" + f.ref.DigestStr()
	for _, args := range [][]string{
		{"load", "--dir", dir, ref},
		{"verify", "--key", pubFile, "--insecure-ignore-tlog", ref},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", TypeSLSA1, ref},
	} {
		if out, err := run.Output(ctx, run.Cmd{Args: append([]string{bin}, args...), Env: env}); err != nil {
			t.Errorf("stock cosign %s: %v\n%s", args[0], err, out)
		}
	}
}
