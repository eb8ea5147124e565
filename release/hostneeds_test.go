package release

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/hostreq"
)

// hostWithout is a root Debian host with every program and file of the
// table except those of the named packages, and a Docker daemon.
func hostWithout(missing ...string) hostreq.Host {
	gone := map[string]bool{}
	for _, m := range missing {
		p, _ := hostreq.Find(m)
		for _, x := range append(append([]string(nil), p.Commands...), p.Files...) {
			gone[x] = true
		}
	}
	return hostreq.Host{UID: 0, Debian: true,
		LookPath: func(n string) bool { return !gone[n] },
		Exists:   func(p string) bool { return !gone[p] },
		DockerUp: func(context.Context) error { return nil }}
}

// TestHostNeedsSeesTheWholeRun: preflight knows, before any stage runs,
// what verify's checks will need (QEMU, dnf, rpm, gpgv, mmdebstrap, Docker)
// and reports all of it with one command.
func TestHostNeedsSeesTheWholeRun(t *testing.T) {
	all := HostNeeds([]string{"halvm", "halvm-gmp"}, nil)
	pkgs := strings.Join(all.Packages(), " ")
	for _, w := range []string{"qemu-system-x86", "dnf", "rpm", "gpgv", "mmdebstrap", "docker.io", "git", "libxen-dev", "dpkg", "apt", "xz-utils", "util-linux", "debian-archive-keyring"} {
		if !strings.Contains(" "+pkgs+" ", " "+w+" ") {
			t.Errorf("the whole run's needs lack %s: %s", w, pkgs)
		}
	}
	for _, w := range []string{"lintian", "docker-registry", "createrepo-c", "sqv", "gpg"} {
		if strings.Contains(" "+pkgs+" ", " "+w+" ") {
			t.Errorf("the run does not use %s (tests only), yet needs it", w)
		}
	}
	rep := all.Check(context.Background(), hostWithout("qemu-system-x86", "dnf", "rpm", "gpgv"))
	msg := rep.Err().Error()
	for _, w := range []string{"4 Debian package(s) missing", "qemu-system-x86 (for qemu-system-x86_64) — needed by verify: xen-boot-halvm",
		"dnf (for dnf) — needed by verify: dnf-install-halvm,", "gpgv (for gpgv) — needed by verify: apt-release-signatures,",
		"\n    apt-get install -y --no-install-recommends dnf gpgv qemu-system-x86 rpm"} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	// a daemon that does not answer is reported with the rest
	h := hostWithout("qemu-system-x86")
	h.DockerUp = func(context.Context) error { return errors.New("cannot connect to unix:///var/run/docker.sock") }
	msg = all.Check(context.Background(), h).Err().Error()
	if !strings.Contains(msg, "a Docker daemon that answers — needed by verify: image-run-halvm, verify: image-run-halvm-gmp, verify: xen-boot-image-halvm") || !strings.Contains(msg, "qemu-system-x86") {
		t.Errorf("docker down not reported with the rest:\n%s", msg)
	}
}

func TestHostNeedsOfSkippedStages(t *testing.T) {
	noVerify := HostNeeds(nil, map[string]string{"verify": "trial"})
	for _, p := range noVerify.Packages() {
		if p == "qemu-system-x86" || p == "dnf" || p == "docker.io" {
			t.Errorf("verify skipped, yet %s needed", p)
		}
	}
	// the image stage skipped: the image checks do not run, no Docker
	noImage := HostNeeds(nil, map[string]string{"image": "trial"})
	for _, p := range noImage.Packages() {
		if p == "docker.io" {
			t.Errorf("image skipped, yet docker needed")
		}
	}
	if !strings.Contains(strings.Join(noImage.Packages(), " "), "qemu-system-x86") {
		t.Error("the boot checks of the installed package still run without the image")
	}
	demo := strings.Join(DemoNeeds(nil).Packages(), " ")
	if !strings.Contains(demo, "dpkg-dev") {
		t.Errorf("the demo's own set-up (musl's source) lacks dpkg-dev: %s", demo)
	}
}
