package rpm

import (
	"strings"
	"unicode"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

type depKind int

const (
	depProvides depKind = iota
	depConflicts
	depObsoletes
	depRequires
	depSuggests
	depEnhances
	depRecommends
	depSupplements
	depOldSuggests
	depOldEnhances
)

// depTags are the header tags of each kind, in createrepo_c's processing
// order: provides first, so that requires can be checked against them.
var depTags = []struct {
	kind                 depKind
	name, flags, version int
}{
	{depProvides, rpmutils.PROVIDENAME, rpmutils.PROVIDEFLAGS, rpmutils.PROVIDEVERSION},
	{depConflicts, rpmutils.CONFLICTNAME, rpmutils.CONFLICTFLAGS, rpmutils.CONFLICTVERSION},
	{depObsoletes, rpmutils.OBSOLETENAME, rpmutils.OBSOLETEFLAGS, rpmutils.OBSOLETEVERSION},
	{depRequires, rpmutils.REQUIRENAME, rpmutils.REQUIREFLAGS, rpmutils.REQUIREVERSION},
	{depSuggests, tagSuggestName, tagSuggestFlags, tagSuggestVersion},
	{depEnhances, tagEnhanceName, tagEnhanceFlags, tagEnhanceVersion},
	{depRecommends, tagRecommendName, tagRecommendFlags, tagRecommendVersion},
	{depSupplements, tagSupplementName, tagSupplementFlags, tagSupplementVersion},
	{depOldSuggests, tagOldSuggestsName, tagOldSuggestsFlags, tagOldSuggestsVersion},
	{depOldEnhances, tagOldEnhancesName, tagOldEnhancesFlags, tagOldEnhancesVersion},
}

// flagString maps the comparison bits of a sense to primary.xml's flags.
func flagString(f uint32) string {
	switch f & 0xf {
	case senseLess:
		return "LT"
	case senseGreater:
		return "GT"
	case senseEqual:
		return "EQ"
	case senseLess | senseEqual:
		return "LE"
	case senseGreater | senseEqual:
		return "GE"
	}
	return ""
}

// parseEVR splits "[epoch:]version[-release]" as createrepo_c does: the
// epoch defaults to "0" when there is a version, the release starts at the
// first '-' after the epoch. ok is false for a non-numeric epoch (such a
// dependency is dropped, with a warning, by createrepo_c).
func parseEVR(s string) (epoch, ver, rel string, ok bool) {
	if s == "" {
		return "", "", "", true
	}
	rest := s
	epoch = "0"
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e := s[:i]
		if !numericPrefix(e) {
			return "", "", "", false
		}
		if e != "" {
			epoch = e
		}
		rest = s[i+1:]
	}
	if j := strings.IndexByte(rest, '-'); j >= 0 {
		return epoch, rest[:j], rest[j+1:], true
	}
	return epoch, rest, "", true
}

// numericPrefix reports whether strtol would consume all of s: s is empty
// or optional leading space, an optional sign and at least one digit.
func numericPrefix(s string) bool {
	if s == "" {
		return true
	}
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readDeps fills the dependency lists of m with createrepo_c's filtering:
// requires drop rpmlib(...) entries, files of the package that primary.xml
// lists, exact duplicates of a provide, and repeated entries; only the
// highest libc.so.6 require is kept; requires(pre/post) get pre="1";
// requires marked missingok and old-style weak tags become weak deps.
func readDeps(hdr *rpmutils.RpmHeader, m *pkgMeta, files map[string]bool) {
	provided := map[string]bool{}
	type seenReq struct {
		flags, version string
		pre            bool
	}
	seen := map[string]seenReq{}
	for _, dt := range depTags {
		names, err1 := hdr.GetStrings(dt.name)
		flags, err2 := hdr.GetUint32s(dt.flags)
		vers, err3 := hdr.GetStrings(dt.version)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		n := min(len(names), len(flags), len(vers))
		var libc *dep
		for i := 0; i < n; i++ {
			name, fl, full := names[i], flags[i], vers[i]
			fs := flagString(fl)
			nfv := name + fs + full
			pre := false
			if dt.kind == depRequires {
				if strings.HasPrefix(name, "rpmlib(") {
					continue
				}
				if strings.HasPrefix(name, "/") && files[name] && isPrimaryFile(name) {
					continue
				}
				if provided[nfv] {
					continue
				}
				pre = fl&(sensePrereq|senseScriptPre|senseScriptPost) != 0
				if s, ok := seen[name]; ok && s.flags == fs && s.version == full && s.pre == pre {
					continue
				}
			}
			e, v, r, ok := parseEVR(full)
			if !ok {
				continue
			}
			d := dep{Name: name, Flags: fs, Epoch: e, Ver: v, Rel: r}
			switch dt.kind {
			case depProvides:
				provided[nfv] = true
				m.Provides = append(m.Provides, d)
			case depConflicts:
				m.Conflicts = append(m.Conflicts, d)
			case depObsoletes:
				m.Obsoletes = append(m.Obsoletes, d)
			case depRequires:
				if fl&senseMissingOK != 0 {
					m.Recommends = append(m.Recommends, d)
					continue
				}
				d.Pre = pre
				if strings.HasPrefix(name, "libc.so.6") {
					if libc == nil || compareLibcDep(libc.Name, name) == 2 {
						c := d
						libc = &c
					}
					continue
				}
				m.Requires = append(m.Requires, d)
				seen[name] = seenReq{flags: fs, version: full, pre: pre}
			case depSuggests:
				m.Suggests = append(m.Suggests, d)
			case depEnhances:
				m.Enhances = append(m.Enhances, d)
			case depRecommends:
				m.Recommends = append(m.Recommends, d)
			case depSupplements:
				m.Supplements = append(m.Supplements, d)
			case depOldSuggests:
				if fl&senseStrong != 0 {
					m.Recommends = append(m.Recommends, d)
				} else {
					m.Suggests = append(m.Suggests, d)
				}
			case depOldEnhances:
				if fl&senseStrong != 0 {
					m.Supplements = append(m.Supplements, d)
				} else {
					m.Enhances = append(m.Enhances, d)
				}
			}
		}
		if dt.kind == depRequires && libc != nil {
			m.Requires = append(m.Requires, *libc)
		}
	}
}

// compareLibcDep orders "libc.so.6(GLIBC_2.4)(64bit)"-style names by the
// version in their first parentheses as createrepo_c does: 0 equal, 1 the
// first is higher, 2 the second is higher.
func compareLibcDep(a, b string) int {
	if a == b {
		return 0
	}
	i, j := strings.IndexByte(a, '('), strings.IndexByte(b, '(')
	switch {
	case i < 0 && j < 0:
		return 0
	case i < 0:
		return 2
	case j < 0:
		return 1
	}
	ie, je := strings.IndexByte(a[i:], ')'), strings.IndexByte(b[j:], ')')
	switch {
	case ie < 0 && je < 0:
		return -1
	case ie < 0:
		return 2
	case je < 0:
		return 1
	}
	ie, je = i+ie, j+je
	i, j = i+1, j+1
	switch {
	case i == ie && j == je:
		return 0
	case i == ie:
		return 2
	case j == je:
		return 1
	}
	for i < len(a) && (a[i] < '0' || a[i] > '9') {
		i++
	}
	for j < len(b) && (b[j] < '0' || b[j] > '9') {
		j++
	}
	switch {
	case i > ie && j > je:
		return 0
	case i > ie:
		return 2
	case j > je:
		return 1
	}
	switch rpmutils.Vercmp(a[i:ie], b[j:je]) {
	case 1:
		return 1
	case -1:
		return 2
	}
	return 0
}
