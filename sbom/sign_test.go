package sbom

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	ocicosign "github.com/halvm/halvm-release/oci/cosign"
)

const cosignVersion = "v2.6.5"

// cosignBinary returns the stock cosign CLI, building it into the test
// cache the first time (about 3.5 minutes): it is the interoperability
// check, never the signing path.
func cosignBinary(t *testing.T) string {
	t.Helper()
	cache := rootfstest.CacheDir()
	for _, dir := range []string{"bin", "gobin"} {
		p := filepath.Join(cache, dir, "cosign")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	testenv.Short(t, "building the stock cosign CLI")
	bin := filepath.Join(cache, "bin")
	env := run.Merge(run.BaseEnv(), append(run.Inherit("GOPATH", "GOMODCACHE", "GOPROXY", "GOCACHE", "GOROOT", "GOTOOLCHAIN"), "GOFLAGS=", "GOBIN="+bin)...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Logf("building cosign %s into %s (once)", cosignVersion, bin)
	if err := run.Run(ctx, run.Cmd{Args: []string{"go", "install", "github.com/sigstore/cosign/v2/cmd/cosign@" + cosignVersion}, Dir: t.TempDir(), Env: env}); err != nil {
		testenv.Unavailable(t, "cannot build the stock cosign CLI: "+err.Error(),
			"GOFLAGS= GOBIN="+bin+" go install github.com/sigstore/cosign/v2/cmd/cosign@"+cosignVersion)
	}
	return filepath.Join(bin, "cosign")
}

type signFixture struct {
	dir, pubPath, keyring string
	ck                    signature.SignerVerifier
	pk                    *pgp.Key
	names                 []string
	led                   *pipeline.Ledger
	signed                SignedSums
}

var epochTime = time.Unix(1544054400, 0).UTC()

func newSignFixture(t *testing.T) *signFixture {
	t.Helper()
	f := &signFixture{dir: t.TempDir(), led: &pipeline.Ledger{}}
	files := map[string]string{
		"halvm_2.4.3-1_amd64.deb":      "deb bytes",
		"rpm/halvm-2.4.3-1.x86_64.rpm": "rpm bytes",
		"halvm.spdx.json":              "{}",
		"name with spaces.txt":         "spaces",
	}
	for n, c := range files {
		p := filepath.Join(f.dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		f.names = append(f.names, n)
	}
	password := []byte("correct horse battery staple")
	kp, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	f.pubPath = filepath.Join(keys, "cosign.pub")
	if err := os.WriteFile(f.pubPath, kp.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if f.ck, err = ocicosign.ParseSigner(kp.PrivateBytes, password); err != nil {
		t.Fatal(err)
	}
	// A wrong password fails, and the error names neither it nor the key.
	wrong := "wrong-password-5f3a9c"
	if _, err := ocicosign.ParseSigner(kp.PrivateBytes, []byte(wrong)); err == nil || strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("wrong password: %v", err)
	}
	if f.pk, err = pgp.Generate("HaLVM test archive", "test@example.invalid", true, epochTime); err != nil {
		t.Fatal(err)
	}
	f.keyring = filepath.Join(keys, "halvm.gpg")
	if err := os.WriteFile(f.keyring, f.pk.PublicBinary(), 0o644); err != nil {
		t.Fatal(err)
	}
	if f.signed, err = WriteSignedSums(f.dir, f.names, f.ck, f.pk, epochTime, f.led); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSignedSums(t *testing.T) {
	f := newSignFixture(t)
	data, err := os.ReadFile(filepath.Join(f.dir, SumsName))
	if err != nil {
		t.Fatal(err)
	}
	want := hexOf("spaces") + "  name with spaces.txt\n"
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 || lines[0] != hexOf("{}")+"  halvm.spdx.json" || lines[1] != hexOf("deb bytes")+"  halvm_2.4.3-1_amd64.deb" || lines[2]+"\n" != want || lines[3] != hexOf("rpm bytes")+"  rpm/halvm-2.4.3-1.x86_64.rpm" {
		t.Errorf("SHA256SUMS is not sorted GNU format:\n%s", data)
	}
	if len(f.led.Find(pipeline.KindChecksums, "")) != 1 || len(f.led.Find(pipeline.KindSignature, "")) != 2 {
		t.Errorf("ledger: %+v", f.led.Artifacts())
	}
	// GNU sha256sum reads it.
	testenv.NeedCommand(t, "coreutils", "sha256sum")
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"sha256sum", "--strict", "-c", SumsName}, Dir: f.dir, Env: run.BaseEnv()}); err != nil {
		t.Errorf("sha256sum -c rejects SHA256SUMS: %v", err)
	}
	if err := VerifySums(f.dir, data); err != nil {
		t.Error(err)
	}
	pub, err := ocicosign.PublicKeyPEM(f.ck)
	if err != nil {
		t.Fatal(err)
	}
	if err := ocicosign.VerifyBlob(pub, data, f.signed.Cosign); err != nil {
		t.Error(err)
	}
	// The OpenPGP signature is deterministic; the ECDSA one is not.
	again, err := SignSums(mustParse(t, data), f.ck, f.pk, epochTime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Sums, data) || !bytes.Equal(again.OpenPGP, f.signed.OpenPGP) {
		t.Error("signing the same sums at the same epoch gave different SHA256SUMS or OpenPGP signature")
	}

	// A modified release file fails the checksums.
	if err := os.WriteFile(filepath.Join(f.dir, "halvm_2.4.3-1_amd64.deb"), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"sha256sum", "--strict", "-c", SumsName}, Dir: f.dir, Env: run.BaseEnv()}); err == nil {
		t.Error("sha256sum -c accepted a modified file")
	}
	if err := VerifySums(f.dir, data); err == nil || !strings.Contains(err.Error(), "halvm_2.4.3-1_amd64.deb: sha256 is") {
		t.Errorf("VerifySums on a modified file: %v", err)
	}
	if err := ocicosign.VerifyBlob(pub, append(data, '\n'), f.signed.Cosign); err == nil {
		t.Error("VerifyBlob accepted a modified SHA256SUMS")
	}
}

func mustParse(t *testing.T, data []byte) []Sum {
	s, err := ParseSums(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper writes a copy of SHA256SUMS with one digest changed.
func tamper(t *testing.T, f *signFixture) string {
	data, _ := os.ReadFile(filepath.Join(f.dir, SumsName))
	bad := bytes.Replace(data, []byte(hexOf("rpm bytes")), []byte(hexOf("evil rpm")), 1)
	p := filepath.Join(t.TempDir(), SumsName)
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGpgvAcceptsSumsSignature(t *testing.T) {
	testenv.NeedCommand(t, "gpgv", "gpgv")
	f := newSignFixture(t)
	gpgv := func(data string) error {
		return run.Run(context.Background(), run.Cmd{Args: []string{"gpgv", "--keyring", f.keyring, filepath.Join(f.dir, SumsOpenPGP), data},
			Env: run.BaseEnv("HOME=" + t.TempDir())})
	}
	if err := gpgv(filepath.Join(f.dir, SumsName)); err != nil {
		t.Fatalf("gpgv rejects SHA256SUMS.asc: %v", err)
	}
	if err := gpgv(tamper(t, f)); err == nil {
		t.Error("gpgv accepted a modified SHA256SUMS")
	}
}

func TestCosignVerifyBlobAcceptsSumsSignature(t *testing.T) {
	f := newSignFixture(t)
	bin := cosignBinary(t)
	// No network: an empty proxy, a fresh HOME (no TUF cache), no tlog.
	env := run.BaseEnv("HOME="+t.TempDir(), "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "SIGSTORE_NO_CACHE=true")
	verify := func(data string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return run.Run(ctx, run.Cmd{Args: []string{bin, "verify-blob", "--key", f.pubPath, "--signature", filepath.Join(f.dir, SumsCosign),
			"--insecure-ignore-tlog=true", data}, Env: env})
	}
	if err := verify(filepath.Join(f.dir, SumsName)); err != nil {
		t.Fatalf("cosign verify-blob rejects SHA256SUMS.sig: %v", err)
	}
	if err := verify(tamper(t, f)); err == nil || !strings.Contains(err.Error(), "invalid signature") {
		t.Errorf("cosign verify-blob on a modified SHA256SUMS: want an invalid signature, got %v", err)
	}
}

func TestSumsRejectBadNames(t *testing.T) {
	_, err := FormatSums([]Sum{{Name: "a\nb", SHA256: hexOf("x")}, {Name: "/abs", SHA256: hexOf("y")}, {Name: "ok", SHA256: "XY"}, {Name: "d", SHA256: hexOf("1")}, {Name: "d", SHA256: hexOf("1")}})
	for _, want := range []string{`"a\nb"`, `"/abs"`, `ok: sha256 "XY"`, "d is listed twice"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FormatSums error lacks %s: %v", want, err)
		}
	}
	if _, err := ParseSums([]byte("abc  x\n" + hexOf("1") + " y\n")); err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ParseSums: %v", err)
	}
}
