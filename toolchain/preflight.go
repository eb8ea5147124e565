package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/hostreq"
)

// Prerequisite is something the build needs from the host and the Debian
// package that provides it.
type Prerequisite struct {
	What    string // program name or file path
	File    bool   // What is a file (header, library), not a program
	Package string
}

// Prerequisites are the host programs and files the recipe needs (what
// HaLVM's configure insists on, what the recipe itself runs, and the
// runtime libraries of the GHC 8.0.2 deb8 bindist): the entries of the one
// table of host prerequisites (internal/hostreq) needed by "toolchain".
var Prerequisites = prerequisites()

func prerequisites() []Prerequisite {
	var out []Prerequisite
	for _, p := range hostreq.NeededBy("toolchain") {
		for _, c := range p.Commands {
			out = append(out, Prerequisite{What: c, Package: p.Name})
		}
		for _, f := range p.Files {
			out = append(out, Prerequisite{What: f, File: true, Package: p.Name})
		}
	}
	return out
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
