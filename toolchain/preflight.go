package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Prerequisite is something the build needs from the host and the Debian
// package that provides it.
type Prerequisite struct {
	What    string // program name or file path
	File    bool   // What is a file (header, library), not a program
	Package string
}

// Prerequisites are the host programs and files the recipe needs: what
// HaLVM's configure insists on, what the recipe itself runs, and the
// runtime libraries of the GHC 8.0.2 deb8 bindist.
var Prerequisites = []Prerequisite{
	{What: "autoconf", Package: "autoconf"},
	{What: "autoreconf", Package: "autoconf"},
	{What: "automake", Package: "automake"},
	{What: "libtoolize", Package: "libtool"},
	{What: "libtool", Package: "libtool-bin"},
	{What: "gcc", Package: "gcc"},
	{What: "cpp", Package: "cpp"},
	{What: "make", Package: "make"},
	{What: "perl", Package: "perl"},
	{What: "patch", Package: "patch"},
	{What: "git", Package: "git"},
	{What: "ar", Package: "binutils"},
	{What: "ld", Package: "binutils"},
	{What: "nm", Package: "binutils"},
	{What: "objdump", Package: "binutils"},
	{What: "ranlib", Package: "binutils"},
	{What: "readelf", Package: "binutils"},
	{What: "tar", Package: "tar"},
	{What: "xz", Package: "xz-utils"},
	{What: "bzip2", Package: "bzip2"},
	{What: "sed", Package: "sed"},
	{What: "find", Package: "findutils"},
	{What: "install", Package: "coreutils"},
	{What: "dpkg-deb", Package: "dpkg"},
	{What: "apt-get", Package: "apt"},
	{What: "/usr/include/xen/xen.h", File: true, Package: "libxen-dev"},
	{What: "/usr/include/xenstore.h", File: true, Package: "libxen-dev"},
	{What: "/usr/include/xenctrl.h", File: true, Package: "libxen-dev"},
	{What: "/usr/lib/x86_64-linux-gnu/libxenstore.so", File: true, Package: "libxen-dev"},
	{What: "/usr/include/ncurses.h", File: true, Package: "libncurses-dev"},
	{What: "/usr/include/zlib.h", File: true, Package: "zlib1g-dev"},
	{What: "/usr/include/x86_64-linux-gnu/gmp.h", File: true, Package: "libgmp-dev"},
	{What: "/usr/lib/x86_64-linux-gnu/libffi.so", File: true, Package: "libffi-dev"},
	{What: "/usr/lib/x86_64-linux-gnu/libtinfo.so.5", File: true, Package: "libtinfo5"},
	{What: "/usr/lib/x86_64-linux-gnu/libgmp.so.10", File: true, Package: "libgmp10"},
}

// Missing returns the prerequisites that are not on this host.
func Missing() []Prerequisite {
	var out []Prerequisite
	for _, p := range Prerequisites {
		if p.File {
			if _, err := os.Stat(p.What); err != nil {
				out = append(out, p)
			}
			continue
		}
		found := false
		for _, d := range filepath.SplitList(SystemPath) {
			if fi, err := os.Stat(filepath.Join(d, p.What)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

// Preflight fails listing every missing host prerequisite at once, with
// the Debian packages to install.
func Preflight(ctx context.Context) error {
	missing := Missing()
	if len(missing) == 0 {
		return nil
	}
	var lines []string
	pkgs := map[string]bool{}
	for _, m := range missing {
		lines = append(lines, fmt.Sprintf("  %s (Debian package %s)", m.What, m.Package))
		pkgs[m.Package] = true
	}
	var list []string
	for p := range pkgs {
		list = append(list, p)
	}
	sort.Strings(list)
	return fmt.Errorf("toolchain preflight: %d host prerequisites are missing:\n%s\nremedy: apt-get install -y %s",
		len(missing), strings.Join(lines, "\n"), strings.Join(list, " "))
}
