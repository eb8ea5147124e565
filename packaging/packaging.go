// Package packaging owns the release's binary packages: halvm and halvm-gmp
// (the two toolchain flavours, which conflict with each other) and
// halvm-archive-keyring, each as a .deb for Debian 12 and an .rpm for the
// Fedora/RHEL family, built with nfpm as a library.
//
// Every package is signed through nfpm's SignFn with the project's
// deterministic OpenPGP key (internal/pgp) and is byte-identical when rebuilt
// from the same tree, version, epoch and key: contents are listed explicitly
// in sorted order with normalized modes, owner root and every mtime set to
// SOURCE_DATE_EPOCH, and the rpm build host is fixed.
//
// Input contract: a toolchain package is made from an installed tree, the
// DESTDIR of `make install` (Tree.Root contains usr/bin/halvm-ghc and
// usr/lib/.../HaLVM-<ver>/). HaLVM bakes its libdir into its wrapper scripts
// and settings, so a tree is not relocatable: each format gets a tree
// installed with that format's libdir (Layouts), and the packager refuses a
// tree installed for the other layout or mentioning the other layout's
// libdir or a build directory.
package packaging

import (
	"fmt"
	"strings"
	"time"
)

// Format is a package format.
type Format string

const (
	Deb Format = "deb"
	RPM Format = "rpm"
)

// Formats lists the formats in build order.
var Formats = []Format{Deb, RPM}

// Layout is where a toolchain tree was installed: the configure prefix and
// libdir (both absolute). The HaLVM libdir is Libdir/HaLVM-<version>.
type Layout struct {
	Prefix string
	Libdir string
}

// Layouts are the install layouts each format's packages use: Debian's
// multiarch libdir (as upstream's Debian packaging had it) and rpm's
// %{_libdir} on x86_64.
var Layouts = map[Format]Layout{
	Deb: {Prefix: "/usr", Libdir: "/usr/lib/x86_64-linux-gnu"},
	RPM: {Prefix: "/usr", Libdir: "/usr/lib64"},
}

// HaLVMLibdir is the toolchain's own directory for version under l.
func (l Layout) HaLVMLibdir(version string) string { return l.Libdir + "/HaLVM-" + version }

// ShareDir is where examples go: /usr/share/HaLVM-<version>.
func (l Layout) ShareDir(version string) string { return l.Prefix + "/share/HaLVM-" + version }

// GeneratedFiles are the files `halvm-ghc-pkg recache` creates after
// installation; packages never ship them and remove them on erase/purge.
func (l Layout) GeneratedFiles(version string) []string {
	db := l.HaLVMLibdir(version) + "/package.conf.d"
	return []string{db + "/package.cache", db + "/package.cache.lock"}
}

// Package metadata shared by every package.
const (
	Homepage   = "https://github.com/GaloisInc/HaLVM"
	Vendor     = "HaLVM"
	License    = "BSD-3-Clause"
	Maintainer = "HaLVM release maintainers <halvm-release@users.noreply.github.com>"

	// KeyringName is the archive keyring package.
	KeyringName = "halvm-archive-keyring"
	// AptKeyring and RPMKey are where the keyring package puts the key.
	AptKeyring = "/etc/apt/keyrings/halvm.gpg"
	RPMKey     = "/etc/pki/rpm-gpg/RPM-GPG-KEY-halvm"
)

// Flavours are the toolchain packages, with what distinguishes them.
var Flavours = map[string]Flavour{
	"halvm": {
		Name:    "halvm",
		Other:   "halvm-gmp",
		Summary: "Haskell compiler for Xen unikernels (integer-simple)",
		Detail:  "This flavour uses integer-simple for Integer: no GMP code is linked into unikernels.",
	},
	"halvm-gmp": {
		Name:    "halvm-gmp",
		Other:   "halvm",
		Summary: "Haskell compiler for Xen unikernels (integer-gmp)",
		Detail:  "This flavour uses integer-gmp for Integer, with a static GMP 6.1.2 linked into unikernels.",
	},
}

// Flavour is one toolchain package.
type Flavour struct {
	Name    string // package name
	Other   string // the flavour it conflicts with and replaces
	Summary string // one line, no final period
	Detail  string // one sentence for the long description
}

// Depends are the packages a user needs to link unikernels with the
// installed toolchain, by each format's real package names: Debian 12 and
// current Fedora / RHEL 8-9 (xen-devel comes from Fedora; ncurses-compat-libs
// provides libtinfo.so.5 there).
var Depends = map[Format][]string{
	Deb: {"binutils", "gcc", "libc6", "libffi8", "libgmp-dev", "libtinfo5", "libxen-dev", "make", "perl", "zlib1g"},
	RPM: {"binutils", "gcc", "glibc", "gmp-devel", "libffi", "make", "ncurses-compat-libs", "perl-interpreter", "xen-devel", "zlib"},
}

// Arch is the architecture name of a package in format f; arch-independent
// packages are "all"/"noarch".
func Arch(f Format, independent bool) string {
	switch {
	case f == Deb && independent:
		return "all"
	case f == Deb:
		return "amd64"
	case independent:
		return "noarch"
	default:
		return "x86_64"
	}
}

// FileName is the conventional file name of a package:
// name_2.4.3-1_amd64.deb or name-2.4.3-1.x86_64.rpm.
func FileName(f Format, name, version string, release int, independent bool) string {
	if f == Deb {
		return fmt.Sprintf("%s_%s-%d_%s.deb", name, version, release, Arch(f, independent))
	}
	return fmt.Sprintf("%s-%s-%d.%s.rpm", name, version, release, Arch(f, independent))
}

// Compression per format, chosen by measurement (BenchmarkCompression on
// the 1.56 GB stand-in tree; the table and the reasons are in RELEASE.md):
//   - deb: xz (nfpm's has no levels). The smallest deb lintian passes and
//     every dpkg reads: 189 MB vs 306 MB with gzip -1 and 245 MB with
//     gzip -9, installed as fast (17.6 s vs 20.8 s). It costs 421 s of one
//     core per release build (gzip -1: 22 s). zstd would be smaller and
//     faster still, but Debian 12's lintian (2.116) rejects data.tar.zst as
//     malformed-deb-archive and dpkg before 1.21.18 (Debian 11) cannot read it.
//   - rpm: zstd, klauspost's best level (zstd:19), read by rpm >= 4.14
//     (Fedora >= 31, RHEL >= 8): 170 MB vs 199 MB at zstd:3 for 54 s more
//     build time; xz is no smaller, slower to build and install.
//
// Deterministic at any GOMAXPROCS (tested).
var Compression = map[Format]string{
	Deb: "xz",
	RPM: "zstd:19",
}

// changelogDate formats t as a Debian changelog trailer date.
func changelogDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700") }

// devNote is the line every package signed with a development key carries.
const devNote = "Signed with a DEVELOPMENT KEY: not an official HaLVM release."

// description joins a synopsis and paragraphs into nfpm's description form
// (first line synopsis, blank line between paragraphs).
func description(summary string, paras ...string) string {
	var b strings.Builder
	b.WriteString(summary)
	for _, p := range paras {
		if p == "" {
			continue
		}
		b.WriteString("\n")
		b.WriteString(wrap(p, 72))
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var lines []string
	var cur string
	for _, w := range strings.Fields(text) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = w
			continue
		}
		if cur == "" {
			cur = w
		} else {
			cur += " " + w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return strings.Join(lines, "\n")
}
