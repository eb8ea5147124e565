package deb822

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

// Source is one entry of apt's sources: a stanza of a .sources file or a
// line of a .list file.
type Source struct {
	File       string   // the file it was read from, relative to the configuration directory
	Types      []string // "deb", "deb-src"
	URIs       []string
	Suites     []string
	Components []string
	SignedBy   string // the Signed-By field or signed-by option; "" when absent
	Enabled    bool   // false for a stanza with "Enabled: no"
}

// Has reports whether the entry is enabled and lists typ (e.g. "deb")
// among its types.
func (s Source) Has(typ string) bool { return s.Enabled && slices.Contains(s.Types, typ) }

// ReadSources reads apt's sources from conf, a file system rooted at apt's
// configuration directory (/etc/apt): sources.list, then
// sources.list.d/*.list and *.sources in name order, apt's reading order.
// Files with other names are ignored, as apt ignores them; missing files
// are no error, unreadable or malformed ones are, naming the file.
func ReadSources(conf fs.FS) ([]Source, error) {
	files := []string{"sources.list"}
	ents, err := fs.ReadDir(conf, "sources.list.d")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading apt sources: %w", err)
	}
	var parts []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			parts = append(parts, "sources.list.d/"+n)
		}
	}
	sort.Strings(parts)
	var out []Source
	for _, name := range append(files, parts...) {
		b, err := fs.ReadFile(conf, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading apt sources: %w", err)
		}
		var ss []Source
		if strings.HasSuffix(name, ".sources") {
			ss, err = parseSourcesFile(b)
		} else {
			ss, err = parseListFile(b)
		}
		if err != nil {
			return nil, fmt.Errorf("reading apt sources: %s: %w", name, err)
		}
		for i := range ss {
			ss[i].File = name
		}
		out = append(out, ss...)
	}
	return out, nil
}

// parseSourcesFile reads the deb822 form.
func parseSourcesFile(b []byte) ([]Source, error) {
	paras, err := Parse(b)
	if err != nil {
		return nil, err
	}
	out := make([]Source, 0, len(paras))
	for _, p := range paras {
		out = append(out, Source{
			Types: strings.Fields(p.Get("Types")), URIs: strings.Fields(p.Get("URIs")),
			Suites: strings.Fields(p.Get("Suites")), Components: strings.Fields(p.Get("Components")),
			SignedBy: p.Get("Signed-By"), Enabled: !strings.EqualFold(p.Get("Enabled"), "no"),
		})
	}
	return out, nil
}

// parseListFile reads the one-line form: type [options] URI suite
// [component...], comments after #.
func parseListFile(b []byte) ([]Source, error) {
	var out []Source
	for n, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] != "deb" && f[0] != "deb-src" {
			return nil, fmt.Errorf("line %d: want deb or deb-src, got %q", n+1, f[0])
		}
		s := Source{Types: f[:1], Enabled: true}
		rest := f[1:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
			// Options run up to the field ending in "]".
			for len(rest) > 0 {
				opt := strings.Trim(rest[0], "[]")
				if k, v, ok := strings.Cut(opt, "="); ok && k == "signed-by" {
					s.SignedBy = v
				}
				done := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				if done {
					break
				}
			}
		}
		if len(rest) < 2 {
			return nil, fmt.Errorf("line %d: want %s [options] URI suite [component...]", n+1, f[0])
		}
		s.URIs, s.Suites, s.Components = rest[:1], rest[1:2], rest[2:]
		out = append(out, s)
	}
	return out, nil
}
