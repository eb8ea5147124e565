package pins

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

const header = `# The HaLVM release lock: every input of a release, pinned exactly.
# Canonical form: Load then Encode gives these bytes back. Check it with
#   go run mage.go pins:check
# and change it with pins:update (which prints the diff), not by hand.
`

// Encode writes l in canonical form: fixed key order, lists sorted, one
// field per line, so a change to one pin is a one-line diff.
func Encode(w io.Writer, l *Lock) error {
	var b bytes.Buffer
	b.WriteString(header)
	fmt.Fprintf(&b, "\nformat = %d\n", Format)

	r := l.Release
	b.WriteString("\n[release]\n")
	kv(&b, "name", r.Name)
	kv(&b, "version", r.Version)
	fmt.Fprintf(&b, "source_date_epoch = %d\n", r.SourceDateEpoch)
	kv(&b, "epoch_note", r.EpochNote)
	kv(&b, "homepage", r.Homepage)
	kv(&b, "license", r.License)
	kv(&b, "suite", r.Suite)

	fl := append([]Flavour(nil), l.Flavours...)
	sort.SliceStable(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	for _, f := range fl {
		b.WriteString("\n[[flavours]]\n")
		kv(&b, "name", f.Name)
		kv(&b, "integer_library", f.IntegerLibrary)
		list(&b, "configure_flags", f.ConfigureFlags)
		kv(&b, "description", f.Description)
	}

	rw := append([]Rewrite(nil), l.Rewrites...)
	sort.SliceStable(rw, func(i, j int) bool { return rw[i].From < rw[j].From })
	for _, x := range rw {
		b.WriteString("\n[[rewrites]]\n")
		kv(&b, "from", x.From)
		kv(&b, "to", x.To)
	}

	src := append([]Source(nil), l.Sources...)
	sort.SliceStable(src, func(i, j int) bool { return pathLess(src[i].Path, src[j].Path) })
	for _, s := range src {
		b.WriteString("\n[[sources]]\n")
		kv(&b, "name", s.Name)
		kv(&b, "path", s.Path)
		optKV(&b, "parent", s.Parent)
		optKV(&b, "upstream_url", s.UpstreamURL)
		kv(&b, "url", s.URL)
		kv(&b, "commit", s.Commit)
		optKV(&b, "license", s.License)
		optKV(&b, "note", s.Note)
	}

	ex := append([]Excluded(nil), l.Excluded...)
	sort.SliceStable(ex, func(i, j int) bool { return pathLess(ex[i].Path, ex[j].Path) })
	for _, e := range ex {
		b.WriteString("\n[[excluded]]\n")
		kv(&b, "path", e.Path)
		optKV(&b, "commit", e.Commit)
		kv(&b, "reason", e.Reason)
	}

	files := append([]File(nil), l.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		b.WriteString("\n[[files]]\n")
		kv(&b, "name", f.Name)
		kv(&b, "role", f.Role)
		kv(&b, "version", f.Version)
		kv(&b, "url", f.URL)
		if f.Note != "" {
			kv(&b, "note", f.Note)
		}
		if f.Pending != "" {
			kv(&b, "pending", f.Pending)
			continue
		}
		if f.SizeKnown() {
			fmt.Fprintf(&b, "size = %d\n", f.Size)
		}
		kv(&b, "sha256", f.SHA256)
	}

	debs := append([]Deb(nil), l.Debs...)
	sort.SliceStable(debs, func(i, j int) bool {
		a, c := debs[i], debs[j]
		if a.Role != c.Role {
			return a.Role < c.Role
		}
		if a.Name != c.Name {
			return a.Name < c.Name
		}
		return a.Arch < c.Arch
	})
	for _, p := range debs {
		b.WriteString("\n[[debs]]\n")
		kv(&b, "name", p.Name)
		kv(&b, "version", p.Version)
		kv(&b, "arch", p.Arch)
		kv(&b, "role", p.Role)
		kv(&b, "archive", p.Archive)
		kv(&b, "filename", p.Filename)
		fmt.Fprintf(&b, "size = %d\n", p.Size)
		kv(&b, "sha256", p.SHA256)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Bytes returns the canonical encoding of l.
func Bytes(l *Lock) []byte {
	var b bytes.Buffer
	_ = Encode(&b, l)
	return b.Bytes()
}

// pathLess orders "." first, then paths component by component, so that a
// parent always comes before what it contains.
func pathLess(a, b string) bool {
	if a == "." || b == "." {
		return a == "." && b != "."
	}
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

func kv(b *bytes.Buffer, k, v string) { fmt.Fprintf(b, "%s = %s\n", k, quoteTOML(v)) }

func optKV(b *bytes.Buffer, k, v string) {
	if v != "" {
		kv(b, k, v)
	}
}

func list(b *bytes.Buffer, k string, vs []string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quoteTOML(v)
	}
	fmt.Fprintf(b, "%s = [%s]\n", k, strings.Join(q, ", "))
}

// quoteTOML writes a TOML basic string.
func quoteTOML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
