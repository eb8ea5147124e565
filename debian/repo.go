// Package debian owns the signed apt repository: it reads control data
// from .deb files (ar + control.tar.{gz,xz,zst}, pure Go), lays out
// pool/ and dists/<suite>/ with Packages{,.gz,.xz}, Release, InRelease and
// Release.gpg (Acquire-By-Hash), publishes the archive key and a deb822
// halvm.sources snippet, and verifies such a tree (signatures and every
// checksum) the way apt would trust it.
//
// Write is deterministic: the same packages, settings, key and date give
// a byte-identical tree (contents, modes and mtimes).
package debian

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/halvm/halvm-release/internal/detgzip"
	"github.com/halvm/halvm-release/internal/fsutil"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/halvm/halvm-release/internal/pgp"
)

// Architecture is the one binary architecture the archive serves;
// Architecture: all packages are listed in its index too.
const Architecture = "amd64"

// Repo describes the archive. Zero fields get the defaults noted.
type Repo struct {
	Name        string    // short name: <Name>-archive-keyring.{gpg,asc}, <Name>.sources, /etc/apt/keyrings/<Name>.gpg; default "halvm"
	Origin      string    // Release Origin; default "HaLVM"
	Label       string    // Release Label; default Origin
	Suite       string    // dists/<Suite>, Release Suite; default "stable"
	Codename    string    // Release Codename; default Suite
	Version     string    // Release Version (the HaLVM release), optional
	Description string    // Release Description; default "<Origin> packages"
	Component   string    // default "main"
	URL         string    // where users fetch the tree (URIs: in <Name>.sources); required
	Date        time.Time // Release Date and signature time: SOURCE_DATE_EPOCH; required
}

func (r Repo) withDefaults() Repo {
	if r.Name == "" {
		r.Name = "halvm"
	}
	if r.Origin == "" {
		r.Origin = "HaLVM"
	}
	if r.Label == "" {
		r.Label = r.Origin
	}
	if r.Suite == "" {
		r.Suite = "stable"
	}
	if r.Codename == "" {
		r.Codename = r.Suite
	}
	if r.Description == "" {
		r.Description = r.Origin + " packages"
	}
	if r.Component == "" {
		r.Component = "main"
	}
	r.URL = strings.TrimRight(r.URL, "/")
	return r
}

func (r Repo) problems() []string {
	var p []string
	for _, f := range []struct{ name, v string }{{"name", r.Name}, {"suite", r.Suite}, {"codename", r.Codename}, {"component", r.Component}} {
		if !validName(f.v) && !(len(f.v) == 1 && isLowerAlnum(f.v[0])) {
			p = append(p, fmt.Sprintf("repo %s %q: want lower-case letters, digits, '.', '+', '-'", f.name, f.v))
		}
	}
	for _, f := range []struct{ name, v string }{{"origin", r.Origin}, {"label", r.Label}, {"version", r.Version}, {"description", r.Description}, {"url", r.URL}} {
		if strings.ContainsAny(f.v, "\n\r") {
			p = append(p, fmt.Sprintf("repo %s: must be one line", f.name))
		}
	}
	if r.URL == "" {
		p = append(p, "repo url is empty: set the URL users fetch the repository from (it goes into "+r.Name+".sources)")
	} else if !strings.Contains(r.URL, "://") {
		p = append(p, fmt.Sprintf("repo url %q: want an absolute URL such as https://example.org/apt", r.URL))
	}
	if r.Date.IsZero() {
		p = append(p, "repo date is zero: set it from SOURCE_DATE_EPOCH")
	}
	return p
}

// KeyringFile is the binary public key at the root of the tree.
func (r Repo) KeyringFile() string { return r.withDefaults().Name + "-archive-keyring.gpg" }

// ArmoredKeyFile is the armored public key at the root of the tree.
func (r Repo) ArmoredKeyFile() string { return r.withDefaults().Name + "-archive-keyring.asc" }

// SourcesFile is the deb822 source snippet at the root of the tree.
func (r Repo) SourcesFile() string { return r.withDefaults().Name + ".sources" }

// KeyringPath is where users put the key: /etc/apt/keyrings/<name>.gpg.
func (r Repo) KeyringPath() string { return "/etc/apt/keyrings/" + r.withDefaults().Name + ".gpg" }

// SourcesPath is where users put the snippet: /etc/apt/sources.list.d/<name>.sources.
func (r Repo) SourcesPath() string {
	return "/etc/apt/sources.list.d/" + r.withDefaults().Name + ".sources"
}

// Sources is the deb822 snippet for /etc/apt/sources.list.d/<name>.sources.
func (r Repo) Sources() []byte {
	r = r.withDefaults()
	return fmt.Appendf(nil, "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nArchitectures: %s\nSigned-By: %s\n",
		r.URL, r.Suite, r.Component, Architecture, r.KeyringPath())
}

// Input is what Write publishes.
type Input struct {
	Repo Repo
	Key  *pgp.Key // the archive signing key; required
	// Debs are the .deb files to publish (amd64 or all).
	Debs []string
	// Previous is the root of the currently published tree, if any: its
	// packages are carried over (several versions coexist), after checking
	// their bytes against its Packages index. A Deb with the same
	// name_version_arch as a previous package must be byte-identical.
	Previous string
	// The by-hash copies of Previous's indexes are kept too (one
	// generation), so clients holding the previous InRelease keep working.
	// RequireReleaseKey refuses a development key.
	RequireReleaseKey bool
}

// Package is one published package.
type Package struct {
	Name, Version, Architecture string
	Filename                    string // pool path relative to the root
	Size                        int64
	SHA256                      string
}

// ID is name_version_arch.
func (p Package) ID() string { return p.Name + "_" + p.Version + "_" + p.Architecture }

// Result describes a written tree.
type Result struct {
	Packages    []Package // sorted by name, version (dpkg order), architecture
	Files       []string  // every regular file, relative, sorted
	Fingerprint string    // of the signing key
}

// candidate is a package on its way into the pool.
type candidate struct {
	Package
	src     string // file to copy from
	control Paragraph
}

// Write writes a complete signed repository into dst, which must be absent
// or an empty directory. Every problem with the input (repo settings, key,
// each .deb) is reported at once, and nothing is written to dst when there
// is one; a failure while writing removes what was written.
func Write(dst string, in Input) (*Result, error) {
	r := in.Repo.withDefaults()
	problems := r.problems()
	if in.Key == nil {
		problems = append(problems, "no signing key: an apt repository is only published signed; load the archive key (see pgp.LoadKey)")
	} else {
		if in.RequireReleaseKey && in.Key.IsDevelopment() {
			problems = append(problems, fmt.Sprintf("key %s is a development key (%q): use the release key", in.Key.Fingerprint(), pgp.DevelopmentComment))
		}
		if !r.Date.IsZero() && r.Date.Before(in.Key.Created()) {
			problems = append(problems, fmt.Sprintf("date %s is before key %s was created (%s): gpgv rejects such signatures",
				r.Date.UTC().Format(time.RFC3339), in.Key.Fingerprint(), in.Key.Created().Format(time.RFC3339)))
		}
	}
	if err := checkEmptyDir(dst); err != nil {
		problems = append(problems, err.Error())
	}

	var cands []candidate
	var oldIndexes map[string][]byte
	if in.Previous != "" {
		prev, errs := readPrevious(in.Previous, r)
		problems = append(problems, errs...)
		cands = append(cands, prev...)
		old, errs := previousByHash(in.Previous, r)
		problems = append(problems, errs...)
		oldIndexes = old
	}
	if len(in.Debs) == 0 && in.Previous == "" {
		problems = append(problems, "no packages given: nothing to publish")
	}
	for _, deb := range in.Debs {
		c, err := readDeb(deb)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", deb, err))
			continue
		}
		cands = append(cands, c)
	}
	pkgs, errs := merge(cands, r.Component)
	problems = append(problems, errs...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("writing apt repository %s: %d problem(s), nothing written:\n  %s", dst, len(problems), strings.Join(problems, "\n  "))
	}

	files, err := render(r, in.Key, pkgs)
	if err != nil {
		return nil, fmt.Errorf("writing apt repository %s: %w", dst, err)
	}
	for name, b := range oldIndexes {
		if _, ok := files[name]; !ok {
			files[name] = b
		}
	}
	res := &Result{Fingerprint: in.Key.Fingerprint()}
	for _, c := range pkgs {
		res.Packages = append(res.Packages, c.Package)
		res.Files = append(res.Files, c.Filename)
	}
	for name := range files {
		res.Files = append(res.Files, name)
	}
	if err := writeTree(dst, r.Date, files, pkgs); err != nil {
		cleanDir(dst)
		return nil, fmt.Errorf("writing apt repository %s: %w", dst, err)
	}
	sort.Strings(res.Files)
	return res, nil
}

func checkEmptyDir(dst string) error {
	if dst == "" {
		return errors.New("destination directory is empty string")
	}
	ents, err := os.ReadDir(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("destination %s is not empty: Write makes a whole tree in an empty directory", dst)
	}
	return nil
}

// readDeb reads a .deb's control data and hashes it.
func readDeb(file string) (candidate, error) {
	f, err := os.Open(file)
	if err != nil {
		return candidate{}, err
	}
	defer f.Close()
	ctl, err := ReadControl(f)
	if err != nil {
		return candidate{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return candidate{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return candidate{}, err
	}
	c := candidate{src: file, control: ctl}
	c.Name, c.Version, c.Architecture = ctl.Get("Package"), ctl.Get("Version"), ctl.Get("Architecture")
	c.Size, c.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	var bad []string
	if !validName(c.Name) {
		bad = append(bad, fmt.Sprintf("Package %q is not a valid package name", c.Name))
	}
	if err := validVersion(c.Version); err != nil {
		bad = append(bad, err.Error())
	}
	if c.Architecture != Architecture && c.Architecture != "all" {
		bad = append(bad, fmt.Sprintf("Architecture %q: this archive takes only %s and all", c.Architecture, Architecture))
	}
	for _, req := range []string{"Maintainer", "Description"} {
		if !ctl.Has(req) {
			bad = append(bad, "control has no "+req+" field")
		}
	}
	if len(bad) > 0 {
		return candidate{}, errors.New(strings.Join(bad, "; "))
	}
	return c, nil
}

// readPrevious returns the packages of a published tree, each checked
// against the hash its Packages index records.
func readPrevious(root string, r Repo) ([]candidate, []string) {
	idx := filepath.Join(root, "dists", r.Suite, r.Component, "binary-"+Architecture, "Packages")
	data, err := os.ReadFile(idx)
	if err != nil {
		return nil, []string{fmt.Sprintf("previous tree: %v", err)}
	}
	paras, err := ParseParagraphs(data)
	if err != nil {
		return nil, []string{fmt.Sprintf("previous tree: %s: %v", idx, err)}
	}
	var out []candidate
	var problems []string
	for _, p := range paras {
		fn := p.Get("Filename")
		if fn == "" || !fs.ValidPath(fn) {
			problems = append(problems, fmt.Sprintf("previous tree: %s: bad Filename %q", idx, fn))
			continue
		}
		file := filepath.Join(root, filepath.FromSlash(fn))
		if _, got, err := fsutil.HashFile(file); err != nil || got != p.Get("SHA256") {
			problems = append(problems, fmt.Sprintf("previous tree: %s: sha256 %s (%v), its Packages index says %s: the published tree is damaged", fn, got, err, p.Get("SHA256")))
			continue
		}
		c, err := readDeb(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("previous tree: %s: %v", fn, err))
			continue
		}
		out = append(out, c)
	}
	return out, problems
}

// previousByHash returns the by-hash copies of the indexes the previous
// tree's Release lists (one generation back, checked against their names):
// a client that fetched the previous InRelease just before a publish can
// still download the indexes it names.
func previousByHash(root string, r Repo) (map[string][]byte, []string) {
	suite := path.Join("dists", r.Suite)
	rel, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(suite), "Release"))
	if err != nil {
		return nil, []string{fmt.Sprintf("previous tree: %v", err)}
	}
	paras, err := ParseParagraphs(rel)
	if err != nil || len(paras) != 1 {
		return nil, []string{fmt.Sprintf("previous tree: %s/Release: not one deb822 paragraph (%v)", suite, err)}
	}
	out := map[string][]byte{}
	var problems []string
	for _, line := range strings.Split(paras[0].Get("SHA256"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || len(f[0]) != 64 || !fs.ValidPath(f[2]) {
			continue
		}
		name := path.Join(suite, path.Dir(f[2]), "by-hash", "SHA256", f[0])
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path.Join(suite, f[2]))))
		if err != nil {
			problems = append(problems, fmt.Sprintf("previous tree: %v", err))
			continue
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f[0] {
			problems = append(problems, fmt.Sprintf("previous tree: %s/%s does not match its Release: the published tree is damaged", suite, f[2]))
			continue
		}
		out[name] = b
	}
	return out, problems
}

// merge drops exact duplicates, refuses same-ID packages with different
// bytes and pool-path clashes, assigns pool paths and sorts.
func merge(cands []candidate, component string) ([]candidate, []string) {
	var problems []string
	byID := map[string]candidate{}
	byPool := map[string]string{}
	var out []candidate
	for _, c := range cands {
		if prev, ok := byID[c.ID()]; ok {
			if prev.SHA256 != c.SHA256 {
				problems = append(problems, fmt.Sprintf("%s: %s is already in the set from %s with sha256 %s, this one has %s: never republish a version with different bytes; bump the package revision",
					c.src, c.ID(), prev.src, prev.SHA256, c.SHA256))
			}
			continue
		}
		c.Filename = poolPath(component, c.control, c.Package)
		if other, ok := byPool[c.Filename]; ok {
			problems = append(problems, fmt.Sprintf("%s: pool file %s clashes with %s (versions differing only in epoch)", c.src, c.Filename, other))
			continue
		}
		byID[c.ID()] = c
		byPool[c.Filename] = c.ID()
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := CompareVersions(a.Version, b.Version); c != 0 {
			return c < 0
		}
		return a.Architecture < b.Architecture
	})
	return out, problems
}

// poolPath is pool/<component>/<prefix>/<source>/<name>_<version-without-epoch>_<arch>.deb.
func poolPath(component string, ctl Paragraph, p Package) string {
	src := p.Name
	if s := ctl.Get("Source"); s != "" {
		src, _, _ = strings.Cut(s, " ")
	}
	prefix := src[:1]
	if strings.HasPrefix(src, "lib") && len(src) > 3 {
		prefix = src[:4]
	}
	ver := p.Version
	if _, rest, ok := strings.Cut(ver, ":"); ok {
		ver = rest
	}
	return path.Join("pool", component, prefix, src, p.Name+"_"+ver+"_"+p.Architecture+".deb")
}

// indexFields are the fields Write adds to a control paragraph; any copy
// in a .deb's control is dropped.
var indexFields = []string{"Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5"}

// PackagesIndex renders the Packages file for pkgs (already sorted).
func packagesIndex(pkgs []candidate) []byte {
	var b bytes.Buffer
	for i, c := range pkgs {
		if i > 0 {
			b.WriteString("\n")
		}
		p := c.control.Without(indexFields...)
		p = append(p,
			Field{Name: "Filename", Value: c.Filename},
			Field{Name: "Size", Value: fmt.Sprint(c.Size)},
			Field{Name: "SHA256", Value: c.SHA256})
		b.WriteString(p.String())
	}
	return b.Bytes()
}

// render computes every file of the tree except the pool copies.
func render(r Repo, key *pgp.Key, pkgs []candidate) (map[string][]byte, error) {
	files := map[string][]byte{}
	suite := path.Join("dists", r.Suite)
	bin := path.Join(r.Component, "binary-"+Architecture)

	pk := packagesIndex(pkgs)
	gz, err := detgzip.Bytes(pk)
	if err != nil {
		return nil, err
	}
	xzb, err := xzBytes(pk)
	if err != nil {
		return nil, err
	}
	indexes := map[string][]byte{
		path.Join(bin, "Packages"):    pk,
		path.Join(bin, "Packages.gz"): gz,
		path.Join(bin, "Packages.xz"): xzb,
		path.Join(bin, "Release"): fmt.Appendf(nil, "Archive: %s\nOrigin: %s\nLabel: %s\nAcquire-By-Hash: yes\nComponent: %s\nArchitecture: %s\n",
			r.Suite, r.Origin, r.Label, r.Component, Architecture),
	}
	var names []string
	for name, b := range indexes {
		names = append(names, name)
		files[path.Join(suite, name)] = b
		sum := sha256.Sum256(b)
		files[path.Join(suite, path.Dir(name), "by-hash", "SHA256", hex.EncodeToString(sum[:]))] = b
	}
	sort.Strings(names)

	var rel bytes.Buffer
	fmt.Fprintf(&rel, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\n", r.Origin, r.Label, r.Suite, r.Codename)
	if r.Version != "" {
		fmt.Fprintf(&rel, "Version: %s\n", r.Version)
	}
	fmt.Fprintf(&rel, "Date: %s\nArchitectures: %s\nComponents: %s\nDescription: %s\nAcquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\nSHA256:\n",
		r.Date.UTC().Format(ReleaseDateFormat), Architecture, r.Component, r.Description)
	for _, name := range names {
		b := indexes[name]
		sum := sha256.Sum256(b)
		fmt.Fprintf(&rel, " %x %16d %s\n", sum, len(b), name)
	}
	release := rel.Bytes()
	inRelease, err := key.ClearSign(release, r.Date)
	if err != nil {
		return nil, fmt.Errorf("signing InRelease: %w", err)
	}
	relSig, err := key.DetachSignArmored(bytes.NewReader(release), r.Date)
	if err != nil {
		return nil, fmt.Errorf("signing Release.gpg: %w", err)
	}
	files[path.Join(suite, "Release")] = release
	files[path.Join(suite, "InRelease")] = inRelease
	files[path.Join(suite, "Release.gpg")] = relSig
	files[r.KeyringFile()] = key.PublicBinary()
	files[r.ArmoredKeyFile()] = key.PublicArmored()
	files[r.SourcesFile()] = r.Sources()
	return files, nil
}

// ReleaseDateFormat is the RFC 2822 form apt expects in Release Date.
const ReleaseDateFormat = "Mon, 02 Jan 2006 15:04:05 UTC"

func xzBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC64}.NewWriter(&out)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeTree writes files and pool copies under dst with fixed modes and
// mtimes. Pool copies are hashed again while copying: a .deb that changed
// since it was read is an error.
func writeTree(dst string, mtime time.Time, files map[string][]byte, pkgs []candidate) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	dirs := map[string]bool{}
	mkdir := func(rel string) error {
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		return os.MkdirAll(filepath.Join(dst, filepath.FromSlash(path.Dir(rel))), 0o755)
	}
	for name, b := range files {
		if err := mkdir(name); err != nil {
			return err
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		if err := finish(p, 0o644, mtime); err != nil {
			return err
		}
	}
	for _, c := range pkgs {
		if err := mkdir(c.Filename); err != nil {
			return err
		}
		p := filepath.Join(dst, filepath.FromSlash(c.Filename))
		if err := copyChecked(c.src, p, c.SHA256); err != nil {
			return err
		}
		if err := finish(p, 0o644, mtime); err != nil {
			return err
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ds)))
	for _, d := range append(ds, ".") {
		if err := finish(filepath.Join(dst, filepath.FromSlash(d)), 0o755, mtime); err != nil {
			return err
		}
	}
	return nil
}

// finish sets mode (explicitly: umask must not matter) and mtime.
func finish(p string, mode os.FileMode, mtime time.Time) error {
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}

func copyChecked(src, dst, want string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("copying %s: it changed while publishing (sha256 %s, was %s)", src, got, want)
	}
	return nil
}

// cleanDir removes everything inside dir (not dir itself).
func cleanDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
