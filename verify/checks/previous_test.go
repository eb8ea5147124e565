package checks_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/halvm/halvm-release/verify/checks"
)

// TestPreviousIsOnlyWhatWentLive: a publication staged by a run that
// failed (never live) is never "the previous release" the upgrade check
// installs from.
func TestPreviousIsOnlyWhatWentLive(t *testing.T) {
	root := filepath.Join(t.TempDir(), "apt")
	pub := func(n string) string { return filepath.Join(root, "publications", n) }
	for _, n := range []string{"0001-aaaaaaaaaaaa", "0002-bbbbbbbbbbbb", "0003-cccccccccccc"} {
		if err := os.MkdirAll(pub(n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(n string) {
		os.Remove(filepath.Join(root, "current"))
		if err := os.Symlink("publications/"+n, filepath.Join(root, "current")); err != nil {
			t.Fatal(err)
		}
	}
	// 0001 went live; 0002 was staged by a run that failed; 0003 is staged now.
	link("0001-aaaaaaaaaaaa")
	if err := os.WriteFile(filepath.Join(root, "history"), []byte("0001-aaaaaaaaaaaa\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := checks.PreviousPublication(pub("0003-cccccccccccc")); got != pub("0001-aaaaaaaaaaaa") {
		t.Fatalf("while 0003 is staged the previous release is %q, want the live 0001", got)
	}
	// 0003 goes live: the previous release is still 0001, never 0002.
	link("0003-cccccccccccc")
	if err := os.WriteFile(filepath.Join(root, "history"), []byte("0001-aaaaaaaaaaaa\n0003-cccccccccccc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := checks.PreviousPublication(pub("0003-cccccccccccc")); got != pub("0001-aaaaaaaaaaaa") {
		t.Fatalf("once 0003 is live the previous release is %q, want 0001 (0002 never went live)", got)
	}
}
