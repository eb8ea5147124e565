package rpm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	rpmutils "github.com/sassoftware/go-rpmutils"
)

// Header tags go-rpmutils has no names for.
const (
	tagSourcePackage      = 1106
	tagOldSuggestsName    = 1156
	tagOldSuggestsVersion = 1157
	tagOldSuggestsFlags   = 1158
	tagOldEnhancesName    = 1159
	tagOldEnhancesVersion = 1160
	tagOldEnhancesFlags   = 1161
	tagRecommendName      = 5046
	tagRecommendVersion   = 5047
	tagRecommendFlags     = 5048
	tagSuggestName        = 5049
	tagSuggestVersion     = 5050
	tagSuggestFlags       = 5051
	tagSupplementName     = 5052
	tagSupplementVersion  = 5053
	tagSupplementFlags    = 5054
	tagEnhanceName        = 5055
	tagEnhanceVersion     = 5056
	tagEnhanceFlags       = 5057
)

// Dependency sense flags (rpm's rpmds.h).
const (
	senseLess       = 1 << 1
	senseGreater    = 1 << 2
	senseEqual      = 1 << 3
	sensePrereq     = 1 << 6
	senseScriptPre  = 1 << 9
	senseScriptPost = 1 << 10
	senseMissingOK  = 1 << 19
	senseStrong     = 1 << 27
)

// allowedArches are the architectures the repository carries.
var allowedArches = map[string]bool{"x86_64": true, "noarch": true}

// dep is one dependency entry (rpm:entry).
type dep struct {
	Name, Flags, Epoch, Ver, Rel string
	Pre                          bool
}

// pkgFile is one file of a package; Type is "", "dir" or "ghost".
type pkgFile struct {
	Path, Type string
}

// changelog is one changelog entry in other.xml.
type changelog struct {
	Author string
	Date   int64
	Text   string
}

// pkgMeta is everything the repository metadata says about one package,
// as createrepo_c derives it from the header.
type pkgMeta struct {
	Name, Arch, Epoch, Version, Release string
	VCS                                 string
	Checksum                            string // sha256 of the whole file: the pkgid
	Summary, Description, Packager, URL string
	FileTime, BuildTime                 int64
	SizePackage, SizeInstalled          int64
	SizeArchive                         int64
	Href                                string // location href, relative to the repository root
	License, Vendor, Group, BuildHost   string
	SourceRPM                           string
	HeaderStart, HeaderEnd              int64
	Provides, Requires                  []dep
	Conflicts, Obsoletes                []dep
	Suggests, Enhances                  []dep
	Recommends, Supplements             []dep
	Files                               []pkgFile
	Changelogs                          []changelog
}

// nvra is the identity under which a repository may hold one file only.
func (m *pkgMeta) nvra() string {
	return m.Name + "-" + m.Version + "-" + m.Release + "." + m.Arch
}

// fileName is the canonical file name, name-version-release.arch.rpm.
func (m *pkgMeta) fileName() string { return m.nvra() + ".rpm" }

// sigStatus is what the signature check of one package found.
type sigStatus struct {
	Signed bool  // at least one OpenPGP signature is present
	Err    error // a signature failed or was made by another key
}

// readPackage parses the rpm in f, checks its digests and its OpenPGP
// signatures against keys, and derives its metadata. changelogLimit bounds
// the changelog entries kept (createrepo_c's --changelog-limit). A package
// that is intact but unsigned or not signed by keys is returned with sig
// describing that; err is for unreadable or corrupt packages.
func readPackage(f io.ReadSeeker, keys openpgp.EntityList, changelogLimit int) (*pkgMeta, sigStatus, error) {
	m, st, err := scanPackage(f, keys, changelogLimit)
	if err == nil {
		return m, st, nil
	}
	var knf rpmutils.KeyNotFoundError
	var bad pgperrors.SignatureError
	switch {
	case errors.As(err, &knf):
		st.Err = fmt.Errorf("signed by key %016X, not by the repository key: sign it with the archive key", knf.KeyID)
	case errors.As(err, &bad):
		st.Err = fmt.Errorf("bad signature (%v): the package was altered after signing or signed with a different key; rebuild and sign it", err)
	default:
		return nil, st, err
	}
	// Intact apart from the signature? Read it again without keys (digests
	// are still checked) so that every other problem is reported too.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, st, fmt.Errorf("reading rpm: %w", err)
	}
	m, st2, err := scanPackage(f, nil, changelogLimit)
	if err != nil {
		return nil, st, err
	}
	st2.Err = st.Err
	return m, st2, nil
}

// scanPackage reads the whole package once: sha256 and size of the file,
// header and payload digests, signatures (validated when keys is not nil).
func scanPackage(r io.Reader, keys openpgp.EntityList, changelogLimit int) (*pkgMeta, sigStatus, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	var st sigStatus
	hdr, sigs, err := rpmutils.Verify(cr, keys)
	if err != nil {
		var knf rpmutils.KeyNotFoundError
		var bad pgperrors.SignatureError
		if errors.As(err, &knf) || errors.As(err, &bad) {
			return nil, st, err
		}
		return nil, st, fmt.Errorf("reading rpm: %w", err)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, st, fmt.Errorf("reading rpm: %w", err)
	}
	st.Signed = len(sigs) > 0
	hr := hdr.GetRange()
	m, err := metaFromHeader(hdr, changelogLimit)
	if err != nil {
		return nil, st, err
	}
	m.Checksum = hex.EncodeToString(h.Sum(nil))
	m.SizePackage = cr.n
	m.HeaderStart = int64(hr.Start)
	m.HeaderEnd = int64(hr.End)
	return m, st, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// str returns the first string of tag, or "" when it is absent.
func str(hdr *rpmutils.RpmHeader, tag int) string {
	v, err := hdr.GetStrings(tag)
	if err != nil || len(v) == 0 {
		return ""
	}
	return v[0]
}

// num returns the first number of tag and whether it is present.
func num(hdr *rpmutils.RpmHeader, tag int) (int64, bool) {
	v, err := hdr.GetUint64s(tag)
	if err != nil || len(v) == 0 {
		return 0, false
	}
	return int64(v[0]), true
}

func metaFromHeader(hdr *rpmutils.RpmHeader, changelogLimit int) (*pkgMeta, error) {
	m := &pkgMeta{
		Name:        str(hdr, rpmutils.NAME),
		Version:     str(hdr, rpmutils.VERSION),
		Release:     str(hdr, rpmutils.RELEASE),
		Arch:        str(hdr, rpmutils.ARCH),
		VCS:         str(hdr, rpmutils.VCS),
		Summary:     str(hdr, rpmutils.SUMMARY),
		Description: str(hdr, rpmutils.DESCRIPTION),
		Packager:    str(hdr, rpmutils.PACKAGER),
		URL:         str(hdr, rpmutils.URL),
		License:     str(hdr, rpmutils.LICENSE),
		Vendor:      str(hdr, rpmutils.VENDOR),
		Group:       str(hdr, rpmutils.GROUP),
		BuildHost:   str(hdr, rpmutils.BUILDHOST),
		SourceRPM:   str(hdr, rpmutils.SOURCERPM),
	}
	if m.Name == "" || m.Version == "" {
		return nil, errors.New("reading rpm: header has no name or version")
	}
	if v, ok := num(hdr, tagSourcePackage); ok && v != 0 {
		m.Arch = "src"
	}
	e, _ := num(hdr, rpmutils.EPOCH)
	m.Epoch = strconv.FormatInt(e, 10)
	m.BuildTime, _ = num(hdr, rpmutils.BUILDTIME)
	if v, ok := num(hdr, rpmutils.LONGSIZE); ok {
		m.SizeInstalled = v
	} else {
		m.SizeInstalled, _ = num(hdr, rpmutils.SIZE)
	}
	// rpm merges the signature header's payload size into the main header
	// as the (long) archive size; read it where rpmpack and rpmbuild put it.
	switch {
	case hdr.HasTag(rpmutils.SIG_LONGARCHIVESIZE):
		m.SizeArchive, _ = num(hdr, rpmutils.SIG_LONGARCHIVESIZE)
	case hdr.HasTag(rpmutils.SIG_PAYLOADSIZE):
		m.SizeArchive, _ = num(hdr, rpmutils.SIG_PAYLOADSIZE)
	default:
		m.SizeArchive, _ = num(hdr, rpmutils.ARCHIVESIZE)
	}

	files, all, err := readFiles(hdr)
	if err != nil {
		return nil, err
	}
	m.Files = files
	readDeps(hdr, m, all)
	m.Changelogs = readChangelogs(hdr, changelogLimit)
	return m, nil
}

// readFiles lists the package's files in header order, with their type,
// and the set of all file paths.
func readFiles(hdr *rpmutils.RpmHeader) ([]pkgFile, map[string]bool, error) {
	all := map[string]bool{}
	base, err := hdr.GetStrings(rpmutils.BASENAMES)
	if err != nil {
		return nil, all, nil // no files
	}
	dirs, err1 := hdr.GetStrings(rpmutils.DIRNAMES)
	idx, err2 := hdr.GetUint32s(rpmutils.DIRINDEXES)
	flags, err3 := hdr.GetUint32s(rpmutils.FILEFLAGS)
	modes, err4 := hdr.GetUint32s(rpmutils.FILEMODES)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, nil, fmt.Errorf("reading rpm file list: %w", err)
	}
	if len(idx) != len(base) || len(flags) != len(base) || len(modes) != len(base) {
		return nil, nil, errors.New("reading rpm file list: file tags of different lengths")
	}
	files := make([]pkgFile, 0, len(base))
	for i, b := range base {
		if int(idx[i]) >= len(dirs) {
			return nil, nil, fmt.Errorf("reading rpm file list: file %q has directory index %d of %d", b, idx[i], len(dirs))
		}
		p := dirs[idx[i]] + b
		t := ""
		switch {
		case modes[i]&0o170000 == 0o040000:
			t = "dir"
		case flags[i]&rpmutils.RPMFILE_GHOST != 0:
			t = "ghost"
		}
		files = append(files, pkgFile{Path: p, Type: t})
		all[p] = true
	}
	return files, all, nil
}

// isPrimaryFile is createrepo_c's rule for files listed in primary.xml
// (what yum and dnf expect): /etc/*, anything with "bin/", /usr/lib/sendmail.
func isPrimaryFile(p string) bool {
	return strings.HasPrefix(p, "/etc/") || p == "/usr/lib/sendmail" || strings.Contains(p, "bin/")
}

// readChangelogs keeps the first limit header entries (the newest), oldest
// first, trims trailing spaces of authors and, like createrepo_c, makes
// equal dates distinct by bumping earlier-listed entries by one second.
func readChangelogs(hdr *rpmutils.RpmHeader, limit int) []changelog {
	times, err1 := hdr.GetUint64s(rpmutils.CHANGELOGTIME)
	names, err2 := hdr.GetStrings(rpmutils.CHANGELOGNAME)
	texts, err3 := hdr.GetStrings(rpmutils.CHANGELOGTEXT)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil
	}
	n := min(len(times), len(names), len(texts))
	if limit >= 0 {
		n = min(n, limit)
	}
	// out is built newest-last: out[len-1] is the most recently added.
	var out []changelog
	var last int64
	for i := 0; i < n; i++ {
		t := int64(times[i])
		author := names[i]
		if len(author) > 1 {
			author = author[:1] + strings.TrimRight(author[1:], " ")
		}
		out = append([]changelog{{Author: author, Date: t, Text: texts[i]}}, out...)
		if last == t {
			tmp := t
			for j := 1; j < len(out) && out[j].Date == tmp; j++ {
				out[j].Date++
				tmp++
			}
		} else {
			last = t
		}
	}
	return out
}
