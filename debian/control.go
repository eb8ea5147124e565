package debian

import (
	"fmt"
	"strings"

	"github.com/halvm/halvm-release/debian/deb822"
)

// Field is one deb822 field (package deb822, the one reader of
// control-style text).
type Field = deb822.Field

// Paragraph is one deb822 stanza with its fields in their original order.
type Paragraph = deb822.Paragraph

// ParseParagraphs parses deb822 text (a control file or a Packages index).
// Comment lines (#) are skipped; errors name the line.
func ParseParagraphs(data []byte) ([]Paragraph, error) { return deb822.Parse(data) }

// validName reports whether s is a valid Debian package name.
func validName(s string) bool {
	if len(s) < 2 || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validVersion checks the shape of a Debian version: [epoch:]upstream[-revision].
func validVersion(v string) error {
	if v == "" {
		return fmt.Errorf("empty version")
	}
	up := v
	if e, rest, ok := strings.Cut(v, ":"); ok {
		for i := 0; i < len(e); i++ {
			if e[i] < '0' || e[i] > '9' {
				return fmt.Errorf("version %q: epoch %q is not a number", v, e)
			}
		}
		if e == "" {
			return fmt.Errorf("version %q: empty epoch", v)
		}
		up = rest
	}
	if i := strings.LastIndex(up, "-"); i >= 0 {
		rev := up[i+1:]
		up = up[:i]
		if rev == "" {
			return fmt.Errorf("version %q: empty revision", v)
		}
		for i := 0; i < len(rev); i++ {
			c := rev[i]
			if !isAlnum(c) && !strings.ContainsRune("+.~", rune(c)) {
				return fmt.Errorf("version %q: bad character %q in revision", v, c)
			}
		}
	}
	if up == "" || up[0] < '0' || up[0] > '9' {
		return fmt.Errorf("version %q: upstream version must start with a digit", v)
	}
	for i := 0; i < len(up); i++ {
		c := up[i]
		if !isAlnum(c) && !strings.ContainsRune("+.~-:", rune(c)) {
			return fmt.Errorf("version %q: bad character %q", v, c)
		}
	}
	return nil
}

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// CompareVersions orders Debian versions as dpkg does: <0, 0 or >0.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNum(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	epoch = "0"
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, v = e, rest
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, "0"
}

func compareNum(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// order is dpkg's character weight for the non-digit parts.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

func compareFragment(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			var ac, bc int
			if i < len(a) && !isDigit(a[i]) {
				ac = order(a[i])
			}
			if j < len(b) && !isDigit(b[j]) {
				bc = order(b[j])
			}
			if ac != bc {
				if ac < bc {
					return -1
				}
				return 1
			}
			if i < len(a) && !isDigit(a[i]) {
				i++
			}
			if j < len(b) && !isDigit(b[j]) {
				j++
			}
		}
		si := i
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		sj := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareNum(a[si:i], b[sj:j]); c != 0 {
			return c
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
