package signed

import (
	"bytes"
	"github.com/sigstore/sigstore/pkg/signature"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/testpkg"
	"github.com/halvm/halvm-release/oci/cosign"
)

var epoch = time.Unix(1544117080, 0).UTC()

type fixture struct {
	archive, other *pgp.Key
	keys           Keys
	cosignKey      signature.Signer
}

var (
	fixtureOnce sync.Once
	shared      *fixture
	fixtureErr  error
)

// newFixture generates the keys once for all tests (RSA keys are slow).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { shared, fixtureErr = makeFixture() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return shared
}

func makeFixture() (*fixture, error) {
	a, err := pgp.Generate("HaLVM test archive", "archive@halvm.invalid", true, epoch)
	if err != nil {
		return nil, err
	}
	o, err := pgp.Generate("someone else", "other@halvm.invalid", true, epoch)
	if err != nil {
		return nil, err
	}
	priv, pub, err := cosign.GenerateKey([]byte("pw"))
	if err != nil {
		return nil, err
	}
	ck, err := cosign.ParseSigner(priv, []byte("pw"))
	if err != nil {
		return nil, err
	}
	return &fixture{archive: a, other: o, cosignKey: ck, keys: Keys{
		Archive:    a.PublicArmored(),
		CosignBlob: func(data, sig []byte) error { return cosign.VerifyBlob(pub, data, sig) },
	}}, nil
}

func put(t *testing.T, root, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func rpmBytes(t *testing.T, payload string, key *pgp.Key) []byte {
	t.Helper()
	p := testpkg.RPM(t, t.TempDir(), testpkg.Spec{Name: "halvm", Version: "2.4.3", Release: "1", Payload: payload, Epoch: epoch, Key: key})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const release = "Origin: HaLVM\nSuite: stable\nSHA256:\n 0123 12 main/binary-amd64/Packages\n"

// published writes a signed release as the archive publishes it.
func (f *fixture) published(t *testing.T, root string) {
	t.Helper()
	put(t, root, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm", rpmBytes(t, "the toolchain", f.archive))
	put(t, root, "apt/dists/stable/Release", []byte(release))
	in, err := f.archive.ClearSign([]byte(release), epoch)
	if err != nil {
		t.Fatal(err)
	}
	put(t, root, "apt/dists/stable/InRelease", in)
	gpg, err := f.archive.DetachSign(strings.NewReader(release), epoch)
	if err != nil {
		t.Fatal(err)
	}
	put(t, root, "apt/dists/stable/Release.gpg", gpg)
	sums := []byte("abcd  halvm.deb\n")
	put(t, root, "SHA256SUMS", sums)
	asc, err := f.archive.DetachSignArmored(bytes.NewReader(sums), epoch)
	if err != nil {
		t.Fatal(err)
	}
	put(t, root, "SHA256SUMS.asc", asc)
	sig, err := cosign.SignBlob(f.cosignKey, sums)
	if err != nil {
		t.Fatal(err)
	}
	put(t, root, "SHA256SUMS.sig", sig)
	put(t, root, "apt/halvm-archive-keyring.gpg", f.archive.PublicBinary())
	put(t, root, "apt/pool/main/h/halvm/halvm_2.4.3-1_amd64.deb", []byte("a deb"))
}

// rebuilt writes what a rebuild without the private keys makes: the same
// unsigned content, no signatures.
func (f *fixture) rebuilt(t *testing.T, root string, rpmKey *pgp.Key) {
	t.Helper()
	put(t, root, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm", rpmBytes(t, "the toolchain", rpmKey))
	put(t, root, "apt/dists/stable/Release", []byte(release))
	put(t, root, "SHA256SUMS", []byte("abcd  halvm.deb\n"))
	put(t, root, "apt/halvm-archive-keyring.gpg", f.archive.PublicBinary())
	put(t, root, "apt/pool/main/h/halvm/halvm_2.4.3-1_amd64.deb", []byte("a deb"))
}

func verdicts(t *testing.T, pub, reb string, k Keys) map[string]Verdict {
	t.Helper()
	vs, err := Tree(pub, reb, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Verdict{}
	for _, v := range vs {
		m[v.Path] = v
	}
	return m
}

func wantStatus(t *testing.T, m map[string]Verdict, want map[string]Status) {
	t.Helper()
	for p, v := range m {
		w, ok := want[p]
		if !ok {
			w = Identical
		}
		if v.Status != w {
			t.Errorf("%s: %s, want %s\n%s", p, v.Status, w, v)
		}
	}
	for p := range want {
		if _, ok := m[p]; !ok {
			t.Errorf("no verdict on %s", p)
		}
	}
}

func TestUnsignedRebuildIsIdentical(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	m := verdicts(t, pub, reb, f.keys)
	if len(m) != 9 {
		t.Errorf("%d verdicts, want 9 (every published file)", len(m))
	}
	wantStatus(t, m, nil)
	if h := m["dnf/x86_64/halvm-2.4.3-1.x86_64.rpm"].How; !strings.Contains(h, "signature header") {
		t.Errorf("the rpm was not compared by transplant: %s", h)
	}
	if h := m["SHA256SUMS.sig"].How; !strings.Contains(h, "cosign") {
		t.Errorf("SHA256SUMS.sig: %s", h)
	}
	if h := m["apt/halvm-archive-keyring.gpg"].How; h != "byte for byte" {
		t.Errorf("a key file is not a signature: %s", h)
	}
}

func TestRebuildSignedWithAnotherKeyIsIdentical(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, f.other)
	wantStatus(t, verdicts(t, pub, reb, f.keys), nil)
}

func TestChangedPublishedRPMPayloadDiffers(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	p := filepath.Join(pub, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm")
	b, _ := os.ReadFile(p)
	b[len(b)-20] ^= 1 // one byte of the compressed payload
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m := verdicts(t, pub, reb, f.keys)
	wantStatus(t, m, map[string]Status{"dnf/x86_64/halvm-2.4.3-1.x86_64.rpm": Differs})
	if v := m["dnf/x86_64/halvm-2.4.3-1.x86_64.rpm"]; !strings.Contains(strings.Join(v.Detail, "\n"), "differ from what the published signature covers") {
		t.Errorf("the verdict does not say why:\n%s", v)
	}
}

func TestRebuiltRPMWithOtherContentDiffers(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	put(t, reb, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm", rpmBytes(t, "another toolchain", nil))
	m := verdicts(t, pub, reb, f.keys)
	wantStatus(t, m, map[string]Status{"dnf/x86_64/halvm-2.4.3-1.x86_64.rpm": Differs})
	if d := strings.Join(m["dnf/x86_64/halvm-2.4.3-1.x86_64.rpm"].Detail, "\n"); !strings.Contains(d, "payload") {
		t.Errorf("no readable diff naming the payload file:\n%s", d)
	}
}

func TestForgedSignaturesDiffer(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	// Re-signed by someone else: same text, a signature the archive key
	// did not make.
	in, _ := f.other.ClearSign([]byte(release), epoch)
	put(t, pub, "apt/dists/stable/InRelease", in)
	gpg, _ := f.other.DetachSign(strings.NewReader(release), epoch)
	put(t, pub, "apt/dists/stable/Release.gpg", gpg)
	put(t, pub, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm", rpmBytes(t, "the toolchain", f.other))
	put(t, pub, "SHA256SUMS.sig", []byte("bm90IGEgc2lnbmF0dXJl\n"))
	m := verdicts(t, pub, reb, f.keys)
	wantStatus(t, m, map[string]Status{
		"apt/dists/stable/InRelease": Differs, "apt/dists/stable/Release.gpg": Differs,
		"dnf/x86_64/halvm-2.4.3-1.x86_64.rpm": Differs, "SHA256SUMS.sig": Differs,
	})
	if d := strings.Join(m["dnf/x86_64/halvm-2.4.3-1.x86_64.rpm"].Detail, "\n"); !strings.Contains(d, "not by the repository key") {
		t.Errorf("the rpm verdict does not name the foreign key:\n%s", d)
	}
}

func TestDifferentReleaseFailsItsSignatures(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	put(t, reb, "apt/dists/stable/Release", []byte(strings.Replace(release, "0123", "4567", 1)))
	m := verdicts(t, pub, reb, f.keys)
	wantStatus(t, m, map[string]Status{
		"apt/dists/stable/Release": Differs, "apt/dists/stable/InRelease": Differs, "apt/dists/stable/Release.gpg": Differs,
	})
	if d := strings.Join(m["apt/dists/stable/InRelease"].Detail, "\n"); !strings.Contains(d, "4567") {
		t.Errorf("InRelease's verdict has no readable diff:\n%s", d)
	}
}

func TestMissingAndExtraFiles(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	os.Remove(filepath.Join(reb, "SHA256SUMS"))
	put(t, reb, "apt/pool/main/h/halvm/stray.deb", []byte("x"))
	m := verdicts(t, pub, reb, f.keys)
	wantStatus(t, m, map[string]Status{
		"SHA256SUMS": Missing, "SHA256SUMS.asc": Missing, "SHA256SUMS.sig": Missing,
		"apt/pool/main/h/halvm/stray.deb": Extra,
	})
	if Passed(mapValues(m)) {
		t.Error("Passed with missing files")
	}
}

func TestNoKeysIsNeverIdentical(t *testing.T) {
	f := newFixture(t)
	pub, reb := t.TempDir(), t.TempDir()
	f.published(t, pub)
	f.rebuilt(t, reb, nil)
	m := verdicts(t, pub, reb, Keys{})
	wantStatus(t, m, map[string]Status{
		"apt/dists/stable/InRelease": Differs, "apt/dists/stable/Release.gpg": Differs, "SHA256SUMS.asc": Differs,
		"SHA256SUMS.sig": Differs, "dnf/x86_64/halvm-2.4.3-1.x86_64.rpm": Differs,
	})
}

func TestHeaderStartRefusesNonRPM(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not an rpm at all, just text that is long enough to pass a length check............................................................")} {
		if _, err := HeaderStart(b); err == nil {
			t.Errorf("HeaderStart(%q) took it for an rpm", b)
		}
	}
}

func mapValues(m map[string]Verdict) []Verdict {
	var vs []Verdict
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}
