// Package preflight checks, before any work starts, that the host has what
// the planned stages need, and reports everything missing at once with the
// Debian package that provides it.
package preflight

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Tool is a program a stage runs.
type Tool struct {
	Command string // looked up in PATH, or an absolute path
	Package string // Debian package providing it
	Why     string // which stage or step needs it
}

// File is a header or data file a stage needs (e.g. /usr/include/xen/xen.h).
type File struct {
	Path    string
	Package string
	Why     string
}

// Requirements of a run.
type Requirements struct {
	Tools []Tool
	Files []File
}

// Add merges more requirements in.
func (r *Requirements) Add(o Requirements) {
	r.Tools = append(r.Tools, o.Tools...)
	r.Files = append(r.Files, o.Files...)
}

// Check reports every missing tool and file at once, with one apt-get
// command that installs them all.
func Check(r Requirements) error {
	return check(r, exec.LookPath, func(p string) bool { _, err := os.Stat(p); return err == nil })
}

func check(r Requirements, look func(string) (string, error), exists func(string) bool) error {
	var lines []string
	pkgs := map[string]bool{}
	seen := map[string]bool{}
	for _, t := range r.Tools {
		if seen["t:"+t.Command] {
			continue
		}
		seen["t:"+t.Command] = true
		if strings.HasPrefix(t.Command, "/") {
			if exists(t.Command) {
				continue
			}
		} else if _, err := look(t.Command); err == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s (Debian package %s) — needed by %s", t.Command, t.Package, t.Why))
		pkgs[t.Package] = true
	}
	for _, f := range r.Files {
		if seen["f:"+f.Path] || exists(f.Path) {
			continue
		}
		seen["f:"+f.Path] = true
		lines = append(lines, fmt.Sprintf("%s (Debian package %s) — needed by %s", f.Path, f.Package, f.Why))
		pkgs[f.Package] = true
	}
	if len(lines) == 0 {
		return nil
	}
	var names []string
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	return fmt.Errorf("preflight: %d prerequisite(s) missing:\n  %s\ninstall them with:\n  apt-get install %s",
		len(lines), strings.Join(lines, "\n  "), strings.Join(names, " "))
}
