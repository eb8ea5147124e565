package rootfs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
)

func TestRunInClone(t *testing.T) {
	root := rootfstest.New(t)
	ctx := context.Background()
	out, err := rootfs.Output(ctx, root, run.Cmd{Args: []string{"sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME; ls /proc/self/status; command -v apt-get; command -v gpgv"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bookworm\n", "/proc/self/status\n", "/usr/bin/apt-get\n", "/usr/bin/gpgv\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A failing command: an error, and nothing stays mounted.
	err = rootfs.Run(ctx, root, run.Cmd{Args: []string{"sh", "-c", "echo boom >&2; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing command: err = %v, want its stderr", err)
	}
	assertNoMounts(t, root)

	// A cancelled command: killed, unmounted.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := rootfs.Run(cctx, root, run.Cmd{Args: []string{"sleep", "30"}}); err == nil {
		t.Error("cancelled command succeeded")
	}
	assertNoMounts(t, root)

	// Clones are independent of each other and of the template.
	if err := os.WriteFile(filepath.Join(root, "etc", "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := rootfstest.New(t)
	if _, err := os.Stat(filepath.Join(other, "etc", "marker")); err == nil {
		t.Error("a change in one clone shows in another")
	}
}

func assertNoMounts(t *testing.T, root string) {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	abs, _ := filepath.Abs(root)
	if strings.Contains(string(b), abs+"/") {
		t.Errorf("mounts left under %s", root)
	}
}

func TestMirrorFrom(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"deb822": {
			"etc/apt/sources.list.d/debian.sources": {Data: []byte("Types: deb\n# comment\nURIs: http://security.mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
				"Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")},
			"etc/apt/sources.list.d/other.sources.disabled": {Data: []byte("Types: deb\nURIs: http://wrong/\nSuites: bookworm\nComponents: main\n")},
		},
		"one-line": {
			"etc/apt/sources.list": {Data: []byte("# deb http://wrong/ bookworm main\ndeb-src http://wrong/ bookworm main\ndeb [arch=amd64 signed-by=/x.gpg] http://mirror.example/debian bookworm main\n")},
		},
	} {
		got, err := rootfs.MirrorFrom(fsys)
		if err != nil || got != "http://mirror.example/debian" {
			t.Errorf("%s: mirror = %q, %v", name, got, err)
		}
	}
	_, err := rootfs.MirrorFrom(fstest.MapFS{"etc/apt/sources.list.d/x.sources": {Data: []byte("Enabled: no\nTypes: deb\nURIs: http://x/\nSuites: bookworm\nComponents: main\n")}})
	if err == nil {
		t.Error("a disabled source was used")
	}
}
