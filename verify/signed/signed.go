// Package signed compares a published release with a rebuild of it when
// the rebuild has no private key: each signed artifact is compared on the
// content its signature covers, and the published signature is checked
// over the rebuilt bytes with the public keys alone.
//
//   - an .rpm: the published package's lead and signature header are put
//     in front of the rebuilt package's header and payload (the
//     transplant); the result must be the published file byte for byte, and
//     the published signature must verify under the archive key. The
//     rebuilt package may be unsigned or signed by any key.
//   - InRelease: the text it signs must be the rebuilt Release, and its
//     signature valid.
//   - a detached OpenPGP signature (Release.gpg, repomd.xml.asc,
//     SHA256SUMS.asc): valid over the rebuilt payload next to it.
//   - a cosign blob signature (SHA256SUMS.sig): valid over the rebuilt
//     payload under the cosign public key.
//
// Everything else is compared byte for byte. There is one code path
// whether or not the rebuild signed its artifacts.
package signed

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/rpmhead"
	"github.com/halvm/halvm-release/rpm"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify/diff"
)

// Status is a verdict on one artifact.
type Status string

// The verdicts.
const (
	Identical Status = "IDENTICAL"
	Differs   Status = "DIFFERS"
	Missing   Status = "MISSING" // published, but the rebuild has no such file
	Extra     Status = "EXTRA"   // rebuilt, but not published
)

// Keys are the public keys the published signatures are checked with.
type Keys struct {
	// Archive is the archive's OpenPGP public key, armored or binary
	// (InRelease, Release.gpg, repomd.xml.asc, SHA256SUMS.asc, rpm headers).
	Archive []byte
	// CosignBlob checks a cosign blob signature (SHA256SUMS.sig) over data;
	// nil when there is no cosign key: .sig files are then DIFFERS.
	CosignBlob func(data, sig []byte) error
}

// Verdict is what the comparison of one artifact found.
type Verdict struct {
	Path   string // relative to the release root, slash-separated
	Status Status
	How    string   // the comparison made, one line
	Detail []string // why it differs: the readable diff or the failed signature
}

func (v Verdict) String() string {
	s := fmt.Sprintf("%-9s %s (%s)", v.Status, v.Path, v.How)
	for _, d := range v.Detail {
		s += "\n    " + d
	}
	return s
}

// detachedSuffixes are the suffixes of detached signatures; the payload is
// the file without it.
var detachedSuffixes = []string{".gpg", ".asc", ".sig"}

// File compares the published file released with the rebuild's
// counterpart below rebuiltRoot (rel is its path in both trees). A
// detached signature is checked over the rebuilt payload it belongs to;
// InRelease over the rebuilt Release.
func File(releasedRoot, rebuiltRoot, rel string, k Keys) Verdict {
	pub := filepath.Join(releasedRoot, filepath.FromSlash(rel))
	reb := filepath.Join(rebuiltRoot, filepath.FromSlash(rel))
	base := filepath.Base(rel)
	switch {
	case base == "InRelease":
		return clearSigned(rel, pub, filepath.Join(filepath.Dir(reb), "Release"), k)
	case strings.HasSuffix(base, ".rpm"):
		return rpmFile(rel, pub, reb, k)
	}
	for _, suf := range detachedSuffixes {
		if strings.HasSuffix(base, suf) && len(base) > len(suf) {
			// A signature when the published release has its payload
			// next to it (a key file such as archive-keyring.gpg has none).
			if _, err := os.Stat(strings.TrimSuffix(pub, suf)); err == nil {
				return detached(rel, pub, strings.TrimSuffix(reb, suf), suf, k)
			}
		}
	}
	return byteForByte(rel, pub, reb)
}

// Tree compares every regular file below releasedRoot with the rebuild
// below rebuiltRoot, sorted by path; files only the rebuild made are
// Extra, except the signatures an unsigned rebuild cannot make and the
// payloads they cover, which are judged through the published side.
// skip names paths (relative, slash-separated) neither side is judged on.
func Tree(releasedRoot, rebuiltRoot string, k Keys, skip func(rel string) bool) ([]Verdict, error) {
	seen := map[string]bool{}
	var out []Verdict
	err := filepath.WalkDir(releasedRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(releasedRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			return nil
		}
		seen[rel] = true
		out = append(out, File(releasedRoot, rebuiltRoot, rel, k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the published release %s: %w", releasedRoot, err)
	}
	err = filepath.WalkDir(rebuiltRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(rebuiltRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if seen[rel] || (skip != nil && skip(rel)) {
			return nil
		}
		out = append(out, Verdict{Path: rel, Status: Extra, How: "made by the rebuild only", Detail: []string{"the published release has no " + rel}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the rebuild %s: %w", rebuiltRoot, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Passed reports whether every verdict is Identical.
func Passed(vs []Verdict) bool {
	for _, v := range vs {
		if v.Status != Identical {
			return false
		}
	}
	return true
}

func missing(rel, how, rebuilt string, err error) Verdict {
	return Verdict{Path: rel, Status: Missing, How: how, Detail: []string{fmt.Sprintf("the rebuild has no %s: %v", rebuilt, err)}}
}

func byteForByte(rel, pub, reb string) Verdict {
	const how = "byte for byte"
	if _, err := os.Stat(reb); err != nil {
		return missing(rel, how, filepath.Base(reb), err)
	}
	same, err := sameFile(pub, reb)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{err.Error()}}
	}
	if same {
		return Verdict{Path: rel, Status: Identical, How: how}
	}
	return Verdict{Path: rel, Status: Differs, How: how, Detail: listing(pub, reb)}
}

func clearSigned(rel, pub, release string, k Keys) Verdict {
	const how = "the text it signs is the rebuilt Release; its signature checked with the archive key"
	msg, err := os.ReadFile(pub)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{err.Error()}}
	}
	want, err := os.ReadFile(release)
	if err != nil {
		return missing(rel, how, "Release", err)
	}
	if k.Archive == nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"no archive public key to check the signature with"}}
	}
	kr, err := pgp.ReadKeyring(k.Archive)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{err.Error()}}
	}
	text, fpr, err := kr.VerifyClearSigned(msg)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"the published signature does not verify: " + err.Error()}}
	}
	if !bytes.Equal(text, want) {
		l, lerr := diff.Bytes("Release", text, want, diff.Options{})
		d := []string{"signs a Release different from the rebuilt one"}
		if lerr == nil {
			d = append(d, l.Lines()...)
		}
		return Verdict{Path: rel, Status: Differs, How: how, Detail: d}
	}
	return Verdict{Path: rel, Status: Identical, How: how + " (" + fpr + ")"}
}

func detached(rel, pub, payload, suffix string, k Keys) Verdict {
	sig, err := os.ReadFile(pub)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: "detached signature", Detail: []string{err.Error()}}
	}
	data, err := os.ReadFile(payload)
	how := "the published signature checked over the rebuilt " + filepath.Base(payload)
	if err != nil {
		return missing(rel, how, filepath.Base(payload), err)
	}
	if suffix == ".sig" {
		how += " with the cosign public key"
		if k.CosignBlob == nil {
			return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"no cosign public key to check the signature with"}}
		}
		if err := k.CosignBlob(data, sig); err != nil {
			return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"does not verify over the rebuilt " + filepath.Base(payload) + ": " + err.Error()}}
		}
		return Verdict{Path: rel, Status: Identical, How: how}
	}
	how += " with the archive key"
	if k.Archive == nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"no archive public key to check the signature with"}}
	}
	kr, err := pgp.ReadKeyring(k.Archive)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{err.Error()}}
	}
	fpr, err := kr.VerifyDetached(bytes.NewReader(data), sig)
	if err != nil {
		return Verdict{Path: rel, Status: Differs, How: how, Detail: []string{"does not verify over the rebuilt " + filepath.Base(payload) + ": " + err.Error()}}
	}
	return Verdict{Path: rel, Status: Identical, How: how + " (" + fpr + ")"}
}

func rpmFile(rel, pub, reb string, k Keys) Verdict {
	const how = "the published signature header on the rebuilt header and payload; the signature checked with the archive key"
	if _, err := os.Stat(reb); err != nil {
		return missing(rel, how, filepath.Base(reb), err)
	}
	fail := func(d ...string) Verdict { return Verdict{Path: rel, Status: Differs, How: how, Detail: d} }
	pb, err := os.ReadFile(pub)
	if err != nil {
		return fail(err.Error())
	}
	rb, err := os.ReadFile(reb)
	if err != nil {
		return fail(err.Error())
	}
	ps, err := HeaderStart(pb)
	if err != nil {
		return fail("the published package: " + err.Error())
	}
	rs, err := HeaderStart(rb)
	if err != nil {
		return fail("the rebuilt package: " + err.Error())
	}
	if k.Archive == nil {
		return fail("no archive public key to check the signature with")
	}
	transplant := append(append([]byte{}, pb[:ps]...), rb[rs:]...)
	if !bytes.Equal(transplant, pb) {
		d := []string{"the rebuilt header and payload differ from what the published signature covers"}
		if !bytes.Equal(pb[:96], rb[:96]) {
			d = append(d, "the leads differ")
		}
		if l, err := diff.Bytes(filepath.Base(rel), pb, transplant, diff.Options{}); err == nil {
			d = append(d, l.Lines()...)
		}
		return fail(d...)
	}
	// Identical bytes: the published signature is then over the rebuilt
	// header and payload; it must verify.
	if err := rpm.CheckSignature(bytes.NewReader(pb), k.Archive); err != nil {
		return fail("the published signature does not verify: " + err.Error())
	}
	return Verdict{Path: rel, Status: Identical, How: how}
}

// HeaderStart is the offset of an rpm's main header: after the 96-byte
// lead and the signature header, padded to 8 bytes.
func HeaderStart(b []byte) (int, error) {
	h, err := rpmhead.ReadSignature(bytes.NewReader(b))
	return int(h.End), err
}

// sameFile compares two files by size and sha256.
func sameFile(a, b string) (bool, error) {
	na, sa, err := fsutil.HashFile(a)
	if err != nil {
		return false, err
	}
	nb, sb, err := fsutil.HashFile(b)
	if err != nil {
		return false, err
	}
	return na == nb && sa == sb, nil
}

func listing(a, b string) []string {
	l, err := diff.Files(a, b, diff.Options{})
	if err != nil {
		return []string{err.Error()}
	}
	return l.Lines()
}

// Sums judges a release's signed checksum list against a rebuild, which
// signs nothing: SHA256SUMS is made again over the rebuilt files the
// published one (in releasedDir) lists and written into rebuiltDir; it
// must be the published one byte for byte, and the published OpenPGP
// (.asc) and cosign (.sig) signatures must verify over it with k. One
// verdict per file, in that order.
func Sums(releasedDir, rebuiltDir string, k Keys) []Verdict {
	fail := func(format string, a ...any) []Verdict {
		return []Verdict{{Path: sbom.SumsName, Status: Differs, How: "made again over the rebuilt files", Detail: []string{fmt.Sprintf(format, a...)}}}
	}
	data, err := os.ReadFile(filepath.Join(releasedDir, sbom.SumsName))
	if err != nil {
		return fail("%v", err)
	}
	sums, err := sbom.ParseSums(data)
	if err != nil {
		return fail("the published %s: %v", sbom.SumsName, err)
	}
	var names []string
	for _, s := range sums {
		names = append(names, s.Name)
	}
	rebuilt, err := sbom.SumFiles(rebuiltDir, names)
	if err != nil {
		return fail("over the rebuilt files: %v", err)
	}
	b, err := sbom.FormatSums(rebuilt)
	if err != nil {
		return fail("over the rebuilt files: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rebuiltDir, sbom.SumsName), b, 0o644); err != nil {
		return fail("over the rebuilt files: %v", err)
	}
	var out []Verdict
	for _, name := range []string{sbom.SumsName, sbom.SumsOpenPGP, sbom.SumsCosign} {
		out = append(out, File(releasedDir, rebuiltDir, name, k))
	}
	return out
}
