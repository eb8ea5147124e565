package sources

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// debArchives are the Debian archives a lock can name.
var debArchives = []string{"debian", "debian-security"}

// DebMirror maps every Debian archive to <base>/<archive>, the layout of a
// Debian mirror (and of ExportMirror's directory): the explicit mirror
// option.
func DebMirror(base string) map[string]string {
	base = strings.TrimSuffix(base, "/")
	m := map[string]string{}
	for _, a := range debArchives {
		m[a] = base + "/" + a
	}
	return m
}

// AptArchives reads the apt configuration below root (normally "/"):
// etc/apt/sources.list, etc/apt/sources.list.d/*.list and *.sources, and
// returns the base URI of each Debian archive ("debian", "debian-security")
// found there, the first one in apt's reading order winning. An archive is
// recognised by the last path element of a URI named like it (so snapshot
// URIs such as .../archive/debian/20250520T000000Z count too). Disabled
// stanzas (Enabled: no) are ignored.
func AptArchives(root string) (map[string]string, error) {
	dir := filepath.Join(root, "etc", "apt")
	var uris []string
	one, err := os.ReadFile(filepath.Join(dir, "sources.list"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading apt sources: %w", err)
	}
	uris = append(uris, oneLineURIs(string(one))...)
	ents, err := os.ReadDir(filepath.Join(dir, "sources.list.d"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading apt sources: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if !strings.HasSuffix(n, ".list") && !strings.HasSuffix(n, ".sources") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "sources.list.d", n))
		if err != nil {
			return nil, fmt.Errorf("reading apt sources: %w", err)
		}
		if strings.HasSuffix(n, ".list") {
			uris = append(uris, oneLineURIs(string(b))...)
		} else {
			uris = append(uris, deb822URIs(string(b))...)
		}
	}
	out := map[string]string{}
	for _, u := range uris {
		if a := archiveOf(u); a != "" {
			if _, ok := out[a]; !ok {
				out[a] = strings.TrimSuffix(u, "/")
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Debian archive (%s) in the apt sources below %s: configure apt or give the Debian mirror option", strings.Join(debArchives, ", "), dir)
	}
	return out, nil
}

// archiveOf names the Debian archive a URI serves, or "".
func archiveOf(uri string) string {
	p, err := url.Parse(uri)
	if err != nil || p.Scheme == "" {
		return ""
	}
	segs := strings.Split(strings.Trim(p.Path, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		for _, a := range debArchives {
			if segs[i] == a {
				return a
			}
		}
	}
	return ""
}

// oneLineURIs reads sources.list lines: deb [options] URI suite components.
func oneLineURIs(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "deb" && f[0] != "deb-src") {
			continue
		}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			// Options run up to the field ending in "]".
			for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
				rest = rest[1:]
			}
			if len(rest) > 0 {
				rest = rest[1:]
			}
		}
		if len(rest) > 0 {
			out = append(out, rest[0])
		}
	}
	return out
}

// deb822URIs reads the URIs of the enabled stanzas of a .sources file.
func deb822URIs(s string) []string {
	var out []string
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no") {
			types := strings.Fields(fields["types"])
			deb := false
			for _, t := range types {
				deb = deb || t == "deb" || t == "deb-src"
			}
			if deb {
				out = append(out, strings.Fields(fields["uris"])...)
			}
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}
