package packaging

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// inRoot runs a command in the chroot and returns its stdout.
func inRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := inRootErr(root, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func inRootErr(root string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := rootfs.Output(ctx, root, run.Cmd{Args: args})
	return string(out), err
}

func exists(root, p string) bool {
	_, err := os.Lstat(filepath.Join(root, p))
	return err == nil
}

// TestDebInstall installs the debs with apt into a clean Debian 12 rootfs,
// runs the toolchain, upgrades to the next release, switches flavour and
// purges, checking that nothing is left behind. The rootfs template has the
// packages' Depends preinstalled (mmdebstrap --include, cached), so apt
// resolves them without downloads.
func TestDebInstall(t *testing.T) {
	testenv.Short(t, "installing into a Debian rootfs")
	testenv.NeedRoot(t)
	root := rootfstest.NewSpec(t, rootfs.Spec{Include: Depends[Deb]})
	k := testKey(t)
	r1 := buildAll(t, Options{Key: k}, 1)
	r2 := buildAll(t, Options{Key: k}, 2)
	pkgs := filepath.Join(root, "tmp", "pkgs")
	must(t, os.MkdirAll(pkgs, 0o755))
	put := func(p string) string {
		b, err := os.ReadFile(p)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(pkgs, filepath.Base(p)), b, 0o644))
		return "/tmp/pkgs/" + filepath.Base(p)
	}
	before := mustPaths(t, root)
	lib := Layouts[Deb].HaLVMLibdir(testVersion)
	cache := lib + "/package.conf.d/package.cache"

	inRoot(t, root, "apt-get", "install", "-y", "--no-install-recommends", put(r1.debs[KeyringName]), put(r1.debs["halvm"]))
	if v := inRoot(t, root, "halvm-ghc", "--version"); !strings.Contains(v, "version 8.0.2 (HaLVM 2.4.3, halvm)") {
		t.Errorf("halvm-ghc --version: %q", v)
	}
	if !exists(root, cache) {
		t.Errorf("postinst did not run recache: no %s", cache)
	}
	if !exists(root, AptKeyring) {
		t.Errorf("keyring package did not install %s", AptKeyring)
	}
	inRoot(t, root, "halvm-ghc-pkg", "list")

	// Upgrade to the next release.
	inRoot(t, root, "apt-get", "install", "-y", put(r2.debs["halvm"]))
	if v := inRoot(t, root, "dpkg-query", "-W", "-f", "${Version}", "halvm"); v != "2.4.3-2" {
		t.Errorf("after upgrade halvm is %q", v)
	}
	if !exists(root, cache) {
		t.Errorf("no %s after the upgrade", cache)
	}
	inRoot(t, root, "halvm-ghc", "--version")

	// Switch flavour: halvm-gmp conflicts with and replaces halvm.
	inRoot(t, root, "apt-get", "install", "-y", put(r1.debs["halvm-gmp"]))
	if v := inRoot(t, root, "halvm-ghc", "--version"); !strings.Contains(v, "halvm-gmp") {
		t.Errorf("after switching flavour halvm-ghc --version: %q", v)
	}
	if st, _ := inRootErr(root, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "halvm"); strings.HasPrefix(st, "ii") {
		t.Errorf("halvm still installed next to halvm-gmp")
	}
	if !exists(root, cache) {
		t.Errorf("no %s after switching flavour", cache)
	}

	// Purge everything: the rootfs is as before.
	inRoot(t, root, "apt-get", "purge", "-y", "halvm-gmp", "halvm", KeyringName)
	must(t, os.RemoveAll(pkgs))
	added, removed := rootfs.DiffPaths(before, mustPaths(t, root))
	if len(added)+len(removed) > 0 {
		t.Errorf("after purge the rootfs differs: added %v, removed %v", added, removed)
	}
}

// TestRPMInstall installs the rpms with `rpm --root <scratch> --nodeps`
// (their Requires name Fedora packages that a Debian scratch root cannot
// have) into a clean Debian 12 rootfs, used only for its /bin/sh so the
// scriptlets really run, with the signature checked against the imported
// key; then erases them and checks nothing is left.
func TestRPMInstall(t *testing.T) {
	testenv.Short(t, "installing rpms into a scratch root")
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "rpm", "rpm", "rpmkeys")
	root := rootfstest.New(t)
	k := testKey(t)
	b := buildAll(t, Options{Key: k}, 1)
	keyFile := filepath.Join(t.TempDir(), "RPM-GPG-KEY-halvm")
	must(t, os.WriteFile(keyFile, k.PublicArmored(), 0o644))
	tool(t, "rpm", "--root", root, "--initdb")
	tool(t, "rpmkeys", "--root", root, "--import", keyFile)
	// Fedora's filesystem package owns these; the packages rightly do not.
	for _, d := range []string{"etc/pki/rpm-gpg", "usr/share/licenses"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	before := mustPaths(t, root)

	lib := Layouts[RPM].HaLVMLibdir(testVersion)
	tool(t, "rpm", "--root", root, "-i", "--nodeps", b.rpms[KeyringName], b.rpms["halvm"])
	for _, p := range []string{"/usr/bin/halvm-ghc", lib + "/settings", lib + "/package.conf.d/package.cache",
		"/usr/share/HaLVM-2.4.3/examples/Verify/Hello/Hello.hs", RPMKey} {
		if !exists(root, p) {
			t.Errorf("%s missing after rpm -i", p)
		}
	}
	if v := inRoot(t, root, "halvm-ghc", "--version"); !strings.Contains(v, "version 8.0.2") {
		t.Errorf("halvm-ghc --version: %q", v)
	}
	if out := tool(t, "rpm", "--root", root, "-V", "--nodeps", "halvm"); out != "" {
		t.Errorf("rpm -V --nodeps halvm:\n%s", out)
	}
	tool(t, "rpm", "--root", root, "-e", "halvm", KeyringName)
	added, removed := rootfs.DiffPaths(before, mustPaths(t, root))
	if len(added)+len(removed) > 0 {
		t.Errorf("after rpm -e the root differs: added %v, removed %v", added, removed)
	}
}

func mustPaths(t *testing.T, root string) []string {
	t.Helper()
	p, err := rootfs.Paths(root)
	must(t, err)
	return p
}
