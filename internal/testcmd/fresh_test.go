package testcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// TestFreshDebian12SetsItselfUp runs the README's two commands' set-up on
// a fresh Debian 12 root (mmdebstrap's apt variant: essential packages and
// apt, nothing else) with the Go toolchain and a copy of the project in it:
// `go run mage.go preflight` (what `go run mage.go demo` does before any
// work) must install every missing package in one apt-get install and a
// second run find nothing missing; then the same for `go run mage.go
// testSetup` (the test command's set-up, without the test run).
//
// How the root differs from a real fresh machine, and why:
//   - Go: the host's GOROOT is bind-mounted read-only at the same path
//     (instead of a copy), and the host's module and build caches are
//     bind-mounted too, so the root compiles mage and the project without
//     fetching modules (it still reaches the Go proxy for anything not
//     cached, once the set-up has installed ca-certificates).
//   - Docker: a chroot cannot run a daemon of its own; the host's
//     /run/docker.sock is bind-mounted in, so the set-up installs the
//     docker client (docker.io) and then finds a daemon that answers,
//     exactly as on a machine whose daemon runs. A policy-rc.d keeps
//     package scripts from starting services inside the chroot.
//   - apt: .debs are kept between runs in $HALVM_TEST_CACHE/fresh-apt-archives
//     (bind-mounted on the root's /var/cache/apt/archives); the package
//     lists come from the Debian mirror each time.
func TestFreshDebian12SetsItselfUp(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.Short(t, "installing about 1 GB of Debian packages into a fresh Debian 12 root")
	testenv.NeedCommand(t, "git", "git")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()

	tpl := rootfstest.Template(t, rootfs.Spec{})
	root := filepath.Join(t.TempDir(), "root")
	if err := rootfs.Clone(ctx, tpl, root); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after every bind mount is gone
	// (Remove also refuses to delete through a mount).
	t.Cleanup(func() {
		if err := rootfs.Remove(root); err != nil {
			t.Errorf("removing the fresh root: %v", err)
		}
	})

	goenv := hostGoEnv(ctx, t)
	archives := filepath.Join(rootfstest.CacheDir(), "fresh-apt-archives")
	for _, d := range []string{filepath.Join(archives, "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bind(t, goenv["GOROOT"], root, true)
	bind(t, goenv["GOMODCACHE"], root, false)
	bind(t, goenv["GOCACHE"], root, false)
	bindAt(t, archives, filepath.Join(root, "var/cache/apt/archives"), false)
	sock, err := filepath.EvalSymlinks("/var/run/docker.sock")
	if err != nil {
		testenv.Unavailable(t, "no Docker socket at /var/run/docker.sock: "+err.Error(), "start the Docker daemon (service docker start)")
	}
	bindAt(t, sock, filepath.Join(root, "run/docker.sock"), false)
	writeFile(t, filepath.Join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		_ = os.Remove(filepath.Join(root, "etc/resolv.conf"))
		writeFile(t, filepath.Join(root, "etc/resolv.conf"), string(b), 0o644)
	}
	copyProject(ctx, t, filepath.Join(root, "src/halvm-release"))
	// A network whose HTTPS egress is re-signed by a local CA (this
	// project's development machines) provisions its machines with that
	// CA the Debian way, in /usr/local/share/ca-certificates, which
	// ca-certificates (installed by the set-up) adds to the system bundle:
	// the root gets the host's. None there elsewhere: nothing to do.
	if crts, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt"); len(crts) > 0 {
		for _, c := range crts {
			fi, err := os.Stat(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := copyFile(c, filepath.Join(root, c), fi.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}

	env := []string{
		"PATH=" + filepath.Join(goenv["GOROOT"], "bin") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "GOMODCACHE=" + goenv["GOMODCACHE"], "GOCACHE=" + goenv["GOCACHE"], "GOFLAGS=-buildvcs=false",
		"GOPROXY=" + goenv["GOPROXY"], "GOSUMDB=" + goenv["GOSUMDB"], "GOTOOLCHAIN=local",
		"HALVM_CACHE=/root/.cache/halvm-release", "HALVM_TEST_CACHE=/root/.cache/halvm-release-test",
	}
	inRoot := func(step, target string) string {
		t.Helper()
		start := time.Now()
		var out bytes.Buffer
		err := rootfs.Run(ctx, root, run.Cmd{Args: []string{"/bin/sh", "-c", "cd /src/halvm-release && exec go run mage.go " + target},
			Env: env, Stdout: &out, Stderr: &out})
		t.Logf("%s: go run mage.go %s took %s:\n%s", step, target, time.Since(start).Round(time.Second), indent(out.String()))
		if err != nil {
			t.Fatalf("%s: go run mage.go %s in the fresh root: %v", step, target, err)
		}
		return out.String()
	}
	installs := regexp.MustCompile(`set-up: installing (\d+) missing Debian package\(s\)`)

	// The README's first command, up to the end of its preflight.
	out := inRoot("demo set-up", "preflight")
	if m := installs.FindAllStringSubmatch(out, -1); len(m) != 1 {
		t.Fatalf("demo set-up: want exactly one install of the missing packages, got %d", len(m))
	}
	if strings.Count(out, "apt-get update && apt-get install") != 1 || !strings.Contains(out, "demo: preflight: the host has every prerequisite of the whole run") {
		t.Fatalf("demo set-up: not one apt-get install followed by a clean preflight")
	}
	for _, w := range []string{"qemu-system-x86 (for qemu-system-x86_64) — needed by verify: xen-boot-", "docker.io (for docker)", "mmdebstrap", "libxen-dev"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo set-up: the install did not say %q", w)
		}
	}
	if out := inRoot("demo preflight again", "preflight"); installs.MatchString(out) || !strings.Contains(out, "the host has every prerequisite") {
		t.Fatalf("demo preflight again: something still missing after the set-up")
	}

	// The README's test command, its set-up only.
	out = inRoot("test set-up", "testSetup")
	if m := installs.FindAllStringSubmatch(out, -1); len(m) != 1 {
		t.Fatalf("test set-up: want exactly one install of what the demo did not need (lintian, docker-registry, ...), got %d", len(m))
	}
	for _, w := range []string{"lintian", "docker-registry", "sqv", "test set-up: every host prerequisite present"} {
		if !strings.Contains(out, w) {
			t.Errorf("test set-up: output lacks %q", w)
		}
	}
	if out := inRoot("test set-up again", "testSetup"); installs.MatchString(out) || strings.Contains(out, "go install") {
		t.Fatalf("test set-up again: something still missing after the set-up")
	}
	// apt's own figures of the two installs (download and disk).
	for _, log := range []string{"src/halvm-release/dist/logs/setup-apt.log", "root/.cache/halvm-release-test/logs/setup-apt.log"} {
		b, err := os.ReadFile(filepath.Join(root, log))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Need to get") || strings.HasPrefix(l, "After this operation") || strings.Contains(l, "newly installed") {
				t.Logf("%s: %s", log, l)
			}
		}
	}
}

// hostGoEnv is the host's go env of what the root shares.
func hostGoEnv(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	keys := []string{"GOROOT", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB"}
	out, err := run.Output(ctx, run.Cmd{Args: append([]string{"go", "env"}, keys...), Env: run.BaseEnv(run.Inherit("GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GOPATH", "XDG_CACHE_HOME")...)})
	if err != nil {
		t.Fatal(err)
	}
	vals := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(vals) != len(keys) {
		t.Fatalf("go env: %q", out)
	}
	m := map[string]string{}
	for i, k := range keys {
		m[k] = vals[i]
	}
	for _, k := range keys[:3] {
		if !filepath.IsAbs(m[k]) {
			t.Fatalf("go env %s = %q: want an absolute path", k, m[k])
		}
	}
	return m
}

// bind mounts dir on the same path inside root.
func bind(t *testing.T, dir, root string, readOnly bool) {
	t.Helper()
	bindAt(t, dir, filepath.Join(root, dir), readOnly)
}

// bindAt bind-mounts src on dst (created) until the test ends.
func bindAt(t *testing.T, src, dst string, readOnly bool) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(dst, 0o755)
	} else {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			err = os.WriteFile(dst, nil, 0o644)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dst, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dst, err)
		}
	})
	if readOnly {
		if err := syscall.Mount("", dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("making %s read-only: %v", dst, err)
		}
	}
}

// copyProject copies the module's working tree (tracked and untracked,
// not ignored files) to dst.
func copyProject(ctx context.Context, t *testing.T, dst string) {
	t.Helper()
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{"git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"}, Dir: top, Env: run.BaseEnv()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(top, rel)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or a link
		}
		if err := copyFile(src, filepath.Join(dst, rel), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 50 {
		t.Fatalf("copied only %d files of the project from %s", n, top)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
