package remote

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify/signed"
)

// published writes a small signed publish root (files, apt, dnf) below
// dir, as a release publishes it, and returns the archive key and the
// cosign public key.
func published(t *testing.T, dir string) (*pgp.Key, []byte) {
	t.Helper()
	now := time.Unix(1700000000, 0)
	k, err := pgp.Generate("test archive", "archive@example.org", true, now)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := cosign.GenerateKey([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.ParseSigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{sbom.LockPath: []byte("# a lock\n"), "deb/halvm_2.4.3-1_amd64.deb": []byte("a deb")}
	var sums []sbom.Sum
	for n, b := range files {
		write("files/2.4.3-1/"+n, b)
		sums = append(sums, sbom.Sum{Name: n, SHA256: sha256Hex(b)})
	}
	list, err := sbom.FormatSums(sums)
	if err != nil {
		t.Fatal(err)
	}
	write("files/2.4.3-1/"+sbom.SumsName, list)
	asc, err := k.DetachSignArmored(bytes.NewReader(list), now)
	if err != nil {
		t.Fatal(err)
	}
	write("files/2.4.3-1/"+sbom.SumsOpenPGP, asc)
	sig, err := cosign.SignBlob(sv, list)
	if err != nil {
		t.Fatal(err)
	}
	write("files/2.4.3-1/"+sbom.SumsCosign, sig)
	// apt
	write("apt/"+KeyringFile, k.PublicBinary())
	write("apt/halvm-archive-keyring.asc", k.PublicArmored())
	write("apt/halvm.sources", []byte("Types: deb\n"))
	pkgs := []byte("Package: halvm\nFilename: pool/main/h/halvm/halvm_2.4.3-1_amd64.deb\n")
	write("apt/pool/main/h/halvm/halvm_2.4.3-1_amd64.deb", files["deb/halvm_2.4.3-1_amd64.deb"])
	write("apt/dists/stable/main/binary-amd64/Packages", pkgs)
	write("apt/dists/stable/main/binary-amd64/by-hash/SHA256/"+sha256Hex(pkgs), pkgs)
	rel := []byte("Suite: stable\nAcquire-By-Hash: yes\nSHA256:\n " + sha256Hex(pkgs) + " 66 main/binary-amd64/Packages\n")
	write("apt/dists/stable/Release", rel)
	in, err := k.ClearSign(rel, now)
	if err != nil {
		t.Fatal(err)
	}
	write("apt/dists/stable/InRelease", in)
	gpg, err := k.DetachSign(bytes.NewReader(rel), now)
	if err != nil {
		t.Fatal(err)
	}
	write("apt/dists/stable/Release.gpg", gpg)
	// dnf
	write("dnf/halvm.repo", []byte("[halvm]\n"))
	write("dnf/RPM-GPG-KEY-halvm", k.PublicArmored())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(`<package><location href="Packages/h/halvm-2.4.3-1.x86_64.pkg"/></package>`))
	zw.Close()
	write("dnf/repodata/abc-primary.xml.gz", z.Bytes())
	write("dnf/Packages/h/halvm-2.4.3-1.x86_64.pkg", []byte("a package (not an rpm: the rpm transplant has its own tests in verify/signed)"))
	md := []byte(`<repomd><data type="primary"><location href="repodata/abc-primary.xml.gz"/></data></repomd>`)
	write("dnf/repodata/repomd.xml", md)
	mdasc, err := k.DetachSignArmored(bytes.NewReader(md), now)
	if err != nil {
		t.Fatal(err)
	}
	write("dnf/repodata/repomd.xml.asc", mdasc)
	return k, pub
}

func serve(t *testing.T, dir string) string {
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestParseURL(t *testing.T) {
	base, id, err := ParseURL("http://127.0.0.1:8619/mirror/files/2.4.3-1/")
	if err != nil || base != "http://127.0.0.1:8619/mirror" || id != "2.4.3-1" {
		t.Errorf("got %q %q %v", base, id, err)
	}
	for _, bad := range []string{"http://h/apt/", "ftp://h/files/2.4.3-1/", "http://h/files/2.4.3-1/deb/", "http://h/files/latest/"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestFetch downloads a signed release and compares it with a rebuild:
// a copy is IDENTICAL everywhere; a changed package DIFFERS alone.
func TestFetch(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub")
	k, cosignPub := published(t, pub)
	url := serve(t, pub) + "/files/2.4.3-1/"
	var log bytes.Buffer
	r, err := Fetch(context.Background(), Options{URL: url, Fingerprints: []string{strings.ToLower(k.Fingerprint())}, CosignKey: cosignPub, Dir: filepath.Join(dir, "dl"), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "2.4.3-1" || r.Release != "1" || len(r.Sums) != 2 || !strings.HasSuffix(r.Lock, "lock/halvm.lock") {
		t.Errorf("fetched %+v", r)
	}
	for _, p := range []string{filepath.Join(r.Apt, "pool/main/h/halvm/halvm_2.4.3-1_amd64.deb"), filepath.Join(r.Dnf, "Packages/h/halvm-2.4.3-1.x86_64.pkg")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	// A "rebuild" with the same bytes, unsigned: SHA256SUMS is made again.
	reb := filepath.Join(dir, "rebuild")
	b := Rebuilt{Out: filepath.Join(reb, "out"), Apt: filepath.Join(reb, "apt"), Dnf: filepath.Join(reb, "dnf")}
	copyTree(t, filepath.Join(pub, "apt"), b.Apt)
	copyTree(t, filepath.Join(pub, "dnf"), b.Dnf)
	copyTree(t, filepath.Join(pub, "files", "2.4.3-1"), b.Out)
	os.Remove(filepath.Join(b.Out, sbom.SumsName))
	keys := signed.Keys{Archive: r.Keyring, CosignBlob: func(d, s []byte) error { return cosign.VerifyBlob(cosignPub, d, s) }}
	as := Compare(context.Background(), r, b, keys, "")
	if !Passed(as) {
		t.Fatalf("a copy differs:\n%s", Report(r, as))
	}
	if len(as) < 15 {
		t.Errorf("only %d artifacts judged:\n%s", len(as), Report(r, as))
	}
	// One byte of the published deb in the apt pool changed after signing.
	p := filepath.Join(r.Apt, "pool/main/h/halvm/halvm_2.4.3-1_amd64.deb")
	if err := os.WriteFile(p, []byte("A deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	as = Compare(context.Background(), r, b, keys, "")
	var differs []string
	for _, a := range as {
		if a.Verdict.Status != signed.Identical {
			differs = append(differs, a.Name)
		}
	}
	if len(differs) != 1 || differs[0] != "apt/pool/main/h/halvm/halvm_2.4.3-1_amd64.deb" {
		t.Errorf("want only the changed deb DIFFERS, got %v:\n%s", differs, Report(r, as))
	}
	if !strings.Contains(string(Report(r, as)), "DIFFERS   apt/pool/main/h/halvm/halvm_2.4.3-1_amd64.deb") {
		t.Errorf("report:\n%s", Report(r, as))
	}
}

// TestFetchRefuses: a keyring of another fingerprint, a SHA256SUMS whose
// signatures fail, a lock that is not the listed one are refused.
func TestFetchRefuses(t *testing.T) {
	for _, c := range []struct {
		name, want string
		fpr        string
		change     func(dir string)
	}{
		{"another key", "not the fingerprint you gave", "0000000000000000000000000000000000000000", nil},
		{"SHA256SUMS changed", "SHA256SUMS.asc does not verify", "", func(d string) {
			appendTo(t, filepath.Join(d, "files/2.4.3-1/SHA256SUMS"), "0000000000000000000000000000000000000000000000000000000000000000  extra\n")
		}},
		{"cosign signature bad", "SHA256SUMS.sig does not verify", "", func(d string) {
			os.WriteFile(filepath.Join(d, "files/2.4.3-1/SHA256SUMS.sig"), []byte("MEUCIQ=="), 0o644)
		}},
		{"lock changed", "the lock", "", func(d string) { appendTo(t, filepath.Join(d, "files/2.4.3-1/lock/halvm.lock"), "x") }},
		{"InRelease changed", "InRelease does not verify", "", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "apt/dists/stable/InRelease"))
			os.WriteFile(filepath.Join(d, "apt/dists/stable/InRelease"), bytes.Replace(b, []byte("stable"), []byte("stabl3"), 1), 0o644)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			k, cosignPub := published(t, dir)
			if c.change != nil {
				c.change(dir)
			}
			fpr := c.fpr
			if fpr == "" {
				fpr = k.Fingerprint()
			}
			_, err := Fetch(context.Background(), Options{URL: serve(t, dir) + "/files/2.4.3-1/", Fingerprints: []string{fpr}, CosignKey: cosignPub, Dir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), "refusing to rebuild") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
