package pgp_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/testpkg"
)

var pubEpoch = time.Unix(1544117080, 0).UTC()

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A rebuild holding only the public key and the published signatures
// makes every signed artifact of identical content byte for byte, and
// what differs is signed by a throwaway key the archive key never vouches for.
func TestPublishedSignaturesReproduceSignedArtifacts(t *testing.T) {
	archive, err := pgp.Generate("HaLVM test archive", "archive@halvm.invalid", true, pubEpoch)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	release := []byte("Origin: HaLVM\nSuite: stable\n")
	repomd := []byte("<repomd/>\n")
	in, err := archive.ClearSign(release, pubEpoch)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "apt/dists/stable/InRelease"), in)
	gpg, _ := archive.DetachSign(bytes.NewReader(release), pubEpoch)
	write(t, filepath.Join(dir, "apt/dists/stable/Release.gpg"), gpg)
	asc, _ := archive.DetachSignArmored(bytes.NewReader(repomd), pubEpoch)
	write(t, filepath.Join(dir, "dnf/repodata/repomd.xml.asc"), asc)
	write(t, filepath.Join(dir, "apt/halvm-archive-keyring.gpg"), archive.PublicBinary())
	spec := testpkg.Spec{Name: "halvm", Version: "2.4.3", Release: "1", Payload: "the toolchain", Epoch: pubEpoch, Key: archive}
	rpmPath := testpkg.RPM(t, filepath.Join(dir, "dnf"), spec)
	testpkg.Deb(t, filepath.Join(dir, "apt"), testpkg.Spec{Name: "halvm", Version: "2.4.3", Release: "1", Payload: "x", Epoch: pubEpoch})
	debData := []byte("2.0\ncontrol and data of a signed deb")
	origin, _ := archive.DetachSignArmored(bytes.NewReader(debData), pubEpoch)
	write(t, filepath.Join(dir, "apt/pool/signed_1_amd64.deb"), arArchive(map[string][]byte{"debian-binary": []byte("2.0\n"), "_gpgorigin": origin}, "debian-binary", "_gpgorigin"))
	pubFile := filepath.Join(t.TempDir(), "archive.asc")
	write(t, pubFile, archive.PublicArmored())

	k, err := pgp.LoadKey(pgp.KeySource{PublicFile: pubFile, SignaturesFrom: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if !k.IsPublished() || k.Fingerprint() != archive.Fingerprint() {
		t.Fatalf("loaded %s (published %v), want the archive key %s", k.Fingerprint(), k.IsPublished(), archive.Fingerprint())
	}
	if _, err := k.ArmoredPrivate(nil); err == nil {
		t.Error("a key without its private half exported one")
	}
	if got, err := k.ClearSign(release, pubEpoch); err != nil || !bytes.Equal(got, in) {
		t.Errorf("ClearSign: %v, identical to the published InRelease: %v", err, bytes.Equal(got, in))
	}
	if got, err := k.DetachSign(bytes.NewReader(release), pubEpoch); err != nil || !bytes.Equal(got, gpg) {
		t.Errorf("DetachSign: %v, identical to the published Release.gpg: %v", err, bytes.Equal(got, gpg))
	}
	if got, err := k.DetachSignArmored(bytes.NewReader(repomd), pubEpoch); err != nil || !bytes.Equal(got, asc) {
		t.Errorf("DetachSignArmored: %v, identical to the published repomd.xml.asc: %v", err, bytes.Equal(got, asc))
	}
	if got, err := k.DetachSignArmored(bytes.NewReader(debData), pubEpoch); err != nil || !bytes.Equal(got, origin) {
		t.Errorf("a signed deb's _gpgorigin: %v, identical: %v", err, bytes.Equal(got, origin))
	}
	spec.Key = k
	rebuilt := testpkg.RPM(t, t.TempDir(), spec)
	if !bytes.Equal(read(t, rebuilt), read(t, rpmPath)) {
		t.Error("the rpm rebuilt with the published signatures is not the published rpm byte for byte")
	}
	if m := k.Misses(); len(m) != 0 {
		t.Errorf("misses on identical content: %v", m)
	}

	// Different content: signed, but by the throwaway key.
	other := []byte("Origin: someone else\n")
	sig, err := k.DetachSign(bytes.NewReader(other), pubEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Keyring().VerifyDetached(bytes.NewReader(other), sig); err == nil {
		t.Error("a signature over bytes the release never signed verifies under the archive key")
	}
	both, err := pgp.ReadKeyring(k.VerificationKeys())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := both.VerifyDetached(bytes.NewReader(other), sig); err != nil {
		t.Errorf("the throwaway signature does not verify under VerificationKeys: %v", err)
	}
	// Another stage of the same rebuild loads its own key: it accepts
	// what this one signed with the throwaway key.
	k2, err := pgp.LoadKey(pgp.KeySource{PublicFile: pubFile, SignaturesFrom: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if kr2, err := pgp.ReadKeyring(k2.VerificationKeys()); err != nil {
		t.Fatal(err)
	} else if _, err := kr2.VerifyDetached(bytes.NewReader(other), sig); err != nil {
		t.Errorf("a second key of the same rebuild does not accept the throwaway signature: %v", err)
	}
	if _, err := k.ClearSign(other, pubEpoch); err != nil {
		t.Fatal(err)
	}
	spec.Payload = "another toolchain"
	if differs := testpkg.RPM(t, t.TempDir(), spec); bytes.Equal(read(t, differs), read(t, rpmPath)) {
		t.Error("an rpm of other content came out identical")
	}
	if m := k.Misses(); len(m) < 3 || !strings.Contains(m[0], "sha256") {
		t.Errorf("misses: %v, want the three differing artifacts named by digest", m)
	}
}

func TestPublishedSignaturesBadInput(t *testing.T) {
	archive, err := pgp.Generate("HaLVM test archive", "archive@halvm.invalid", true, pubEpoch)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "archive.asc")
	write(t, pubFile, archive.PublicArmored())
	empty := t.TempDir()
	for _, c := range []struct {
		src  pgp.KeySource
		want string
	}{
		{pgp.KeySource{File: "/x.key", PublicFile: pubFile, SignaturesFrom: []string{empty}}, "both given"},
		{pgp.KeySource{SignaturesFrom: []string{empty}}, "no public key file"},
		{pgp.KeySource{PublicFile: pubFile}, "no directory of published signatures"},
		{pgp.KeySource{PublicFile: pubFile, SignaturesFrom: []string{empty}}, "no published signatures below"},
		{pgp.KeySource{PublicFile: pubFile, SignaturesFrom: []string{"/nonexistent-dir"}}, "nonexistent-dir"},
	} {
		_, err := pgp.LoadKey(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadKey(%s): %v, want an error saying %q", c.src, err, c.want)
		}
	}
}

// arArchive makes an ar archive of the members in order.
func arArchive(members map[string][]byte, order ...string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, name := range order {
		data := members[name]
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(data))
		b.Write(data)
		if len(data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
