package rpm

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// XML namespaces of the repodata formats (createrepo_c's, which dnf reads).
const (
	nsCommon    = "http://linux.duke.edu/metadata/common"
	nsRPM       = "http://linux.duke.edu/metadata/rpm"
	nsFilelists = "http://linux.duke.edu/metadata/filelists"
	nsOther     = "http://linux.duke.edu/metadata/other"
	nsRepo      = "http://linux.duke.edu/metadata/repo"
	xmlDecl     = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"
)

// xw writes XML with createrepo_c's layout; the first error sticks.
type xw struct {
	w   *bufio.Writer
	err error
}

func newXW(w io.Writer) *xw { return &xw{w: bufio.NewWriter(w)} }

func (x *xw) raw(ss ...string) {
	for _, s := range ss {
		if x.err == nil {
			_, x.err = x.w.WriteString(s)
		}
	}
}

func (x *xw) flush() error {
	if x.err == nil {
		x.err = x.w.Flush()
	}
	return x.err
}

// elem writes <name attrs...>text</name> (or <name attrs/> when text is
// empty) on its own line at the given indentation.
func (x *xw) elem(indent int, name, text string, attrs ...string) {
	x.raw(strings.Repeat("  ", indent), "<", name)
	x.attrs(attrs...)
	if text == "" {
		x.raw("/>\n")
		return
	}
	x.raw(">", escText(text), "</", name, ">\n")
}

// attrs writes name/value pairs; a pair with an empty value is left out
// unless its name ends in "!" (always written, the "!" dropped).
func (x *xw) attrs(kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if always := strings.HasSuffix(k, "!"); always {
			k = strings.TrimSuffix(k, "!")
		} else if v == "" {
			continue
		}
		x.raw(" ", k, `="`, escAttr(v), `"`)
	}
}

func (x *xw) open(indent int, name string, attrs ...string) {
	x.raw(strings.Repeat("  ", indent), "<", name)
	x.attrs(attrs...)
	x.raw(">\n")
}

func (x *xw) close(indent int, name string) {
	x.raw(strings.Repeat("  ", indent), "</", name, ">\n")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// clean makes s valid XML 1.0 character data: bytes that are not UTF-8
// are read as Latin-1 (as createrepo_c does), characters XML forbids are
// dropped.
func clean(s string) string {
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteRune(rune(s[i]))
		}
		s = b.String()
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return -1
		}
		return r
	}, s)
}

var (
	textEsc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;")
	attrEsc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;",
		"\n", "&#10;", "\r", "&#13;", "\t", "&#9;")
)

func escText(s string) string { return textEsc.Replace(clean(s)) }
func escAttr(s string) string { return attrEsc.Replace(clean(s)) }

// writePrimary writes primary.xml for pkgs, in the order given.
func writePrimary(w io.Writer, pkgs []*pkgMeta) error {
	x := newXW(w)
	x.raw(xmlDecl, `<metadata xmlns="`, nsCommon, `" xmlns:rpm="`, nsRPM, `" packages="`, strconv.Itoa(len(pkgs)), `">`, "\n")
	for _, p := range pkgs {
		x.raw(`<package type="rpm">`, "\n")
		x.elem(1, "name", p.Name)
		x.elem(1, "arch", p.Arch)
		x.elem(1, "version", "", "epoch!", p.Epoch, "ver!", p.Version, "rel!", p.Release, "vcs", p.VCS)
		x.elem(1, "checksum", p.Checksum, "type", "sha256", "pkgid", "YES")
		x.elem(1, "summary", p.Summary)
		x.elem(1, "description", p.Description)
		x.elem(1, "packager", p.Packager)
		x.elem(1, "url", p.URL)
		x.elem(1, "time", "", "file!", itoa(p.FileTime), "build!", itoa(p.BuildTime))
		x.elem(1, "size", "", "package!", itoa(p.SizePackage), "installed!", itoa(p.SizeInstalled), "archive!", itoa(p.SizeArchive))
		x.elem(1, "location", "", "href!", p.Href)
		x.open(1, "format")
		x.elem(2, "rpm:license", p.License)
		x.elem(2, "rpm:vendor", p.Vendor)
		x.elem(2, "rpm:group", p.Group)
		x.elem(2, "rpm:buildhost", p.BuildHost)
		x.elem(2, "rpm:sourcerpm", p.SourceRPM)
		x.elem(2, "rpm:header-range", "", "start!", itoa(p.HeaderStart), "end!", itoa(p.HeaderEnd))
		for _, l := range []struct {
			name string
			deps []dep
		}{
			{"rpm:provides", p.Provides},
			{"rpm:requires", p.Requires},
			{"rpm:conflicts", p.Conflicts},
			{"rpm:obsoletes", p.Obsoletes},
			{"rpm:suggests", p.Suggests},
			{"rpm:enhances", p.Enhances},
			{"rpm:recommends", p.Recommends},
			{"rpm:supplements", p.Supplements},
		} {
			writeDeps(x, l.name, l.deps)
		}
		for _, f := range p.Files {
			if isPrimaryFile(f.Path) {
				x.elem(2, "file", f.Path, "type", f.Type)
			}
		}
		x.close(1, "format")
		x.raw("</package>\n")
	}
	x.raw("</metadata>")
	return x.flush()
}

func writeDeps(x *xw, list string, deps []dep) {
	var named []dep
	for _, d := range deps {
		if d.Name != "" {
			named = append(named, d)
		}
	}
	if len(named) == 0 {
		return
	}
	x.open(2, list)
	for _, d := range named {
		kv := []string{"name!", d.Name}
		if d.Flags != "" {
			kv = append(kv, "flags", d.Flags, "epoch", d.Epoch, "ver", d.Ver, "rel", d.Rel)
		}
		if d.Pre {
			kv = append(kv, "pre", "1")
		}
		x.elem(3, "rpm:entry", "", kv...)
	}
	x.close(2, list)
}

// writeFilelists writes filelists.xml: every file of every package.
func writeFilelists(w io.Writer, pkgs []*pkgMeta) error {
	x := newXW(w)
	x.raw(xmlDecl, `<filelists xmlns="`, nsFilelists, `" packages="`, strconv.Itoa(len(pkgs)), `">`, "\n")
	for _, p := range pkgs {
		x.raw("<package")
		x.attrs("pkgid!", p.Checksum, "name!", p.Name, "arch!", p.Arch)
		x.raw(">\n")
		x.elem(1, "version", "", "epoch!", p.Epoch, "ver!", p.Version, "rel!", p.Release)
		for _, f := range p.Files {
			x.elem(1, "file", f.Path, "type", f.Type)
		}
		x.raw("</package>\n")
	}
	x.raw("</filelists>")
	return x.flush()
}

// writeOther writes other.xml: the changelogs.
func writeOther(w io.Writer, pkgs []*pkgMeta) error {
	x := newXW(w)
	x.raw(xmlDecl, `<otherdata xmlns="`, nsOther, `" packages="`, strconv.Itoa(len(pkgs)), `">`, "\n")
	for _, p := range pkgs {
		x.raw("<package")
		x.attrs("pkgid!", p.Checksum, "name!", p.Name, "arch!", p.Arch)
		x.raw(">\n")
		x.elem(1, "version", "", "epoch!", p.Epoch, "ver!", p.Version, "rel!", p.Release)
		for _, c := range p.Changelogs {
			x.elem(1, "changelog", c.Text, "author!", c.Author, "date!", itoa(c.Date))
		}
		x.raw("</package>\n")
	}
	x.raw("</otherdata>")
	return x.flush()
}

// repomdRecord describes one metadata file in repomd.xml.
type repomdRecord struct {
	Type         string // primary, filelists, other
	Checksum     string // sha256 of the file as stored (compressed)
	OpenChecksum string // sha256 of the uncompressed XML
	Href         string // repodata/<checksum>-<type>.xml.gz
	Timestamp    int64
	Size         int64
	OpenSize     int64
}

// writeRepomd writes repomd.xml with the given revision.
func writeRepomd(w io.Writer, revision string, recs []repomdRecord) error {
	x := newXW(w)
	x.raw(xmlDecl, `<repomd xmlns="`, nsRepo, `" xmlns:rpm="`, nsRPM, `">`, "\n")
	x.elem(1, "revision", revision)
	for _, r := range recs {
		x.open(1, "data", "type!", r.Type)
		x.elem(2, "checksum", r.Checksum, "type", "sha256")
		x.elem(2, "open-checksum", r.OpenChecksum, "type", "sha256")
		x.elem(2, "location", "", "href!", r.Href)
		x.elem(2, "timestamp", itoa(r.Timestamp))
		x.elem(2, "size", itoa(r.Size))
		x.elem(2, "open-size", itoa(r.OpenSize))
		x.close(1, "data")
	}
	x.raw("</repomd>\n")
	return x.flush()
}
