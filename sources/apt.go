package sources

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/debian/deb822"
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
	entries, err := deb822.ReadSources(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.Has("deb") && !e.Has("deb-src") {
			continue
		}
		for _, u := range e.URIs {
			if a := archiveOf(u); a != "" {
				if _, ok := out[a]; !ok {
					out[a] = strings.TrimSuffix(u, "/")
				}
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
