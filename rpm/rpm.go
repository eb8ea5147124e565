// Package rpm owns the signed dnf repository: from signed .rpm files it
// writes repodata/ (primary, filelists and other XML, gzip-compressed under
// checksummed names, described by repomd.xml), the armored detached
// signature repomd.xml.asc, the public key RPM-GPG-KEY-<name> and a
// <name>.repo snippet for /etc/yum.repos.d, and it verifies such a
// repository (Verify).
//
// The metadata is what createrepo_c derives from the same packages (the
// same fields, dependency filtering and file lists); it is read from the
// rpm headers in pure Go with go-rpmutils. Output is deterministic: the
// same packages and epoch give byte-identical files, with every timestamp,
// the repomd revision and the signature time taken from SOURCE_DATE_EPOCH.
package rpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/detgzip"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/halvm/halvm-release/internal/pgp"
)

// DefaultChangelogLimit is createrepo_c's default --changelog-limit.
const DefaultChangelogLimit = 10

// Options describe the repository around the packages.
type Options struct {
	// Epoch is SOURCE_DATE_EPOCH: repomd's revision and timestamps, the
	// signature time, the packages' <time file> and every file's mtime.
	Epoch time.Time
	// BaseURL is where the repository will be served from (baseurl= and
	// gpgkey= in the .repo file), e.g. https://example.org/halvm/rpm.
	BaseURL string
	// Name is the repository id: [name], RPM-GPG-KEY-name, name.repo.
	// Default "halvm".
	Name string
	// Title is the .repo file's name= line. Default "HaLVM".
	Title string
	// ChangelogLimit is how many changelog entries (the newest) of each
	// package go into other.xml: 0 means DefaultChangelogLimit, negative
	// means all.
	ChangelogLimit int
}

var repoIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "halvm"
	}
	if o.Title == "" {
		o.Title = "HaLVM"
	}
	if o.ChangelogLimit == 0 {
		o.ChangelogLimit = DefaultChangelogLimit
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	return o
}

func (o Options) problems() []string {
	var p []string
	if o.Epoch.IsZero() {
		p = append(p, "options: no epoch: set SOURCE_DATE_EPOCH")
	} else if o.Epoch.Unix() < 0 {
		p = append(p, "options: epoch before 1970")
	}
	if o.BaseURL == "" {
		p = append(p, "options: no base URL: give the URL the repository is served from")
	} else if u, err := url.Parse(o.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") ||
		(u.Scheme != "file" && u.Host == "") || u.RawQuery != "" || u.Fragment != "" {
		p = append(p, fmt.Sprintf("options: base URL %q: want an http://, https:// or file:// URL without query or fragment", o.BaseURL))
	}
	if !repoIDPattern.MatchString(o.Name) {
		p = append(p, fmt.Sprintf("options: repository name %q: use letters, digits and _.:-", o.Name))
	}
	if strings.ContainsAny(o.Title, "\n\r") {
		p = append(p, "options: title contains a line break")
	}
	return p
}

// KeyFileName is the public key's file name at the repository root.
func KeyFileName(name string) string { return "RPM-GPG-KEY-" + name }

// RepoFile is the /etc/yum.repos.d/<name>.repo snippet for the repository
// (also written to its root): signed packages and signed metadata.
func RepoFile(opts Options) []byte {
	o := opts.withDefaults()
	var b bytes.Buffer
	fmt.Fprintf(&b, "[%s]\n", o.Name)
	fmt.Fprintf(&b, "name=%s\n", o.Title)
	fmt.Fprintf(&b, "baseurl=%s/\n", o.BaseURL)
	fmt.Fprintf(&b, "enabled=1\n")
	fmt.Fprintf(&b, "gpgcheck=1\n")
	fmt.Fprintf(&b, "repo_gpgcheck=1\n")
	// A repository whose signature fails must fail the command, not be
	// skipped quietly (Debian's dnf.conf defaults to skipping).
	fmt.Fprintf(&b, "skip_if_unavailable=False\n")
	fmt.Fprintf(&b, "gpgkey=%s/%s\n", o.BaseURL, KeyFileName(o.Name))
	return b.Bytes()
}

// InputError lists every problem found in the input of Write; nothing was
// written.
type InputError struct {
	Problems []string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("refusing to write the dnf repository (nothing was written), %d problem(s): %s",
		len(e.Problems), strings.Join(e.Problems, "; "))
}

// Write writes a complete signed dnf repository of the rpm files pkgs into
// dst, which must be empty or not exist. Every package must carry an rpm
// header signature made by key, be for x86_64 or noarch, and no two may
// share name-version-release.arch with different bytes (identical files
// are written once). All input problems are reported at once, in an
// *InputError, before anything is written; if writing fails midway, what
// was written is removed again.
//
// Layout: Packages/<first letter>/<name>-<version>-<release>.<arch>.rpm,
// repodata/{repomd.xml,repomd.xml.asc,<sha256>-{primary,filelists,other}.xml.gz},
// RPM-GPG-KEY-<name>, <name>.repo.
func Write(dst string, pkgs []string, key *pgp.Key, opts Options) error {
	if err := write(dst, pkgs, key, opts); err != nil {
		return fmt.Errorf("writing dnf repository %s: %w", dst, err)
	}
	return nil
}

type inputPkg struct {
	src  string
	meta *pkgMeta
}

func write(dst string, pkgPaths []string, key *pgp.Key, opts Options) error {
	o := opts.withDefaults()
	problems := o.problems()
	var keys openpgp.EntityList
	if key == nil {
		problems = append(problems, "no signing key: load the archive key (the repository and its packages must be signed by it)")
	} else {
		// The packages must be signed by the key (a rebuild's key also
		// accepts its throwaway key's signatures on what differs: see
		// pgp.PublishedSignatures).
		kr, err := pgp.ReadKeyring(key.VerificationKeys())
		if err != nil {
			return fmt.Errorf("reading the signing key's public half: %w", err)
		}
		keys = kr.Entities()
		if !o.Epoch.IsZero() && o.Epoch.Before(key.Created()) {
			problems = append(problems, fmt.Sprintf("signing key %s was created at %s, after the epoch %s: signatures would predate the key",
				key.Fingerprint(), key.Created().Format(time.RFC3339), o.Epoch.UTC().Format(time.RFC3339)))
		}
	}
	if p := checkEmptyDir(dst); p != "" {
		problems = append(problems, p)
	}
	if len(pkgPaths) == 0 {
		problems = append(problems, "no packages given")
	}

	var in []inputPkg
	byNVRA := map[string]inputPkg{}
	for _, p := range pkgPaths {
		m, probs := inspect(p, keys, o.ChangelogLimit)
		problems = append(problems, probs...)
		if m == nil {
			continue
		}
		if prev, ok := byNVRA[m.nvra()]; ok {
			if prev.meta.Checksum != m.Checksum {
				problems = append(problems, fmt.Sprintf("%s and %s are both %s with different bytes: a repository never holds two builds of one name-version-release.arch; bump the release",
					prev.src, p, m.nvra()))
			}
			continue
		}
		ip := inputPkg{src: p, meta: m}
		byNVRA[m.nvra()] = ip
		in = append(in, ip)
	}
	if len(problems) > 0 {
		return &InputError{Problems: problems}
	}

	for _, ip := range in {
		ip.meta.Href = packageHref(ip.meta)
		ip.meta.FileTime = o.Epoch.Unix()
	}
	// createrepo_c's order: by file name.
	sort.Slice(in, func(i, j int) bool {
		a, b := in[i].meta, in[j].meta
		if a.fileName() != b.fileName() {
			return a.fileName() < b.fileName()
		}
		return a.Href < b.Href
	})

	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := populate(dst, in, key, o); err != nil {
		cleanDir(dst)
		return err
	}
	return nil
}

// packageHref is where a package lives under the repository root.
func packageHref(m *pkgMeta) string {
	return path.Join("Packages", strings.ToLower(m.Name[:1]), m.fileName())
}

// checkEmptyDir returns a problem unless dir is an empty directory or
// does not exist.
func checkEmptyDir(dir string) string {
	if dir == "" {
		return "no destination directory given"
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ""
	case err != nil:
		return fmt.Sprintf("destination %s: %v", dir, err)
	case len(ents) > 0:
		return fmt.Sprintf("destination %s is not empty (%d entries, e.g. %s): write into a new directory and publish it", dir, len(ents), ents[0].Name())
	}
	return ""
}

// inspect reads one package and lists what is wrong with it for this
// repository. It returns the metadata when the package could be read.
func inspect(p string, keys openpgp.EntityList, changelogLimit int) (*pkgMeta, []string) {
	f, err := os.Open(p)
	if err != nil {
		return nil, []string{err.Error()}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, []string{fmt.Sprintf("%s: not a regular file", p)}
	}
	var lead [4]byte
	if _, err := io.ReadFull(f, lead[:]); err != nil || !bytes.Equal(lead[:], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, []string{fmt.Sprintf("%s: not an rpm file (no rpm lead)", p)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", p, err)}
	}
	m, st, err := readPackage(f, keys, changelogLimit)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v: the file is damaged or incomplete; copy or rebuild it", p, err)}
	}
	var probs []string
	switch {
	case st.Err != nil:
		probs = append(probs, fmt.Sprintf("%s (%s): %v", p, m.nvra(), st.Err))
	case keys != nil && !st.Signed:
		probs = append(probs, fmt.Sprintf("%s (%s): not signed: sign it with the archive key (rpm header signature)", p, m.nvra()))
	}
	if !allowedArches[m.Arch] {
		probs = append(probs, fmt.Sprintf("%s (%s): architecture %q: this repository carries x86_64 and noarch packages only", p, m.nvra(), m.Arch))
	}
	if strings.ContainsAny(m.nvra(), "/\\\x00") || strings.HasPrefix(m.Name, ".") {
		probs = append(probs, fmt.Sprintf("%s: name-version-release.arch %q is not usable as a file name", p, m.nvra()))
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return m, nil
}

// populate writes the repository into the empty directory dst.
func populate(dst string, in []inputPkg, key *pgp.Key, o Options) error {
	var written []string // relative paths, for mtimes
	for _, ip := range in {
		if err := copyPackage(ip.src, filepath.Join(dst, filepath.FromSlash(ip.meta.Href)), ip.meta.Checksum); err != nil {
			return err
		}
		written = append(written, ip.meta.Href)
	}
	metas := make([]*pkgMeta, len(in))
	for i, ip := range in {
		metas[i] = ip.meta
	}
	var recs []repomdRecord
	for _, md := range []struct {
		typ   string
		write func(io.Writer, []*pkgMeta) error
	}{
		{"primary", writePrimary},
		{"filelists", writeFilelists},
		{"other", writeOther},
	} {
		var plain bytes.Buffer
		if err := md.write(&plain, metas); err != nil {
			return fmt.Errorf("writing %s.xml: %w", md.typ, err)
		}
		gz, err := detgzip.Bytes(plain.Bytes())
		if err != nil {
			return fmt.Errorf("compressing %s.xml: %w", md.typ, err)
		}
		sum := sha256Hex(gz)
		href := "repodata/" + sum + "-" + md.typ + ".xml.gz"
		if err := writeFile(dst, href, gz); err != nil {
			return err
		}
		written = append(written, href)
		recs = append(recs, repomdRecord{
			Type: md.typ, Checksum: sum, OpenChecksum: sha256Hex(plain.Bytes()), Href: href,
			Timestamp: o.Epoch.Unix(), Size: int64(len(gz)), OpenSize: int64(plain.Len()),
		})
	}
	var repomd bytes.Buffer
	if err := writeRepomd(&repomd, itoa(o.Epoch.Unix()), recs); err != nil {
		return fmt.Errorf("writing repomd.xml: %w", err)
	}
	if err := writeFile(dst, "repodata/repomd.xml", repomd.Bytes()); err != nil {
		return err
	}
	// Sign what is on disk after its final write.
	final, err := os.ReadFile(filepath.Join(dst, "repodata", "repomd.xml"))
	if err != nil {
		return err
	}
	if !bytes.Equal(final, repomd.Bytes()) {
		return errors.New("repodata/repomd.xml changed on disk while writing the repository")
	}
	sig, err := key.DetachSignArmored(bytes.NewReader(final), o.Epoch)
	if err != nil {
		return fmt.Errorf("signing repomd.xml: %w", err)
	}
	if err := writeFile(dst, "repodata/repomd.xml.asc", sig); err != nil {
		return err
	}
	if err := writeFile(dst, KeyFileName(o.Name), key.PublicArmored()); err != nil {
		return err
	}
	if err := writeFile(dst, o.Name+".repo", RepoFile(o)); err != nil {
		return err
	}
	written = append(written, "repodata/repomd.xml", "repodata/repomd.xml.asc", KeyFileName(o.Name), o.Name+".repo")
	return setTimes(dst, written, o.Epoch)
}

// copyPackage copies src to dst and checks that the bytes are the ones
// that were inspected.
func copyPackage(src, dst, wantSHA string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return fmt.Errorf("copying %s: the file changed while the repository was written (sha256 %s, inspected %s)", src, got, wantSHA)
	}
	return os.Chmod(dst, 0o644)
}

// writeFile writes data to dir/rel (mode 0644, directories 0755).
func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(p, 0o644)
}

// setTimes stamps the written files and every directory below dst with t.
func setTimes(dst string, files []string, t time.Time) error {
	dirs := map[string]bool{}
	for _, f := range files {
		if err := os.Chtimes(filepath.Join(dst, filepath.FromSlash(f)), t, t); err != nil {
			return err
		}
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return len(ds[i]) > len(ds[j]) }) // deepest first
	for _, d := range ds {
		p := filepath.Join(dst, filepath.FromSlash(d))
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
		if err := os.Chtimes(p, t, t); err != nil {
			return err
		}
	}
	return nil
}

// cleanDir empties dir (which was empty before Write started).
func cleanDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
