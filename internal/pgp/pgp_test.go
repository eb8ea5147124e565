package pgp

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

var (
	keyOnce sync.Once
	testK   *Key
	keyErr  error
)

// testKey is one development key shared by the tests (RSA generation costs
// about a second).
func testKey(t *testing.T) *Key {
	t.Helper()
	keyOnce.Do(func() {
		testK, keyErr = Generate("HaLVM Test", "test@halvm.invalid", true, testEpoch)
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return testK
}

const message = "Origin: HaLVM\nLabel: HaLVM\n- a dash line\nFrom here\ntrailing space   \n"

func TestGenerate(t *testing.T) {
	k := testKey(t)
	if !k.IsDevelopment() {
		t.Error("development key: IsDevelopment() = false")
	}
	if got, want := k.UserID(), "HaLVM Test ("+DevelopmentComment+") <test@halvm.invalid>"; got != want {
		t.Errorf("UserID = %q, want %q", got, want)
	}
	if fp := k.Fingerprint(); len(fp) != 40 || strings.ToUpper(fp) != fp {
		t.Errorf("Fingerprint = %q, want 40 upper-case hex digits", fp)
	}
	if !strings.HasSuffix(k.Fingerprint(), k.KeyID()) {
		t.Errorf("KeyID %s is not the fingerprint's tail %s", k.KeyID(), k.Fingerprint())
	}
	if !k.Created().Equal(testEpoch) {
		t.Errorf("Created = %v, want %v", k.Created(), testEpoch)
	}
	pk := k.e.PrimaryKey
	if pk.Version != 4 || pk.PubKeyAlgo != packet.PubKeyAlgoRSA {
		t.Errorf("key v%d algo %d, want v4 RSA", pk.Version, pk.PubKeyAlgo)
	}
	if n, _ := pk.BitLength(); n != 3072 {
		t.Errorf("key has %d bits, want 3072", n)
	}
	if len(k.e.Subkeys) != 0 {
		t.Errorf("key has %d subkeys, want a signing-only primary", len(k.e.Subkeys))
	}

	rel, err := Generate("HaLVM Release", "release@halvm.invalid", false, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if rel.IsDevelopment() {
		t.Error("release key: IsDevelopment() = true")
	}
	if _, err := Generate("bad <name>", "x@y", false, testEpoch); err == nil {
		t.Error("Generate accepted a name with <>")
	}
}

func TestSignaturesAreDeterministic(t *testing.T) {
	k := testKey(t)
	for name, sign := range map[string]func() ([]byte, error){
		"DetachSign":        func() ([]byte, error) { return k.DetachSign(strings.NewReader(message), testEpoch) },
		"DetachSignArmored": func() ([]byte, error) { return k.DetachSignArmored(strings.NewReader(message), testEpoch) },
		"ClearSign":         func() ([]byte, error) { return k.ClearSign([]byte(message), testEpoch) },
	} {
		a, err := sign()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := sign()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two signatures of the same data at the same time differ", name)
		}
	}
	// The time is in the signature: another time, other bytes.
	a, _ := k.DetachSign(strings.NewReader(message), testEpoch)
	b, _ := k.DetachSign(strings.NewReader(message), testEpoch.Add(time.Second))
	if bytes.Equal(a, b) {
		t.Error("signatures at different times are identical")
	}
	// No salt notation, creation time is the epoch, hash is SHA-256.
	p, err := packet.Read(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	sig := p.(*packet.Signature)
	if len(sig.Notations) != 0 {
		t.Errorf("signature carries %d notations (random salt?), want none", len(sig.Notations))
	}
	if !sig.CreationTime.Equal(testEpoch) || sig.Hash != crypto.SHA256 {
		t.Errorf("signature time %v hash %v, want %v SHA256", sig.CreationTime, sig.Hash, testEpoch)
	}
}

func TestArmorHasCRC(t *testing.T) {
	k := testKey(t)
	cs, err := k.ClearSign([]byte(message), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	da, err := k.DetachSignArmored(strings.NewReader(message), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ClearSign": cs, "DetachSignArmored": da, "PublicArmored": k.PublicArmored()} {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-2], "=") || len(lines[len(lines)-2]) != 5 {
			t.Errorf("%s: no CRC-24 line before the armor end:\n%s", name, b)
		}
		if !bytes.HasSuffix(b, []byte("-----\n")) {
			t.Errorf("%s: does not end with a newline after the armor end", name)
		}
	}
	if !bytes.HasPrefix(cs, []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: HaLVM\n")) {
		t.Errorf("ClearSign output starts unexpectedly:\n%s", cs)
	}
	if !bytes.Contains(cs, []byte("\n- - a dash line\n")) {
		t.Errorf("ClearSign did not dash-escape:\n%s", cs)
	}
	// go-crypto itself verifies it.
	blk, _ := clearsign.Decode(cs)
	if blk == nil {
		t.Fatal("clearsign.Decode found no block")
	}
	if _, err := blk.VerifySignature(openpgp.EntityList{k.e}, &packet.Config{Time: func() time.Time { return testEpoch }}); err != nil {
		t.Errorf("go-crypto rejects its own clearsigned message: %v", err)
	}
}

func TestSignBeforeCreationIsRefused(t *testing.T) {
	k := testKey(t)
	_, err := k.DetachSign(strings.NewReader(message), testEpoch.Add(-time.Hour))
	if err == nil || !strings.Contains(err.Error(), "before the key's creation") {
		t.Errorf("signing before key creation: err = %v", err)
	}
	if _, err := k.ClearSign([]byte(message), time.Time{}); err == nil {
		t.Error("signing at the zero time was accepted")
	}
}

func TestPrivateRoundTrip(t *testing.T) {
	k := testKey(t)
	want, _ := k.DetachSign(strings.NewReader(message), testEpoch)

	plain, err := k.ArmoredPrivate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(plain, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")) {
		t.Fatalf("ArmoredPrivate: unexpected start %.40q", plain)
	}
	k2, err := ReadKey(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := k2.DetachSign(strings.NewReader(message), testEpoch)
	if k2.Fingerprint() != k.Fingerprint() || !bytes.Equal(got, want) || !k2.IsDevelopment() {
		t.Error("re-read key signs differently or lost its identity")
	}
	if !bytes.Equal(k2.PublicBinary(), k.PublicBinary()) {
		t.Error("re-read key has a different public certificate")
	}

	pass := []byte("correct horse battery staple")
	enc, err := k.ArmoredPrivate(pass)
	if err != nil {
		t.Fatal(err)
	}
	k3, err := ReadKey(enc, pass)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = k3.DetachSign(strings.NewReader(message), testEpoch)
	if !bytes.Equal(got, want) {
		t.Error("decrypted key signs differently")
	}
	// k itself must still sign after exporting an encrypted copy.
	if _, err := k.DetachSign(strings.NewReader(message), testEpoch); err != nil {
		t.Errorf("key unusable after ArmoredPrivate(passphrase): %v", err)
	}

	wrong := []byte("Tr0ub4dor&3-wrong")
	_, err = ReadKey(enc, wrong)
	if err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	if strings.Contains(err.Error(), string(wrong)) || strings.Contains(err.Error(), string(pass)) {
		t.Errorf("error leaks the passphrase: %v", err)
	}
	if !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase error is unclear: %v", err)
	}
	if _, err := ReadKey(enc, nil); err == nil || !strings.Contains(err.Error(), "passphrase-protected") {
		t.Errorf("missing passphrase: err = %v", err)
	}
	if _, err := ReadKey(k.PublicArmored(), nil); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("public key as secret key: err = %v", err)
	}
	if _, err := ReadKey([]byte("garbage"), nil); err == nil {
		t.Error("garbage accepted as a key")
	}
}

func TestReadKeyRefusesAlgorithmsDebianRejects(t *testing.T) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEd25519, Time: func() time.Time { return testEpoch }}
	e, err := openpgp.NewEntity("x", "", "x@y", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.SerializePrivate(&b, cfg); err != nil {
		t.Fatal(err)
	}
	arm, _ := armorBytes(openpgp.PrivateKeyType, b.Bytes())
	_, err = ReadKey(arm, nil)
	if err == nil || !strings.Contains(err.Error(), "RSA") {
		t.Errorf("Ed25519 (algorithm 27) key: err = %v, want a refusal naming RSA", err)
	}
}

func TestLoadKey(t *testing.T) {
	k := testKey(t)
	dir := t.TempDir()
	pass := "s3cret-pass"
	enc, err := k.ArmoredPrivate([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.asc")
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(keyFile, enc, 0o600)
	os.WriteFile(passFile, []byte(pass+"\n"), 0o600)

	got, err := LoadKey(KeySource{File: keyFile, PassphraseFile: passFile})
	if err != nil || got.Fingerprint() != k.Fingerprint() {
		t.Fatalf("LoadKey(file, passfile) = %v, %v", got, err)
	}
	t.Setenv("HALVM_TEST_KEY", string(enc))
	t.Setenv("HALVM_TEST_PASS", pass)
	got, err = LoadKey(KeySource{Env: "HALVM_TEST_KEY", PassphraseEnv: "HALVM_TEST_PASS", Lookup: os.LookupEnv})
	if err != nil || got.Fingerprint() != k.Fingerprint() {
		t.Fatalf("LoadKey(env, passenv) = %v, %v", got, err)
	}

	t.Setenv("HALVM_TEST_PASS", "not-it")
	_, err = LoadKey(KeySource{Env: "HALVM_TEST_KEY", PassphraseEnv: "HALVM_TEST_PASS", Lookup: os.LookupEnv})
	if err == nil || !strings.Contains(err.Error(), "$HALVM_TEST_KEY") || !strings.Contains(err.Error(), "$HALVM_TEST_PASS") {
		t.Errorf("wrong passphrase: error does not name the sources: %v", err)
	}
	if err != nil && (strings.Contains(err.Error(), "not-it") || strings.Contains(err.Error(), "PRIVATE KEY")) {
		t.Errorf("error leaks content: %v", err)
	}

	// Every problem at once.
	_, err = LoadKey(KeySource{File: filepath.Join(dir, "missing"), Env: "HALVM_TEST_KEY", PassphraseFile: passFile, PassphraseEnv: "HALVM_TEST_PASS", Lookup: os.LookupEnv})
	if err == nil {
		t.Fatal("conflicting source accepted")
	}
	for _, want := range []string{"both key file", "both passphrase file", "missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := LoadKey(KeySource{}); err == nil || !strings.Contains(err.Error(), "no key given") {
		t.Errorf("empty source: err = %v", err)
	}
	t.Setenv("HALVM_TEST_EMPTY", "")
	if _, err := LoadKey(KeySource{Env: "HALVM_TEST_EMPTY", Lookup: os.LookupEnv}); err == nil || !strings.Contains(err.Error(), "$HALVM_TEST_EMPTY") {
		t.Errorf("empty env: err = %v", err)
	}
}

// files writes name->content into a fresh directory.
func files(t *testing.T, m map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range m {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gpgvEnv keeps gpgv away from the user's ~/.gnupg.
func gpgvEnv(dir string) []string { return run.BaseEnv("GNUPGHOME=" + dir) }

func TestGpgvAccepts(t *testing.T) {
	testenv.NeedCommand(t, "gpgv", "gpgv")
	k := testKey(t)
	ctx := context.Background()
	det, _ := k.DetachSign(strings.NewReader(message), testEpoch)
	arm, _ := k.DetachSignArmored(strings.NewReader(message), testEpoch)
	cs, _ := k.ClearSign([]byte(message), testEpoch)
	dir := files(t, map[string][]byte{
		"keyring.gpg": k.PublicBinary(), "msg": []byte(message), "tampered": []byte(message + "x"),
		"msg.sig": det, "msg.asc": arm, "InRelease": cs,
		"InRelease.bad": bytes.Replace(cs, []byte("Label: HaLVM"), []byte("Label: Evil!"), 1),
	})
	gpgv := func(args ...string) error {
		return run.Run(ctx, run.Cmd{Args: append([]string{"gpgv", "--keyring", filepath.Join(dir, "keyring.gpg")}, args...), Dir: dir, Env: gpgvEnv(dir)})
	}
	for _, args := range [][]string{{"msg.sig", "msg"}, {"msg.asc", "msg"}, {"InRelease"}} {
		if err := gpgv(args...); err != nil {
			t.Errorf("gpgv %v: %v", args, err)
		}
	}
	for _, args := range [][]string{{"msg.sig", "tampered"}, {"msg.asc", "tampered"}, {"InRelease.bad"}} {
		if err := gpgv(args...); err == nil {
			t.Errorf("gpgv %v accepted tampered data", args)
		}
	}
	// Another key's keyring: rejected.
	other, err := Generate("Other", "other@halvm.invalid", true, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other.gpg"), other.PublicBinary(), 0o644)
	if err := run.Run(ctx, run.Cmd{Args: []string{"gpgv", "--keyring", filepath.Join(dir, "other.gpg"), "InRelease"}, Dir: dir, Env: gpgvEnv(dir)}); err == nil {
		t.Error("gpgv accepted InRelease with the wrong keyring")
	}
}

func TestSqvAccepts(t *testing.T) {
	testenv.NeedCommand(t, "sqv", "sqv")
	k := testKey(t)
	ctx := context.Background()
	det, _ := k.DetachSign(strings.NewReader(message), testEpoch)
	arm, _ := k.DetachSignArmored(strings.NewReader(message), testEpoch)
	cs, _ := k.ClearSign([]byte(message), testEpoch)
	// sqv 1.1 takes detached signatures only: split InRelease the way
	// apt does before calling sqv.
	blk, _ := clearsign.Decode(cs)
	if blk == nil {
		t.Fatal("no clearsigned block")
	}
	bodyBytes, err := io.ReadAll(blk.ArmoredSignature.Body)
	if err != nil {
		t.Fatal(err)
	}
	csSig, _ := armorBytes(openpgp.SignatureType, bodyBytes)
	dir := files(t, map[string][]byte{
		"keyring.gpg": k.PublicBinary(), "msg": []byte(message), "tampered": []byte(message + "x"),
		"msg.sig": det, "msg.asc": arm, "cs.txt": blk.Bytes, "cs.asc": csSig,
	})
	sqv := func(sig, data string) error {
		return run.Run(ctx, run.Cmd{Args: []string{"sqv", "--keyring", "keyring.gpg", sig, data}, Dir: dir, Env: run.BaseEnv()})
	}
	for _, c := range [][2]string{{"msg.sig", "msg"}, {"msg.asc", "msg"}, {"cs.asc", "cs.txt"}} {
		if err := sqv(c[0], c[1]); err != nil {
			t.Errorf("sqv %v: %v", c, err)
		}
	}
	for _, c := range [][2]string{{"msg.sig", "tampered"}, {"msg.asc", "tampered"}} {
		if err := sqv(c[0], c[1]); err == nil {
			t.Errorf("sqv %v accepted tampered data", c)
		}
	}
}

func TestRpmImportsPublicKey(t *testing.T) {
	testenv.NeedCommand(t, "rpm", "rpmkeys")
	k := testKey(t)
	ctx := context.Background()
	dir := files(t, map[string][]byte{"RPM-GPG-KEY-halvm": k.PublicArmored()})
	db := filepath.Join(dir, "db")
	if err := run.Run(ctx, run.Cmd{Args: []string{"rpmkeys", "--dbpath", db, "--import", filepath.Join(dir, "RPM-GPG-KEY-halvm")}, Env: run.BaseEnv()}); err != nil {
		t.Fatalf("rpmkeys --import: %v", err)
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{"rpm", "--dbpath", db, "-q", "gpg-pubkey", "--qf", "%{VERSION}\n"}, Env: run.BaseEnv()})
	if err != nil {
		t.Fatalf("rpm -q gpg-pubkey: %v", err)
	}
	if want := strings.ToLower(k.KeyID()[8:]); strings.TrimSpace(string(out)) != want {
		t.Errorf("imported gpg-pubkey version %q, want %q", out, want)
	}
}

func TestGpgImportsEncryptedPrivate(t *testing.T) {
	testenv.NeedCommand(t, "gpg", "gpg")
	k := testKey(t)
	ctx := context.Background()
	pass := "gpg-interop-pass"
	enc, err := k.ArmoredPrivate([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	os.Chmod(home, 0o700)
	dir := files(t, map[string][]byte{"key.asc": enc, "pass": []byte(pass), "msg": []byte(message)})
	env := run.BaseEnv("GNUPGHOME=" + home)
	gpg := func(args ...string) ([]byte, error) {
		return run.Output(ctx, run.Cmd{Args: append([]string{"gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase-file", filepath.Join(dir, "pass")}, args...), Dir: dir, Env: env, Secrets: []string{pass}})
	}
	if _, err := gpg("--import", "key.asc"); err != nil {
		t.Fatalf("gpg --import of the encrypted secret key: %v", err)
	}
	// gpg can sign with it, and our key's public part verifies that.
	if _, err := gpg("--local-user", k.Fingerprint(), "--detach-sign", "-o", "msg.gpgsig", "msg"); err != nil {
		t.Fatalf("gpg signing with the imported key: %v", err)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "msg.gpgsig"))
	if _, err := openpgp.CheckDetachedSignature(openpgp.EntityList{k.e}, strings.NewReader(message), bytes.NewReader(sig), nil); err != nil {
		t.Errorf("gpg's signature with the exported key does not verify: %v", err)
	}
	_ = run.Run(ctx, run.Cmd{Args: []string{"gpgconf", "--kill", "gpg-agent"}, Env: env})
}

func TestVerify(t *testing.T) {
	k := testKey(t)
	det, _ := k.DetachSign(strings.NewReader(message), testEpoch)
	arm, _ := k.DetachSignArmored(strings.NewReader(message), testEpoch)
	cs, _ := k.ClearSign([]byte(message), testEpoch)
	for name, pub := range map[string][]byte{"binary": k.PublicBinary(), "armored": k.PublicArmored()} {
		kr, err := ReadKeyring(pub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fps := kr.Fingerprints(); len(fps) != 1 || fps[0] != k.Fingerprint() {
			t.Errorf("%s: fingerprints %v", name, fps)
		}
		for _, sig := range [][]byte{det, arm} {
			if fp, err := kr.VerifyDetached(strings.NewReader(message), sig); err != nil || fp != k.Fingerprint() {
				t.Errorf("%s: VerifyDetached = %q, %v", name, fp, err)
			}
			if _, err := kr.VerifyDetached(strings.NewReader(message+" "), sig); err == nil {
				t.Errorf("%s: VerifyDetached accepted tampered data", name)
			}
		}
		text, fp, err := kr.VerifyClearSigned(cs)
		if err != nil || fp != k.Fingerprint() || string(text) != strings.Replace(message, "space   \n", "space\n", 1) {
			t.Errorf("%s: VerifyClearSigned = %q, %q, %v", name, text, fp, err)
		}
		bad := bytes.Replace(cs, []byte("Label: HaLVM"), []byte("Label: Evil!"), 1)
		if _, _, err := kr.VerifyClearSigned(bad); err == nil {
			t.Errorf("%s: VerifyClearSigned accepted a tampered message", name)
		}
		if _, _, err := kr.VerifyClearSigned(append([]byte("Injected: yes\n"), cs...)); err == nil {
			t.Errorf("%s: VerifyClearSigned accepted text before the signed block", name)
		}
	}
	other, _ := Generate("Other", "o@halvm.invalid", true, testEpoch)
	if _, _, err := other.Keyring().VerifyClearSigned(cs); err == nil {
		t.Error("a foreign keyring verified the message")
	}
}

// BenchmarkClearSign is the cost of signing one InRelease (RSA-3072).
func BenchmarkClearSign(b *testing.B) {
	keyOnce.Do(func() { testK, keyErr = Generate("HaLVM Test", "test@halvm.invalid", true, testEpoch) })
	if keyErr != nil {
		b.Fatal(keyErr)
	}
	data := bytes.Repeat([]byte(message), 20)
	for b.Loop() {
		if _, err := testK.ClearSign(data, testEpoch); err != nil {
			b.Fatal(err)
		}
	}
}
