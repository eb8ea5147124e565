package oci

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestFromLayoutGivesTheSameImages: an image read back from the layout
// WriteLayout wrote has the digest, base image and tarball bytes of the
// one built; a layout whose manifest was swapped is refused.
func TestFromLayoutGivesTheSameImages(t *testing.T) {
	dir := t.TempDir()
	built := []Image{synthetic(t, filepath.Join(dir, "a"), "halvm", "2.4.3"), synthetic(t, filepath.Join(dir, "b"), "halvm-gmp", "2.4.3")}
	lay := filepath.Join(dir, "layout")
	if err := WriteLayout(lay, built); err != nil {
		t.Fatal(err)
	}
	var back []Image
	for _, im := range built {
		m := im.Meta
		m.BaseDigest = ""
		got, err := FromLayout(lay, m, im.Digest)
		if err != nil {
			t.Fatal(err)
		}
		bd, _ := im.Base.Digest()
		gd, _ := got.Base.Digest()
		if got.Digest != im.Digest || gd != bd || got.Meta.BaseDigest != bd.String() {
			t.Fatalf("%s: read back %s (base %s), built %s (base %s)", im.Flavour, got.Digest, gd, im.Digest, bd)
		}
		back = append(back, got)
	}
	t1, t2 := filepath.Join(dir, "built.tar"), filepath.Join(dir, "back.tar")
	if err := WriteTarball(t1, "halvm", built); err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(t2, "halvm", back); err != nil {
		t.Fatal(err)
	}
	if hashFile(t, t1) != hashFile(t, t2) {
		t.Error("the tarball of the images read back differs from the built one's")
	}
	// The other flavour's manifest under this digest's name: refused.
	other := filepath.Join(lay, "blobs", "sha256", built[1].Digest.Hex)
	b, _ := os.ReadFile(other)
	if err := os.WriteFile(filepath.Join(lay, "blobs", "sha256", built[0].Digest.Hex), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromLayout(lay, built[0].Meta, built[0].Digest); err == nil {
		t.Error("a swapped manifest was accepted")
	}
	if _, err := FromLayout(lay, built[0].Meta, v1.Hash{Algorithm: "sha256", Hex: "00"}); err == nil {
		t.Error("a digest the layout does not hold was accepted")
	}
}
