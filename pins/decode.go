package pins

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a lock file, with its location.
type Problem struct {
	File  string // the lock file's path as given
	Where string // e.g. "sources[7].commit"; "" for the whole file
	Msg   string
}

func (p Problem) Error() string {
	if p.Where == "" {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Where, p.Msg)
}

// Problems is every problem found in a lock file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return fmt.Sprintf("%d problem(s) in the lock file:\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// LoadFile reads and validates the lock at path.
func LoadFile(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w (create one with `go run mage.go pins:update`)", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a lock; name is used in problem locations.
// On failure the error is a Problems listing everything wrong at once.
func Parse(name string, data []byte) (*Lock, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Problems{{File: fmt.Sprintf("%s:%d", name, pe.Position.Line), Msg: "not valid TOML: " + pe.Message}}
		}
		return nil, Problems{{File: name, Msg: "not valid TOML: " + err.Error()}}
	}
	d := &decoder{file: name}
	l := d.lock(raw)
	validate(d, l)
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	return l, nil
}

type decoder struct {
	file     string
	problems Problems
}

// reported tells whether a problem was already reported at where (a field
// that failed to decode is not validated again).
func (d *decoder) reported(where string) bool {
	for _, p := range d.problems {
		if p.Where == where {
			return true
		}
	}
	return false
}

func (d *decoder) bad(where, format string, a ...any) {
	if d.reported(where) {
		return
	}
	d.problems = append(d.problems, Problem{File: d.file, Where: where, Msg: fmt.Sprintf(format, a...)})
}

// table is one TOML table being decoded: every key must be consumed.
type table struct {
	d     *decoder
	where string
	m     map[string]any
	used  map[string]bool
}

func (d *decoder) table(where string, v any) *table {
	m, ok := v.(map[string]any)
	if !ok {
		d.bad(where, "want a table, got %s", typeName(v))
		m = map[string]any{}
	}
	return &table{d: d, where: where, m: m, used: map[string]bool{}}
}

func (t *table) at(key string) string {
	if t.where == "" {
		return key
	}
	return t.where + "." + key
}

func (t *table) get(key string, required bool) (any, bool) {
	t.used[key] = true
	v, ok := t.m[key]
	if !ok && required {
		t.d.bad(t.at(key), "missing")
	}
	return v, ok
}

func (t *table) str(key string, required bool) string {
	v, ok := t.get(key, required)
	if !ok {
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.bad(t.at(key), "want a string, got %s", typeName(v))
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		t.d.bad(t.at(key), "must not be empty")
	}
	return s
}

func (t *table) int(key string, required bool) int64 {
	v, ok := t.get(key, required)
	if !ok {
		return 0
	}
	n, isInt := v.(int64)
	if !isInt {
		t.d.bad(t.at(key), "want an integer, got %s", typeName(v))
	}
	return n
}

func (t *table) strings(key string, required bool) []string {
	v, ok := t.get(key, required)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		t.d.bad(t.at(key), "want an array of strings, got %s", typeName(v))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.d.bad(fmt.Sprintf("%s[%d]", t.at(key), i), "want a string, got %s", typeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (t *table) tables(key string, required bool) []*table {
	v, ok := t.get(key, required)
	if !ok {
		return nil
	}
	var items []any
	switch a := v.(type) {
	case []map[string]any:
		for _, m := range a {
			items = append(items, m)
		}
	case []any:
		items = a
	default:
		t.d.bad(t.at(key), "want an array of tables ([[%s]]), got %s", key, typeName(v))
		return nil
	}
	out := make([]*table, len(items))
	for i, it := range items {
		out[i] = t.d.table(fmt.Sprintf("%s[%d]", t.at(key), i), it)
	}
	return out
}

// done reports keys nobody asked for.
func (t *table) done() {
	var unknown []string
	for k := range t.m {
		if !t.used[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		t.d.bad(t.at(k), "unknown field")
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) lock(raw map[string]any) *Lock {
	top := d.table("", raw)
	if f := top.int("format", true); f != Format && len(d.problems) == 0 {
		d.bad("format", "format %d is not supported by this pipeline (want %d)", f, Format)
	}
	l := &Lock{}
	if _, ok := top.m["release"]; ok {
		r := d.table("release", top.m["release"])
		top.used["release"] = true
		l.Release = Release{
			Name: r.str("name", true), Version: r.str("version", true), SourceDateEpoch: r.int("source_date_epoch", true),
			EpochNote: r.str("epoch_note", true), Homepage: r.str("homepage", true), License: r.str("license", true),
			Suite: r.str("suite", true),
		}
		r.done()
	} else {
		top.get("release", true)
	}
	for _, t := range top.tables("flavours", true) {
		l.Flavours = append(l.Flavours, Flavour{Name: t.str("name", true), IntegerLibrary: t.str("integer_library", true),
			ConfigureFlags: t.strings("configure_flags", true), Description: t.str("description", true)})
		t.done()
	}
	for _, t := range top.tables("rewrites", false) {
		l.Rewrites = append(l.Rewrites, Rewrite{From: t.str("from", true), To: t.str("to", true)})
		t.done()
	}
	for _, t := range top.tables("sources", true) {
		l.Sources = append(l.Sources, Source{Name: t.str("name", true), Path: t.str("path", true), Parent: t.str("parent", false),
			UpstreamURL: t.str("upstream_url", false), URL: t.str("url", true), Commit: t.str("commit", true),
			License: t.str("license", false), Note: t.str("note", false)})
		t.done()
	}
	for _, t := range top.tables("excluded", false) {
		l.Excluded = append(l.Excluded, Excluded{Path: t.str("path", true), Commit: t.str("commit", false), Reason: t.str("reason", true)})
		t.done()
	}
	for _, t := range top.tables("files", false) {
		pending := t.str("pending", false)
		if v, ok := t.m["size"].(int64); ok && v <= 0 {
			d.bad(t.at("size"), "want the file's size in bytes (> 0), got %d (leave size out until the first verified fetch measures it)", v)
		}
		l.Files = append(l.Files, File{Name: t.str("name", true), Role: t.str("role", true), Version: t.str("version", true),
			URL: t.str("url", true), Size: t.int("size", false), SHA256: t.str("sha256", pending == ""), Note: t.str("note", false), Pending: pending})
		t.done()
	}
	for _, t := range top.tables("debs", false) {
		l.Debs = append(l.Debs, Deb{Name: t.str("name", true), Version: t.str("version", true), Arch: t.str("arch", true),
			Role: t.str("role", true), Archive: t.str("archive", true), Filename: t.str("filename", true), Size: t.int("size", true), SHA256: t.str("sha256", true)})
		t.done()
	}
	top.done()
	return l
}

var (
	hex40      = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	versionRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	debNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)
	debVerRE   = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	spdxLicRE  = regexp.MustCompile(`^[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*$`)
	flavourRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	fileRoles  = []string{RoleBootstrapGHC, RoleTool}
	debRoles   = []string{RoleBuildEnv, RoleTool, RoleImageBase, RoleImageDeps, RoleXenBoot}
	intLibs    = []string{"integer-gmp", "integer-simple"}
	archives   = []string{"debian", "debian-security"}
	urlSchemes = []string{"file", "git", "http", "https"}
)

func hexProblem(s string, n int) string {
	return fmt.Sprintf("want %d lower-case hex characters, got %q", n, s)
}

func checkURL(d *decoder, where, u string) {
	if u == "" {
		return
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || (p.Host == "" && p.Scheme != "file") || (p.Scheme == "file" && p.Path == "") {
		d.bad(where, "want an absolute URL (https://, git://, file://), got %q", u)
		return
	}
	if !oneOf(urlSchemes, p.Scheme) {
		d.bad(where, "URL scheme %q is not supported (want one of %s)", p.Scheme, strings.Join(urlSchemes, ", "))
	}
}

func oneOf(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sameRepo(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git") }
	return norm(a) == norm(b)
}

// validate checks everything beyond field types.
func validate(d *decoder, l *Lock) {
	r := l.Release
	if r.Name != "" && !nameRE.MatchString(r.Name) {
		d.bad("release.name", "want letters, digits, '.', '_', '+' or '-', got %q", r.Name)
	}
	if r.Version != "" && !versionRE.MatchString(r.Version) {
		d.bad("release.version", "want dotted decimal digits like 2.4.3, got %q", r.Version)
	}
	if r.SourceDateEpoch <= 0 || r.SourceDateEpoch > 253402300799 {
		d.bad("release.source_date_epoch", "want seconds since 1970-01-01 UTC (the superproject commit time), got %d", r.SourceDateEpoch)
	}
	checkURL(d, "release.homepage", r.Homepage)
	if r.License != "" && !spdxLicRE.MatchString(r.License) {
		d.bad("release.license", "want an SPDX license expression, got %q", r.License)
	}

	if len(l.Flavours) == 0 {
		d.bad("flavours", "at least one flavour is needed")
	}
	seenFl := map[string]int{}
	for i, f := range l.Flavours {
		w := fmt.Sprintf("flavours[%d]", i)
		if f.Name != "" && !flavourRE.MatchString(f.Name) {
			d.bad(w+".name", "want lower-case letters, digits and '-', got %q", f.Name)
		}
		if j, dup := seenFl[f.Name]; dup && f.Name != "" {
			d.bad(w+".name", "flavour %q is already defined at flavours[%d]", f.Name, j)
		}
		seenFl[f.Name] = i
		if f.IntegerLibrary != "" && !oneOf(intLibs, f.IntegerLibrary) {
			d.bad(w+".integer_library", "want one of %s, got %q", strings.Join(intLibs, ", "), f.IntegerLibrary)
		}
		for k, fl := range f.ConfigureFlags {
			if !strings.HasPrefix(fl, "--") {
				d.bad(fmt.Sprintf("%s.configure_flags[%d]", w, k), "want a long option starting with --, got %q", fl)
			}
		}
	}

	seenRw := map[string]int{}
	for i, rw := range l.Rewrites {
		w := fmt.Sprintf("rewrites[%d]", i)
		checkURL(d, w+".from", rw.From)
		checkURL(d, w+".to", rw.To)
		if j, dup := seenRw[rw.From]; dup {
			d.bad(w+".from", "prefix %q is already rewritten at rewrites[%d]", rw.From, j)
		}
		seenRw[rw.From] = i
	}

	validateSources(d, l)

	seenFile := map[string]int{}
	for i, f := range l.Files {
		w := fmt.Sprintf("files[%d]", i)
		if f.Name != "" && !nameRE.MatchString(f.Name) {
			d.bad(w+".name", "want letters, digits, '.', '_', '+' or '-', got %q", f.Name)
		}
		if j, dup := seenFile[f.Name]; dup && f.Name != "" {
			d.bad(w+".name", "file %q is already pinned at files[%d]", f.Name, j)
		}
		seenFile[f.Name] = i
		if f.Role != "" && !oneOf(fileRoles, f.Role) {
			d.bad(w+".role", "want one of %s, got %q", strings.Join(fileRoles, ", "), f.Role)
		}
		checkURL(d, w+".url", f.URL)
		if f.Pending != "" {
			if f.SHA256 != "" || f.Size != 0 {
				d.bad(w+".pending", "a pending pin must not carry size or sha256: remove pending once they are recorded")
			}
			continue
		}
		if f.Size < 0 {
			d.bad(w+".size", "want the file's size in bytes (> 0), got %d", f.Size)
		}
		if f.SHA256 != "" && !hex64.MatchString(f.SHA256) {
			d.bad(w+".sha256", "%s", hexProblem(f.SHA256, 64))
		}
	}
	if l.Release.Name != "" && len(l.Files) > 0 {
		n := 0
		for _, f := range l.Files {
			if f.Role == RoleBootstrapGHC {
				n++
			}
		}
		if n != 1 {
			d.bad("files", "want exactly one file with role %q (the bootstrap compiler), found %d", RoleBootstrapGHC, n)
		}
	}

	seenDeb := map[string]int{}
	for i, p := range l.Debs {
		w := fmt.Sprintf("debs[%d]", i)
		if p.Name != "" && !debNameRE.MatchString(p.Name) {
			d.bad(w+".name", "not a Debian package name: %q", p.Name)
		}
		if p.Version != "" && !debVerRE.MatchString(p.Version) {
			d.bad(w+".version", "not a Debian version: %q", p.Version)
		}
		if p.Arch != "" && p.Arch != "amd64" && p.Arch != "all" {
			d.bad(w+".arch", "want amd64 or all, got %q", p.Arch)
		}
		if p.Role != "" && !oneOf(debRoles, p.Role) {
			d.bad(w+".role", "want one of %s, got %q", strings.Join(debRoles, ", "), p.Role)
		}
		if p.Archive != "" && !oneOf(archives, p.Archive) {
			d.bad(w+".archive", "want one of %s, got %q", strings.Join(archives, ", "), p.Archive)
		}
		if p.Filename != "" && (!strings.HasPrefix(p.Filename, "pool/") || !strings.HasSuffix(p.Filename, ".deb") || path.Clean(p.Filename) != p.Filename) {
			d.bad(w+".filename", "want a clean path below the archive's pool/ ending in .deb, got %q", p.Filename)
		}
		if p.Size <= 0 {
			d.bad(w+".size", "want the package's size in bytes (> 0), got %d", p.Size)
		}
		if p.SHA256 != "" && !hex64.MatchString(p.SHA256) {
			d.bad(w+".sha256", "%s", hexProblem(p.SHA256, 64))
		}
		key := p.Role + "/" + p.Name + "/" + p.Arch
		if j, dup := seenDeb[key]; dup {
			d.bad(w, "package %s:%s is already pinned for role %s at debs[%d]", p.Name, p.Arch, p.Role, j)
		}
		seenDeb[key] = i
	}
}

func validateSources(d *decoder, l *Lock) {
	byName := map[string]int{}
	byPath := map[string]int{}
	roots := 0
	for i, s := range l.Sources {
		w := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" && !nameRE.MatchString(s.Name) {
			d.bad(w+".name", "want letters, digits, '.', '_', '+' or '-', got %q", s.Name)
		}
		if j, dup := byName[s.Name]; dup && s.Name != "" {
			d.bad(w+".name", "source %q is already pinned at sources[%d]", s.Name, j)
		} else {
			byName[s.Name] = i
		}
		if s.Path != "" {
			if s.Path != "." && (path.IsAbs(s.Path) || path.Clean(s.Path) != s.Path || strings.HasPrefix(s.Path, "..")) {
				d.bad(w+".path", "want a clean relative path inside the superproject, got %q", s.Path)
			}
			if j, dup := byPath[s.Path]; dup {
				d.bad(w+".path", "path %q is already pinned by sources[%d]", s.Path, j)
			} else {
				byPath[s.Path] = i
			}
		}
		if s.Commit != "" && !hex40.MatchString(s.Commit) {
			d.bad(w+".commit", "%s", hexProblem(s.Commit, 40))
		}
		checkURL(d, w+".url", s.URL)
		if s.License != "" && !spdxLicRE.MatchString(s.License) {
			d.bad(w+".license", "want an SPDX license expression, got %q", s.License)
		}
		if s.IsRoot() {
			roots++
			if s.Path != "." {
				d.bad(w+".path", "the superproject (no parent) must have path \".\", got %q", s.Path)
			}
			if s.UpstreamURL != "" {
				d.bad(w+".upstream_url", "the superproject has no .gitmodules entry: leave upstream_url out")
			}
			continue
		}
		if s.Path == "." {
			d.bad(w+".path", "only the superproject has path \".\"")
		}
		if s.UpstreamURL == "" {
			d.bad(w+".upstream_url", "missing: the URL as written in the parent's .gitmodules")
		} else if !strings.HasPrefix(s.UpstreamURL, "../") {
			checkURL(d, w+".upstream_url", s.UpstreamURL)
			if got := l.RewriteURL(s.UpstreamURL); s.URL != "" && !sameRepo(got, s.URL) {
				d.bad(w+".url", "%q does not match upstream_url %q after the rewrites (%q): add or fix a [[rewrites]] entry", s.URL, s.UpstreamURL, got)
			}
		}
	}
	if len(l.Sources) > 0 && roots != 1 {
		d.bad("sources", "want exactly one superproject (a source without parent), found %d", roots)
	}
	// Parents: pinned, enclosing, and chains that end at the superproject.
	for i, s := range l.Sources {
		if s.IsRoot() {
			continue
		}
		w := fmt.Sprintf("sources[%d].parent", i)
		j, ok := byName[s.Parent]
		if !ok {
			d.bad(w, "parent %q of %s is not pinned: pin it, or list %s under [[excluded]]", s.Parent, s.Path, s.Path)
			continue
		}
		p := l.Sources[j]
		if p.Path != "." && !strings.HasPrefix(s.Path, p.Path+"/") {
			d.bad(w, "%s is not inside its parent %s (%s)", s.Path, p.Name, p.Path)
		}
		seen := map[string]bool{s.Name: true}
		for cur := p; !cur.IsRoot(); {
			if seen[cur.Name] {
				d.bad(w, "parent chain of %s loops through %s", s.Name, cur.Name)
				break
			}
			seen[cur.Name] = true
			k, ok := byName[cur.Parent]
			if !ok {
				break // reported for cur itself
			}
			cur = l.Sources[k]
		}
	}
	seenEx := map[string]int{}
	for i, e := range l.Excluded {
		w := fmt.Sprintf("excluded[%d]", i)
		if e.Path == "." || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path {
			d.bad(w+".path", "want a clean relative path inside the superproject, got %q", e.Path)
		}
		if j, dup := byPath[e.Path]; dup {
			d.bad(w+".path", "%s is both pinned (sources[%d]) and excluded", e.Path, j)
		}
		if j, dup := seenEx[e.Path]; dup {
			d.bad(w+".path", "%s is already excluded at excluded[%d]", e.Path, j)
		}
		seenEx[e.Path] = i
		if e.Commit != "" && !hex40.MatchString(e.Commit) {
			d.bad(w+".commit", "%s", hexProblem(e.Commit, 40))
		}
	}
}
