package rpm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/halvm/halvm-release/internal/pgp"
)

// VerifyError lists every problem Verify found.
type VerifyError struct {
	Dir      string
	Problems []string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verifying dnf repository %s: %d problem(s): %s", e.Dir, len(e.Problems), strings.Join(e.Problems, "; "))
}

// repomd.xml, as far as Verify reads it.
type repomdDoc struct {
	Revision string       `xml:"revision"`
	Data     []repomdData `xml:"data"`
}

type repomdData struct {
	Type         string      `xml:"type,attr"`
	Checksum     typedDigest `xml:"checksum"`
	OpenChecksum typedDigest `xml:"open-checksum"`
	Location     struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
	Size     string `xml:"size"`
	OpenSize string `xml:"open-size"`
}

type typedDigest struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// primary.xml, as far as Verify reads it.
type primaryDoc struct {
	Packages []struct {
		Name    string `xml:"name"`
		Arch    string `xml:"arch"`
		Version struct {
			Epoch string `xml:"epoch,attr"`
			Ver   string `xml:"ver,attr"`
			Rel   string `xml:"rel,attr"`
		} `xml:"version"`
		Checksum typedDigest `xml:"checksum"`
		Size     struct {
			Package string `xml:"package,attr"`
		} `xml:"size"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"package"`
}

// pkgidDoc reads the package ids of filelists.xml and other.xml.
type pkgidDoc struct {
	Packages []struct {
		Pkgid string `xml:"pkgid,attr"`
	} `xml:"package"`
}

// Verify checks the dnf repository in dir against the public key pub
// (armored or binary): the signature repodata/repomd.xml.asc over
// repomd.xml, the size and sha256 (compressed and open) of every metadata
// file repomd lists, and for every package in primary.xml its size and
// sha256, its rpm header signature by pub and that its header matches the
// record. Every RPM-GPG-KEY-* file at the root must hold pub. All problems
// are reported at once in a *VerifyError.
func Verify(dir string, pub []byte) error {
	kr, err := pgp.ReadKeyring(pub)
	if err != nil {
		return fmt.Errorf("verifying dnf repository %s: %w", dir, err)
	}
	v := &verifier{dir: dir}
	v.run(kr, kr.Entities())
	if len(v.problems) > 0 {
		return &VerifyError{Dir: dir, Problems: v.problems}
	}
	return nil
}

type verifier struct {
	dir      string
	problems []string
}

func (v *verifier) add(format string, a ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, a...))
}

// open resolves a repository-relative href, refusing escapes.
func (v *verifier) path(href string) (string, bool) {
	c := path.Clean(href)
	if href == "" || path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(href, "\\") {
		v.add("href %q points outside the repository", href)
		return "", false
	}
	return filepath.Join(v.dir, filepath.FromSlash(c)), true
}

func (v *verifier) run(kr *pgp.Keyring, el openpgp.EntityList) {
	repomd, err := os.ReadFile(filepath.Join(v.dir, "repodata", "repomd.xml"))
	if err != nil {
		v.add("reading repodata/repomd.xml: %v", err)
		return
	}
	sig, err := os.ReadFile(filepath.Join(v.dir, "repodata", "repomd.xml.asc"))
	if err != nil {
		v.add("reading repodata/repomd.xml.asc: %v: the metadata is unsigned", err)
	} else if _, err := kr.VerifyDetached(bytes.NewReader(repomd), sig); err != nil {
		v.add("repodata/repomd.xml.asc: %v: repomd.xml was altered or signed with another key", err)
	}
	v.checkKeyFiles(kr)

	var md repomdDoc
	if err := xml.Unmarshal(repomd, &md); err != nil {
		v.add("parsing repodata/repomd.xml: %v", err)
		return
	}
	open := map[string][]byte{}
	for _, d := range md.Data {
		if b, ok := v.checkData(d); ok {
			open[d.Type] = b
		}
	}
	for _, t := range []string{"primary", "filelists", "other"} {
		if !slices.ContainsFunc(md.Data, func(d repomdData) bool { return d.Type == t }) {
			v.add("repodata/repomd.xml lists no %s metadata", t)
		}
	}
	prim, ok := open["primary"]
	if !ok {
		return
	}
	var pd primaryDoc
	if err := xml.Unmarshal(prim, &pd); err != nil {
		v.add("parsing primary.xml: %v", err)
		return
	}
	var ids []string
	for _, p := range pd.Packages {
		ids = append(ids, p.Checksum.Value)
		label := p.Location.Href
		if p.Checksum.Type != "sha256" {
			v.add("%s: checksum type %q in primary.xml, want sha256", label, p.Checksum.Type)
			continue
		}
		fp, ok := v.path(p.Location.Href)
		if !ok {
			continue
		}
		f, err := os.Open(fp)
		if err != nil {
			v.add("%s: %v", label, err)
			continue
		}
		m, st, err := readPackage(f, el, 0)
		f.Close()
		switch {
		case err != nil:
			v.add("%s: %v", label, err)
			continue
		case m.Checksum != p.Checksum.Value:
			v.add("%s: sha256 %s, primary.xml says %s", label, m.Checksum, p.Checksum.Value)
		case strconv.FormatInt(m.SizePackage, 10) != p.Size.Package:
			v.add("%s: size %d, primary.xml says %s", label, m.SizePackage, p.Size.Package)
		}
		if st.Err != nil {
			v.add("%s: %v", label, st.Err)
		} else if !st.Signed {
			v.add("%s: the package is not signed", label)
		}
		if m.Name != p.Name || m.Arch != p.Arch || m.Epoch != p.Version.Epoch || m.Version != p.Version.Ver || m.Release != p.Version.Rel {
			v.add("%s: header is %s-%s:%s-%s.%s, primary.xml says %s-%s:%s-%s.%s", label,
				m.Name, m.Epoch, m.Version, m.Release, m.Arch, p.Name, p.Version.Epoch, p.Version.Ver, p.Version.Rel, p.Arch)
		}
	}
	slices.Sort(ids)
	for _, t := range []string{"filelists", "other"} {
		b, ok := open[t]
		if !ok {
			continue
		}
		var d pkgidDoc
		if err := xml.Unmarshal(b, &d); err != nil {
			v.add("parsing %s.xml: %v", t, err)
			continue
		}
		var got []string
		for _, p := range d.Packages {
			got = append(got, p.Pkgid)
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			v.add("%s.xml describes other packages than primary.xml (%d vs %d)", t, len(got), len(ids))
		}
	}
}

// checkData checks one repomd record and returns the uncompressed file.
func (v *verifier) checkData(d repomdData) ([]byte, bool) {
	href := d.Location.Href
	if d.Checksum.Type != "sha256" {
		v.add("%s: checksum type %q in repomd.xml, want sha256", href, d.Checksum.Type)
		return nil, false
	}
	p, ok := v.path(href)
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		v.add("%s: %v", href, err)
		return nil, false
	}
	good := true
	if got := sha256Hex(b); got != strings.TrimSpace(d.Checksum.Value) {
		v.add("%s: sha256 %s, repomd.xml says %s", href, got, d.Checksum.Value)
		good = false
	}
	if d.Size != "" && strconv.Itoa(len(b)) != strings.TrimSpace(d.Size) {
		v.add("%s: size %d, repomd.xml says %s", href, len(b), d.Size)
		good = false
	}
	open := b
	if strings.HasSuffix(href, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err == nil {
			open, err = io.ReadAll(zr)
		}
		if err != nil {
			v.add("%s: decompressing: %v", href, err)
			return nil, false
		}
	}
	if d.OpenChecksum.Value != "" {
		h := sha256.Sum256(open)
		if got := hex.EncodeToString(h[:]); d.OpenChecksum.Type != "sha256" || got != strings.TrimSpace(d.OpenChecksum.Value) {
			v.add("%s: uncompressed sha256 %s, repomd.xml says %s %s", href, got, d.OpenChecksum.Type, d.OpenChecksum.Value)
			good = false
		}
	}
	if d.OpenSize != "" && strconv.Itoa(len(open)) != strings.TrimSpace(d.OpenSize) {
		v.add("%s: uncompressed size %d, repomd.xml says %s", href, len(open), d.OpenSize)
		good = false
	}
	return open, good
}

// checkKeyFiles requires every RPM-GPG-KEY-* at the root to be the key.
func (v *verifier) checkKeyFiles(kr *pgp.Keyring) {
	want := kr.Fingerprints()
	matches, _ := filepath.Glob(filepath.Join(v.dir, "RPM-GPG-KEY-*"))
	if len(matches) == 0 {
		v.add("no RPM-GPG-KEY-* file at the repository root: clients cannot fetch the key")
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			v.add("%s: %v", filepath.Base(m), err)
			continue
		}
		k, err := pgp.ReadKeyring(b)
		if err != nil {
			v.add("%s: %v", filepath.Base(m), err)
			continue
		}
		for _, fp := range k.Fingerprints() {
			if !slices.Contains(want, fp) {
				v.add("%s holds key %s, not the repository key", filepath.Base(m), fp)
			}
		}
	}
}

// CheckSignature checks one package's digests and its OpenPGP header
// signature against the public key pub (armored or binary): nil only when
// the package is intact and signed by pub.
func CheckSignature(r io.ReadSeeker, pub []byte) error {
	kr, err := pgp.ReadKeyring(pub)
	if err != nil {
		return err
	}
	_, st, err := readPackage(r, kr.Entities(), 0)
	switch {
	case err != nil:
		return err
	case st.Err != nil:
		return st.Err
	case !st.Signed:
		return fmt.Errorf("the package is not signed")
	}
	return nil
}
