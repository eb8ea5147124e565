package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RealUpstreamTarball is the air-gapped mirror of the real HaLVM sources.
const RealUpstreamTarball = "halvm-2.4.3-git.tar.xz"

// RealUpstreamDir is the directory holding the real upstream's mirror
// tarball: $HALVM_REAL_UPSTREAM, or <repo root>/../shared/real-upstream
// (CI runs on a fresh clone with a copy of shared/ beside it).
func RealUpstreamDir() string {
	if d := os.Getenv("HALVM_REAL_UPSTREAM"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "real-upstream")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// UnpackRealUpstream checks the real upstream's mirror tarball against the
// sha256 file beside it and unpacks it into a new temporary directory,
// which it returns (git/<source>.git: the HALVM_MIRROR layout). Without the
// tarball the test stops through Unavailable (a failure under CI).
func UnpackRealUpstream(t testing.TB) string {
	t.Helper()
	dir := RealUpstreamDir()
	tarball := filepath.Join(dir, RealUpstreamTarball)
	remedy := "put the real upstream mirror (" + RealUpstreamTarball + " and its .sha256) in ../shared/real-upstream beside the repository, or set HALVM_REAL_UPSTREAM to its directory"
	want, err := os.ReadFile(tarball + ".sha256")
	if err != nil {
		Unavailable(t, "the real upstream mirror is not at "+dir+": the tests on the real lock did not run", remedy)
	}
	NeedCommand(t, "xz-utils", "xz")
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatalf("real upstream mirror: %v (remedy: %s)", err, remedy)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(want))
	if got := hex.EncodeToString(h.Sum(nil)); len(fields) == 0 || fields[0] != got {
		t.Fatalf("real upstream mirror %s has sha256 %s, its .sha256 file says %q: the copy is damaged; copy it again", tarball, got, strings.TrimSpace(string(want)))
	}
	out := t.TempDir()
	if b, err := exec.Command("tar", "-C", out, "-xJf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpacking %s: %v\n%s", tarball, err, b)
	}
	return out
}
