package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/halvm/halvm-release/toolchain"
)

// ManifestEntry is one path of a tree manifest.
type ManifestEntry struct {
	Path   string
	Type   string // "file", "directory", "symlink" ("" when the format does not say)
	Mode   string // octal, e.g. "0755"
	Size   int64  // -1 when not recorded
	SHA256 string
	Link   string // symlink target
}

// ManifestFormat is a pluggable tree manifest format: a file listing the
// paths of an installed tree with their mode, size and digest.
type ManifestFormat struct {
	Name string
	// Match reports whether a file (its base name and first bytes) is in
	// this format.
	Match func(name string, head []byte) bool
	// Parse reads the whole file.
	Parse func(data []byte) ([]ManifestEntry, error)
}

// DefaultManifestFormats are the toolchain's text manifest ("d <mode>
// <path>/", "f <mode> <size> <sha256> <path>", "l <path> -> <target>"), a
// JSON array of {path, mode, size, sha256} objects, and plain lines
// "<mode> <size> <sha256> <path>".
func DefaultManifestFormats() []ManifestFormat {
	return []ManifestFormat{ToolchainManifest, JSONManifest, SimpleManifest}
}

var (
	toolchainLine = regexp.MustCompile(`^(d [0-7]{3,4} \S|f [0-7]{3,4} \d+ [0-9a-f]{64} \S|l \S.* -> )`)
	simpleLine    = regexp.MustCompile(`^[0-7]{3,6} \d+ [0-9a-f]{64} \S`)
	jsonManifest  = regexp.MustCompile(`^\s*\[\s*\{`)
)

func firstLine(h []byte) string {
	if i := bytes.IndexByte(h, '\n'); i >= 0 {
		return string(h[:i])
	}
	return string(h)
}

// skipComments drops the leading "#" lines (the toolchain build heads its
// manifests with one).
func skipComments(h []byte) []byte {
	for bytes.HasPrefix(h, []byte("#")) {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			return nil
		}
		h = h[i+1:]
	}
	return h
}

// ToolchainManifest is the text manifest the toolchain build writes.
var ToolchainManifest = ManifestFormat{
	Name:  "toolchain",
	Match: func(_ string, h []byte) bool { return toolchainLine.MatchString(firstLine(skipComments(h))) },
	Parse: func(data []byte) ([]ManifestEntry, error) {
		tes, err := toolchain.ReadManifest(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		out := make([]ManifestEntry, 0, len(tes))
		for _, te := range tes {
			e := ManifestEntry{Path: te.Path, Size: -1}
			switch te.Type {
			case 'd':
				e.Type, e.Mode = "directory", fmtMode(int64(te.Mode))
			case 'f':
				e.Type, e.Mode, e.Size, e.SHA256 = "file", fmtMode(int64(te.Mode)), te.Size, te.SHA256
			case 'l':
				e.Type, e.Link = "symlink", te.Target
			}
			out = append(out, e)
		}
		return out, nil
	},
}

// SimpleManifest is "<mode> <size> <sha256> <path>" per line.
var SimpleManifest = ManifestFormat{
	Name:  "mode-size-sha256-path",
	Match: func(_ string, h []byte) bool { return simpleLine.MatchString(firstLine(h)) },
	Parse: func(data []byte) ([]ManifestEntry, error) {
		return parseLines(data, func(l string) (ManifestEntry, error) {
			f := strings.SplitN(l, " ", 4)
			if len(f) != 4 {
				return ManifestEntry{}, fmt.Errorf("want \"<mode> <size> <sha256> <path>\"")
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return ManifestEntry{}, fmt.Errorf("bad size %q", f[1])
			}
			name, err := manifestPath(f[3])
			return ManifestEntry{Path: name, Mode: f[0], Size: size, SHA256: f[2]}, err
		})
	},
}

// JSONManifest is a JSON array of {"path", "mode", "size", "sha256"}
// objects (optionally "type" and "link").
var JSONManifest = ManifestFormat{
	Name: "json",
	Match: func(name string, h []byte) bool {
		return jsonManifest.Match(h) && bytes.Contains(h, []byte(`"path"`)) && bytes.Contains(h, []byte(`"sha256"`))
	},
	Parse: func(data []byte) ([]ManifestEntry, error) {
		var raw []struct {
			Path   string          `json:"path"`
			Type   string          `json:"type"`
			Mode   json.RawMessage `json:"mode"`
			Size   *int64          `json:"size"`
			SHA256 string          `json:"sha256"`
			Link   string          `json:"link"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, err
		}
		out := make([]ManifestEntry, 0, len(raw))
		for i, r := range raw {
			if r.Path == "" {
				return nil, fmt.Errorf("[%d]: no path", i)
			}
			e := ManifestEntry{Path: r.Path, Type: r.Type, SHA256: r.SHA256, Link: r.Link, Size: -1}
			if r.Size != nil {
				e.Size = *r.Size
			}
			if len(r.Mode) > 0 {
				var s string
				if json.Unmarshal(r.Mode, &s) == nil {
					e.Mode = s
				} else {
					var n int64
					if err := json.Unmarshal(r.Mode, &n); err != nil {
						return nil, fmt.Errorf("[%d] (%s): mode %s is neither a string nor a number", i, r.Path, r.Mode)
					}
					e.Mode = fmtMode(n)
				}
			}
			out = append(out, e)
		}
		return out, nil
	},
}

func parseLines(data []byte, parse func(string) (ManifestEntry, error)) ([]ManifestEntry, error) {
	var out []ManifestEntry
	var problems []string
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		e, err := parse(l)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", i+1, err))
			if len(problems) == 10 {
				break
			}
			continue
		}
		out = append(out, e)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return out, nil
}

// manifestPath undoes the quoting of paths with unusual characters.
func manifestPath(p string) (string, error) {
	if strings.HasPrefix(p, `"`) {
		return strconv.Unquote(p)
	}
	return p, nil
}

func manifestComparer(m ManifestFormat) func(d *differ, where []string, a, b *blob) error {
	return func(d *differ, where []string, a, b *blob) error {
		var sides [2][]entry
		for i, bl := range []*blob{a, b} {
			data, err := bl.bytes(maxText * 4)
			if err != nil {
				return err
			}
			ms, err := m.Parse(data)
			if err != nil {
				return fmt.Errorf("parsing the %s manifest %s: %w", m.Name, "AB"[i:i+1], err)
			}
			for _, me := range ms {
				e := entry{name: me.Path}
				add := func(k, v string) {
					if v != "" {
						e.attrs = append(e.attrs, attr{k, v})
					}
				}
				add("type", me.Type)
				add("mode", me.Mode)
				if me.Size >= 0 {
					add("size", strconv.FormatInt(me.Size, 10))
				}
				add("sha256", me.SHA256)
				add("link", me.Link)
				sides[i] = append(sides[i], e)
			}
		}
		before := len(d.diffs)
		if err := d.compareEntries(where, sides[0], sides[1], nil); err != nil {
			return err
		}
		if len(d.diffs) == before {
			// The same entries, other bytes: what differs is outside the
			// entries (a comment or header line); show it line by line.
			return compareText(d, where, a, b)
		}
		return nil
	}
}
