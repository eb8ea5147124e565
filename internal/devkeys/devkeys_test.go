package devkeys

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/oci/cosign"
)

func TestEnsure(t *testing.T) {
	dir := t.TempDir() + "/keys"
	f, err := Ensure(dir, time.Unix(1544054400, 0))
	if err != nil {
		t.Fatal(err)
	}
	k, err := pgp.LoadKey(f.PGPSource())
	if err != nil {
		t.Fatal(err)
	}
	if !k.IsDevelopment() || !strings.Contains(k.UserID(), "development") {
		t.Fatalf("the development key is not labelled as such: %q", k.UserID())
	}
	if _, err := cosign.LoadSigner(f.CosignSource()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.PGPKey, f.PGPPassphrase, f.CosignKey, f.CosignPassword} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v (secrets must be 0600)", p, fi.Mode(), err)
		}
	}
	// A second call keeps the keys.
	before, _ := os.ReadFile(f.PGPKey)
	if _, err := Ensure(dir, time.Unix(1544054400, 0)); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(f.PGPKey)
	if string(before) != string(after) {
		t.Fatal("Ensure replaced existing keys")
	}
}

// TestEnsureConcurrent: runs that start together (parallel test packages)
// end up with one consistent key set, not a mix of halves.
func TestEnsureConcurrent(t *testing.T) {
	dir := t.TempDir() + "/keys"
	created := time.Unix(1_544_054_400, 0)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { _, err := Ensure(dir, created); errs <- err }()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	f := In(dir)
	k, err := pgp.LoadKey(f.PGPSource())
	if err != nil {
		t.Fatalf("the key set is not consistent: %v", err)
	}
	pub, err := os.ReadFile(f.PGPPublic)
	if err != nil {
		t.Fatal(err)
	}
	if string(pub) != string(k.PublicArmored()) {
		t.Error("the public key is not the private key's")
	}
	if _, err := cosign.LoadSigner(f.CosignSource()); err != nil {
		t.Errorf("the cosign key set is not consistent: %v", err)
	}
}
