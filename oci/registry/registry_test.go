package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestStartPushPullClose: an image pushed by digest comes back with the
// same digest; Close stops serving and removes the blobs.
func TestStartPushPullClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	r, err := Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(r.Addr+"/halvm/test@"+d.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if gd, err := got.Digest(); err != nil || gd != d {
		t.Fatalf("pulled %v (%v), pushed %v", gd, err, d)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the blobs are still there after Close: %v", err)
	}
	if _, err := remote.Image(ref); err == nil {
		t.Error("the registry still serves after Close")
	}
}
