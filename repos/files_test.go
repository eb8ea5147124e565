package repos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
)

// releaseFiles writes an SBOM-like file and its signed SHA256SUMS into a
// fresh directory, as the sign stage does.
func releaseFiles(t *testing.T, content string) string {
	t.Helper()
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "sbom"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "sbom", "halvm.spdx.json"), []byte(content), 0o644))
	priv, _, err := cosign.GenerateKey([]byte("pw"))
	must(t, err)
	ck, err := cosign.ParseSigner(priv, []byte("pw"))
	must(t, err)
	_, err = sbom.WriteSignedSums(src, []string{"sbom/halvm.spdx.json"}, ck, testKey(t), testEpoch, nil)
	must(t, err)
	return src
}

func TestPublishFiles(t *testing.T) {
	ctx := context.Background()
	c := config(t.TempDir(), "http://127.0.0.1:8619", testKey(t))
	if _, err := PublishFiles(ctx, c, "2.4.3-1", releaseFiles(t, `{"one":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := PublishFiles(ctx, c, "2.4.3-2", releaseFiles(t, `{"two":2}`)); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(c.FilesDir(), "current")
	for _, rel := range []string{"2.4.3-1", "2.4.3-2"} {
		for _, f := range []string{"SHA256SUMS", "SHA256SUMS.asc", "SHA256SUMS.sig", "sbom/halvm.spdx.json"} {
			if _, err := os.Stat(filepath.Join(live, rel, f)); err != nil {
				t.Errorf("not published: %v", err)
			}
		}
	}
	// A tampered file, or SHA256SUMS signed by another key, does not verify.
	must(t, os.WriteFile(filepath.Join(live, "2.4.3-1", "sbom", "halvm.spdx.json"), []byte(`{"evil":1}`), 0o644))
	if err := (Files{Config: c}).Verify(live); err == nil || !strings.Contains(err.Error(), "halvm.spdx.json") {
		t.Fatalf("tampered release file: %v", err)
	}
	other, err := pgp.Generate("Other", "o@halvm.invalid", true, testEpoch)
	must(t, err)
	c2 := c
	c2.Key, c2.PublicKey = nil, other.PublicBinary()
	if err := (Files{Config: c2}).Verify(filepath.Join(c.FilesDir(), "current")); err == nil || !strings.Contains(err.Error(), "not signed by the archive key") {
		t.Fatalf("verified with another key: %v", err)
	}
}

// TestPrune: repo:prune keeps the last N live publications of each
// repository, never the live one nor the rollback target, and removes the
// publications that never went live.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	c := config(t.TempDir(), "http://127.0.0.1:8619", testKey(t))
	c.Keep = 10
	var live []Staged
	for _, rel := range []string{"1", "2", "3"} {
		d, r := pkgs(t, rel)
		s, err := Prepare(ctx, c, []string{d}, []string{r})
		must(t, err)
		must(t, Activate(c, s))
		live = append(live, s)
	}
	d, r := pkgs(t, "4")
	never, err := Prepare(ctx, c, []string{d}, []string{r})
	must(t, err)
	removed, err := Prune(c, 2)
	must(t, err)
	want := []string{"apt/" + never.Apt, "dnf/" + never.Dnf, "apt/" + live[0].Apt, "dnf/" + live[0].Dnf}
	if strings.Join(removed, " ") != strings.Join(want, " ") {
		t.Fatalf("prune removed %v, want %v", removed, want)
	}
	// The rollback target survives the prune: a switch back (public key
	// only) returns to it.
	pubOnly := c
	pubOnly.PublicKey, pubOnly.Key = c.Key.PublicBinary(), nil
	back, err := Rollback(pubOnly)
	if err != nil || back != live[1] {
		t.Fatalf("rollback after prune = %+v, %v; want %+v", back, err, live[1])
	}
}
