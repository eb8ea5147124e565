// Package hostreq owns the one table of host prerequisites: every Debian
// package this project needs on the machine it runs on, the programs and
// files each provides, who needs it (the release's stages, the
// verification, the demo's own set-up, the tests) and why. Preflight checks
// a run against it before any work starts, the demo and the test command
// install from it, .ci/packages.txt is generated from it, and a test keeps
// every program the code runs in it.
package hostreq

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Users of host prerequisites, beyond the release's stage names
// ("sources", "toolchain", "packages", "image", "sbom", "repos", "sign",
// "verify", "publish").
const (
	// Demo is the demo's own set-up: generating the sample upstream (git
	// repositories, musl's libm from the Debian source package, the PV
	// runtime compiled with gcc).
	Demo = "demo"
	// Tests is the test suite (the README's test command), which needs the
	// whole table and a few tools beyond the release.
	Tests = "tests"
	// PinsUpdate is `go run mage.go pins:update`.
	PinsUpdate = "pins:update"
)

// Package is one Debian package the project needs on the host.
type Package struct {
	Name     string   // the Debian 12 package
	Commands []string // programs it provides that the code runs (looked up in PATH)
	Files    []string // files it provides that the code needs (absolute paths)
	NeededBy []string // stages, Demo, PinsUpdate, Tests
	Why      string
}

// Table is every host prerequisite, sorted by package name. Every package
// is needed by the tests: the test command installs all of them.
var Table = []Package{
	{Name: "apt", Commands: []string{"apt-get", "apt-cache"}, NeededBy: []string{Demo, "toolchain", "image", "verify", PinsUpdate, Tests},
		Why: "downloads pinned Debian packages (image layers, the Xen machine of the boot checks, musl's source for the sample upstream) and resolves pins"},
	{Name: "autoconf", Commands: []string{"autoconf", "autoreconf"}, NeededBy: []string{"toolchain", Tests}, Why: "HaLVM's boot and configure scripts"},
	{Name: "automake", Commands: []string{"automake"}, NeededBy: []string{"toolchain", Tests}, Why: "HaLVM's boot script (aclocal, automake)"},
	{Name: "binutils", Commands: []string{"ar", "ld", "nm", "objdump", "ranlib", "readelf", "strip"}, NeededBy: []string{Demo, "toolchain", Tests},
		Why: "the toolchain build links and archives the RTS and libraries; the installed tree is stripped"},
	{Name: "bzip2", Commands: []string{"bzip2"}, NeededBy: []string{"toolchain", Tests}, Why: "unpacks bzip2 source tarballs"},
	{Name: "ca-certificates", Files: []string{"/etc/ssl/certs/ca-certificates.crt"}, NeededBy: []string{"sources", Tests}, Why: "HTTPS to upstream hosts and the Go module proxy"},
	{Name: "coreutils", Commands: []string{"cp", "install", "mkdir", "rm", "sha256sum"}, NeededBy: []string{"toolchain", "verify", Tests}, Why: "the recipe's install steps; the rebuild copies the release's inputs"},
	{Name: "cpp", Commands: []string{"cpp"}, NeededBy: []string{"toolchain", Tests}, Why: "GHC preprocesses Haskell sources with the C preprocessor"},
	{Name: "createrepo-c", Commands: []string{"createrepo_c"}, NeededBy: []string{Tests}, Why: "the dnf repository tests compare our repodata with createrepo_c's"},
	{Name: "debian-archive-keyring", Files: []string{"/usr/share/keyrings/debian-archive-keyring.gpg"}, NeededBy: []string{"image", "verify", Tests},
		Why: "mmdebstrap verifies the Debian mirror it bootstraps image layers and clean install roots from"},
	{Name: "diffutils", Commands: []string{"diff"}, NeededBy: []string{PinsUpdate, Tests}, Why: "pins:update prints the lock's diff"},
	{Name: "dnf", Commands: []string{"dnf"}, NeededBy: []string{"verify", Tests}, Why: "the dnf install check installs the packages from the signed dnf repository"},
	{Name: "docker-registry", Commands: []string{"docker-registry"}, NeededBy: []string{Tests}, Why: "the shared build cache's tests and ci:rehearse run it as the cache registry (HALVM_CACHE_REGISTRY); interop tests push images to it"},
	{Name: "docker.io", Commands: []string{"docker"}, NeededBy: []string{"verify", Tests}, Why: "the image checks docker run the image and boot a unikernel built inside it (needs a running daemon)"},
	{Name: "dpkg", Commands: []string{"dpkg", "dpkg-deb", "dpkg-query"}, NeededBy: []string{"toolchain", "image", "verify", Tests}, Why: "unpacks pinned .debs (tools, image layers, the Xen machine) and inspects the built ones; dpkg-query tells the host tool versions a re-run compares; the compression benchmark times dpkg --unpack"},
	{Name: "dpkg-dev", Commands: []string{"dpkg-source"}, NeededBy: []string{Demo, Tests}, Why: "apt-get source unpacks musl's source package for the sample upstream"},
	{Name: "findutils", Commands: []string{"find"}, NeededBy: []string{"toolchain", Tests}, Why: "the recipe's makefiles"},
	{Name: "gcc", Commands: []string{"gcc"}, NeededBy: []string{Demo, "toolchain", Tests}, Why: "compiles the RTS and C libraries (and the sample upstream's PV runtime)"},
	{Name: "git", Commands: []string{"git"}, NeededBy: []string{Demo, "sources", "toolchain", PinsUpdate, Tests}, Why: "fetches and checks out the pinned sources (the sample upstream is made of git repositories)"},
	{Name: "gpg", Commands: []string{"gpg", "gpgconf"}, NeededBy: []string{Tests}, Why: "OpenPGP interop tests check our signatures and keys with GnuPG"},
	{Name: "gpgv", Commands: []string{"gpgv"}, NeededBy: []string{"verify", Tests}, Why: "the signature checks verify Release, repomd.xml and SHA256SUMS.asc as apt does"},
	{Name: "iproute2", Commands: []string{"ip"}, NeededBy: []string{Tests}, Why: "the rebuild-from-URL test runs the rebuilder in a network namespace of its own that reaches only the release's web server and registry (internal/netns)"},
	{Name: "libffi-dev", Files: []string{"/usr/lib/x86_64-linux-gnu/libffi.so"}, NeededBy: []string{"toolchain", Tests}, Why: "GHC's RTS links libffi"},
	{Name: "libgmp-dev", Files: []string{"/usr/include/x86_64-linux-gnu/gmp.h"}, NeededBy: []string{"toolchain", Tests}, Why: "the halvm-gmp flavour's integer-gmp"},
	{Name: "libgmp10", Files: []string{"/usr/lib/x86_64-linux-gnu/libgmp.so.10"}, NeededBy: []string{"toolchain", Tests}, Why: "a runtime library of the GHC 8.0.2 bootstrap bindist"},
	{Name: "libncurses-dev", Files: []string{"/usr/include/ncurses.h"}, NeededBy: []string{"toolchain", Tests}, Why: "GHC's terminfo library"},
	{Name: "libtinfo5", Files: []string{"/usr/lib/x86_64-linux-gnu/libtinfo.so.5"}, NeededBy: []string{"toolchain", Tests}, Why: "a runtime library of the GHC 8.0.2 bootstrap bindist"},
	{Name: "libtool", Commands: []string{"libtoolize"}, NeededBy: []string{"toolchain", Tests}, Why: "HaLVM's boot script"},
	{Name: "libtool-bin", Commands: []string{"libtool"}, NeededBy: []string{"toolchain", Tests}, Why: "HaLVM's configure insists on libtool"},
	{Name: "libxen-dev", Files: []string{"/usr/include/xen/xen.h", "/usr/include/xenstore.h", "/usr/include/xenctrl.h", "/usr/lib/x86_64-linux-gnu/libxenstore.so"},
		NeededBy: []string{"toolchain", Tests}, Why: "the HaLVM RTS is compiled against the Xen headers"},
	{Name: "lintian", Commands: []string{"lintian"}, NeededBy: []string{Tests}, Why: "the package tests run Debian's lintian on the built .debs"},
	{Name: "make", Commands: []string{"make"}, NeededBy: []string{"toolchain", Tests}, Why: "drives the toolchain build"},
	{Name: "mmdebstrap", Commands: []string{"mmdebstrap"}, NeededBy: []string{"image", "verify", Tests}, Why: "bootstraps the image's Debian layers and the clean Debian 12 roots of the install and boot checks"},
	{Name: "nginx", Commands: []string{"nginx"}, NeededBy: []string{"verify", Tests}, Why: "the repositories are served through nginx as www-data, as a user's web server would (install checks, tests)"},
	{Name: "patch", Commands: []string{"patch"}, NeededBy: []string{"toolchain", Tests}, Why: "the recipe applies the lock's patches"},
	{Name: "perl", Commands: []string{"perl"}, NeededBy: []string{"toolchain", Tests}, Why: "GHC's build scripts (boot, ghc-split)"},
	{Name: "qemu-system-x86", Commands: []string{"qemu-system-x86_64"}, NeededBy: []string{"verify", Tests}, Why: "the boot checks boot the hello unikernel on Xen under QEMU"},
	{Name: "rpm", Commands: []string{"rpm", "rpmkeys", "rpmbuild"}, NeededBy: []string{"verify", Tests}, Why: "the signature checks verify the .rpm signatures with rpmkeys; interop tests build with rpmbuild"},
	{Name: "sed", Commands: []string{"sed"}, NeededBy: []string{"toolchain", Tests}, Why: "the recipe's configure scripts"},
	{Name: "sqv", Commands: []string{"sqv"}, NeededBy: []string{Tests}, Why: "OpenPGP interop: Sequoia's verifier (apt's default from trixie on) checks our signatures"},
	{Name: "tar", Commands: []string{"tar"}, NeededBy: []string{"toolchain", Tests}, Why: "unpacks source tarballs and the bootstrap bindist"},
	{Name: "util-linux", Commands: []string{"unshare"}, NeededBy: []string{"verify", Tests}, Why: "the reproducibility check rebuilds without network in a new network namespace"},
	{Name: "xen-utils-4.17", Files: []string{"/usr/lib/xen-4.17/bin/readnotes"}, NeededBy: []string{Tests}, Why: "tests check the sample kernels' Xen ELF notes with Xen's own readnotes"},
	{Name: "xz-utils", Commands: []string{"xz"}, NeededBy: []string{"toolchain", "verify", Tests}, Why: "unpacks xz tarballs; the boot checks decompress the Debian kernel"},
	{Name: "zlib1g-dev", Files: []string{"/usr/include/zlib.h"}, NeededBy: []string{"toolchain", Tests}, Why: "GHC links zlib"},
}

// NotPrerequisites are programs the code runs that no host package has to
// provide, and why.
var NotPrerequisites = map[string]string{
	"go":         "the Go toolchain the project itself runs with",
	"halvm-ghc":  "the product: it runs inside clean roots and images, never from the host",
	"diffoscope": "optional: verify runs it only when installed, for a deeper view of a difference it has already listed",
	"sh":         "essential (dash): on every Debian system",
	"runghc":     "the bootstrap GHC's, unpacked by the recipe from the pinned bindist",
	"alex":       "the recipe's tool prefix: unpacked from the lock's pinned Debian package",
	"HsColour":   "the recipe's tool prefix: unpacked from the lock's pinned Debian package",
	"happy":      "the recipe's tool prefix: built from the lock's pinned source",
	"cabal":      "the recipe's tool prefix: from the lock's pinned cabal-install",
	"sleep":      "essential (coreutils): tests only",
	"gzip":       "essential: on every Debian system",
	"zstd":       "only for a zstd-compressed kernel; Debian 12's kernel the boot checks use is xz-compressed",
	"systemctl":  "the init system's: the set-up starts Docker with it only where systemd runs",
}

// Find returns the table's entry for a Debian package.
func Find(name string) (Package, bool) {
	for _, p := range Table {
		if p.Name == name {
			return p, true
		}
	}
	return Package{}, false
}

// ProviderOf returns the package that provides a program or a file.
func ProviderOf(what string) (Package, bool) {
	for _, p := range Table {
		for _, c := range append(append([]string(nil), p.Commands...), p.Files...) {
			if c == what {
				return p, true
			}
		}
	}
	return Package{}, false
}

// NeededBy returns the packages any of users need, in table order.
func NeededBy(users ...string) []Package {
	var out []Package
	for _, p := range Table {
		if p.neededBy(users...) {
			out = append(out, p)
		}
	}
	return out
}

func (p Package) neededBy(users ...string) bool {
	for _, u := range users {
		for _, n := range p.NeededBy {
			if n == u {
				return true
			}
		}
	}
	return false
}

// Names returns the names of pkgs, sorted.
func Names(pkgs []Package) []string {
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// CIPackages is the content of .ci/packages.txt: every package of the
// table, one a line, each after a comment saying who needs it and why.
func CIPackages() []byte {
	var b bytes.Buffer
	b.WriteString("# Debian packages this project needs on the host, one a line: generated from the table in\n")
	b.WriteString("# internal/hostreq (go run mage.go ci:packages); do not edit. `go run mage.go test` and the demo\n")
	b.WriteString("# install them themselves; this list is for provisioning a machine by hand.\n")
	for _, p := range Table {
		fmt.Fprintf(&b, "# %s: %s\n%s\n", strings.Join(p.NeededBy, ", "), p.Why, p.Name)
	}
	return b.Bytes()
}
