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
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

const password = "correct horse battery staple"

var (
	spdx       = []byte(`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"halvm","documentNamespace":"https://halvm.example/spdx/halvm-2.4.3","creationInfo":{"created":"2023-11-14T22:13:20Z","creators":["Tool: halvm-release"]},"packages":[{"name":"halvm","SPDXID":"SPDXRef-halvm","versionInfo":"2.4.3","downloadLocation":"NOASSERTION"}]}`)
	provenance = []byte(`{"buildDefinition":{"buildType":"https://github.com/halvm/halvm-release/buildtypes/release@v1","externalParameters":{"version":"2.4.3"},"resolvedDependencies":[{"uri":"git+https://github.com/halvm/halvm@refs/tags/v2.4.3","digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}]},"runDetails":{"builder":{"id":"https://github.com/halvm/halvm-release"}}}`)
)

type fixture struct {
	reg    string
	pub    []byte
	key    []byte
	signer *Signer
	img    v1.Image
	ref    name.Digest
	tag    name.Tag
}

func setup(t *testing.T) *fixture {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	reg := strings.TrimPrefix(srv.URL, "http://")
	key, pub, err := GenerateKey([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ParseSigner(key, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	repo, _ := name.NewRepository(reg + "/halvm")
	ref := repo.Digest(d.String())
	tag := repo.Tag("2.4.3")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(tag, img); err != nil {
		t.Fatal(err)
	}
	s := &Signer{SV: sv, Attestations: map[string][]Attestation{"halvm": {
		{PredicateType: PredicateSPDX, Predicate: spdx},
		{PredicateType: PredicateSLSA1, Predicate: provenance},
	}}}
	return &fixture{reg: reg, pub: pub, key: key, signer: s, img: img, ref: ref, tag: tag}
}

func TestSignAttestVerify(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	if err := f.signer.Sign(ctx, "halvm", f.ref); err != nil {
		t.Fatal(err)
	}
	// Signing again replaces attestations of the same type, adds a signature.
	if err := f.signer.Sign(ctx, "halvm", f.ref); err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, f.tag, VerifyOptions{PublicKey: f.pub, PredicateTypes: []string{PredicateSPDX, PredicateSLSA1}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Signatures < 1 || len(v.PredicateTypes) != 2 {
		t.Errorf("verified %+v", v)
	}
	if !strings.Contains(string(v.Predicates[PredicateSLSA1]), "resolvedDependencies") {
		t.Errorf("provenance predicate not carried verbatim: %s", v.Predicates[PredicateSLSA1])
	}
	// Missing predicate type.
	if _, err := Verify(ctx, f.ref, VerifyOptions{PublicKey: f.pub, PredicateTypes: []string{PredicateCycloneDX}}); err == nil ||
		!strings.Contains(err.Error(), PredicateCycloneDX) {
		t.Errorf("want a missing-attestation error, got %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	if err := f.signer.Sign(ctx, "halvm", f.ref); err != nil {
		t.Fatal(err)
	}
	t.Run("wrong key", func(t *testing.T) {
		_, otherPub, err := GenerateKey([]byte("other"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(ctx, f.ref, VerifyOptions{PublicKey: otherPub}); err == nil {
			t.Fatal("a signature verified with the wrong key")
		}
	})
	t.Run("retagged different image", func(t *testing.T) {
		other, _ := random.Image(512, 1)
		if err := remote.Write(f.tag, other); err != nil {
			t.Fatal(err)
		}
		defer remote.Tag(f.tag, f.img)
		if _, err := Verify(ctx, f.tag, VerifyOptions{PublicKey: f.pub}); err == nil {
			t.Fatal("a re-tagged unsigned image verified")
		}
		// Copying the good signature onto the other image's .sig tag does not help.
		od, _ := other.Digest()
		sigTag := f.ref.Repository.Tag(strings.Replace(f.ref.DigestStr(), ":", "-", 1) + ".sig")
		sigImg, err := remote.Image(sigTag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(f.ref.Repository.Tag(strings.Replace(od.String(), ":", "-", 1)+".sig"), sigImg); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(ctx, f.tag, VerifyOptions{PublicKey: f.pub}); err == nil {
			t.Fatal("a signature copied from another image verified")
		}
	})
	t.Run("stripped signature", func(t *testing.T) {
		sigTag := f.ref.Repository.Tag(strings.Replace(f.ref.DigestStr(), ":", "-", 1) + ".sig")
		if err := remote.Delete(sigTag); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(ctx, f.ref, VerifyOptions{PublicKey: f.pub}); err == nil {
			t.Fatal("an image without signature verified")
		}
	})
}

func TestKeyLoading(t *testing.T) {
	key, _, err := GenerateKey([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kf := filepath.Join(dir, "cosign.key")
	pf := filepath.Join(dir, "password")
	os.WriteFile(kf, key, 0o600)
	os.WriteFile(pf, []byte(password+"\n"), 0o600)
	if _, err := LoadSigner(KeySource{KeyFile: kf, PasswordFile: pf}); err != nil {
		t.Fatalf("key and password from files: %v", err)
	}
	t.Setenv("HALVM_TEST_COSIGN_KEY", string(key))
	t.Setenv("HALVM_TEST_COSIGN_PASSWORD", password)
	if _, err := LoadSigner(KeySource{KeyEnv: "HALVM_TEST_COSIGN_KEY", PasswordEnv: "HALVM_TEST_COSIGN_PASSWORD", Lookup: os.LookupEnv}); err != nil {
		t.Fatalf("key and password from the environment: %v", err)
	}
	t.Setenv("HALVM_TEST_COSIGN_PASSWORD", "wrong password")
	_, err = LoadSigner(KeySource{KeyEnv: "HALVM_TEST_COSIGN_KEY", PasswordEnv: "HALVM_TEST_COSIGN_PASSWORD", Lookup: os.LookupEnv})
	if err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("want a wrong-password error, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong password or") && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error leaks key material: %v", err)
	}
	if _, err := LoadSigner(KeySource{KeyFile: kf, PasswordEnv: "HALVM_TEST_UNSET_VARIABLE", Lookup: os.LookupEnv}); err == nil ||
		!strings.Contains(err.Error(), "HALVM_TEST_UNSET_VARIABLE") {
		t.Fatalf("want an error naming the unset variable, got %v", err)
	}
	if _, _, err := GenerateKey(nil); err == nil {
		t.Fatal("an unencrypted release key was generated")
	}
}

// cosignCLI returns the stock cosign v2 binary from the test cache.
func cosignCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(rootfstest.CacheDir(), "gobin", "cosign")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "the stock cosign v2.6.5 CLI is not built",
			"GOFLAGS= GOBIN="+filepath.Dir(bin)+" go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 (about 3.5 minutes)")
	}
	return bin
}

func TestStockCosignCLI(t *testing.T) {
	bin := cosignCLI(t)
	ctx := context.Background()
	f := setup(t)
	if err := f.signer.Sign(ctx, "halvm", f.ref); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "halvm.pub")
	os.WriteFile(pubFile, f.pub, 0o644)
	_, otherPub, err := GenerateKey([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.pub")
	os.WriteFile(otherFile, otherPub, 0o644)
	env := run.BaseEnv("HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"), "SIGSTORE_NO_CACHE=true")
	cosign := func(args ...string) error {
		_, err := run.Output(ctx, run.Cmd{Args: append([]string{bin}, args...), Env: env})
		return err
	}
	for _, args := range [][]string{
		{"verify", "--key", pubFile, "--insecure-ignore-tlog", f.tag.String()},
		{"verify", "--key", pubFile, "--insecure-ignore-tlog", f.ref.String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", TypeSPDX, f.ref.String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", TypeSLSA1, f.tag.String()},
	} {
		if err := cosign(args...); err != nil {
			t.Errorf("stock cosign rejects what we wrote: %v", err)
		}
	}
	for _, args := range [][]string{
		{"verify", "--key", otherFile, "--insecure-ignore-tlog", f.ref.String()},
		{"verify-attestation", "--key", pubFile, "--insecure-ignore-tlog", "--type", TypeCycloneDX, f.ref.String()},
	} {
		if err := cosign(args...); err == nil {
			t.Errorf("stock cosign accepted %v", args)
		}
	}
	// And the other way round: the stock CLI signs, we verify.
	keyFile := filepath.Join(dir, "cosign.key")
	os.WriteFile(keyFile, f.key, 0o600)
	if _, err := run.Output(ctx, run.Cmd{Args: []string{bin, "sign", "--key", keyFile, "--tlog-upload=false", "--yes", f.ref.String()},
		Env: run.Merge(env, "COSIGN_PASSWORD="+password), Secrets: []string{password}}); err != nil {
		t.Fatalf("stock cosign sign: %v", err)
	}
	if _, err := Verify(ctx, f.ref, VerifyOptions{PublicKey: f.pub}); err != nil {
		t.Errorf("we reject what stock cosign signed: %v", err)
	}
}
