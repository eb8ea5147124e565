// Package deb822 is the one reader of Debian's control-style text: deb822
// paragraphs (control files, Packages and Release indexes, dpkg's status,
// apt-cache output, .sources files) and, on top of it, apt's sources
// configuration in both its formats. It depends on the standard library
// only, so every package that reads such text can use it (package debian
// re-exports it as debian.Paragraph and debian.ParseParagraphs).
package deb822

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Field is one deb822 field. Value keeps continuation lines verbatim (each
// after a "\n", with its leading space), so a paragraph writes back as read.
type Field struct {
	Name, Value string
}

// Paragraph is one deb822 stanza with its fields in their original order.
type Paragraph []Field

// Get returns the value of the named field (case-insensitive), trimmed.
func (p Paragraph) Get(name string) string {
	for _, f := range p {
		if strings.EqualFold(f.Name, name) {
			return strings.TrimSpace(f.Value)
		}
	}
	return ""
}

// Has reports whether the field is present.
func (p Paragraph) Has(name string) bool {
	for _, f := range p {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Without returns p minus the named fields (case-insensitive).
func (p Paragraph) Without(names ...string) Paragraph {
	var out Paragraph
	for _, f := range p {
		drop := false
		for _, n := range names {
			if strings.EqualFold(f.Name, n) {
				drop = true
			}
		}
		if !drop {
			out = append(out, f)
		}
	}
	return out
}

// String renders the paragraph, one "Name: value" line per field, without
// the blank separator line.
func (p Paragraph) String() string {
	var b strings.Builder
	for _, f := range p {
		b.WriteString(f.Name)
		b.WriteString(":")
		if f.Value != "" && !strings.HasPrefix(f.Value, "\n") {
			b.WriteString(" ")
		}
		b.WriteString(f.Value)
		b.WriteString("\n")
	}
	return b.String()
}

// Parse parses deb822 text (a control file, a Packages index, a .sources
// file). Comment lines (#) are skipped; errors name the line.
func Parse(data []byte) ([]Paragraph, error) {
	var paras []Paragraph
	var cur Paragraph
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(text) == "":
			if len(cur) > 0 {
				paras = append(paras, cur)
				cur = nil
			}
		case strings.HasPrefix(text, "#"):
		case text[0] == ' ' || text[0] == '\t':
			if len(cur) == 0 {
				return nil, fmt.Errorf("line %d: continuation line without a field", line)
			}
			cur[len(cur)-1].Value += "\n" + text
		default:
			name, value, ok := strings.Cut(text, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("line %d: want \"Field: value\", got %q", line, text)
			}
			if cur.Has(name) {
				return nil, fmt.Errorf("line %d: duplicate field %s", line, name)
			}
			cur = append(cur, Field{Name: name, Value: strings.TrimSpace(value)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(cur) > 0 {
		paras = append(paras, cur)
	}
	return paras, nil
}
