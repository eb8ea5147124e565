package debian

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/halvm/halvm-release/internal/pgp"
)

// Verify checks a repository tree as apt would trust it, and more: for every
// dists/<suite>, InRelease and Release.gpg are signed by a key in pubkey
// (binary or armored) and sign exactly Release; every index Release lists
// has that size and SHA256, and so has its by-hash copy; no index is
// unlisted; Packages.gz and .xz hold Packages; every package in Packages
// exists in the pool with its recorded size and SHA256 and its control data
// names the same package; by-hash files of older generations match their
// names; the keyring published at the root holds the
// same key. All problems are reported together.
func Verify(dir string, pubkey []byte) (*Result, error) {
	kr, err := pgp.ReadKeyring(pubkey)
	if err != nil {
		return nil, fmt.Errorf("verifying apt repository %s: %w", dir, err)
	}
	v := &verifier{root: dir, kr: kr}
	res := v.run()
	if len(v.problems) > 0 {
		return nil, fmt.Errorf("verifying apt repository %s: %d problem(s):\n  %s", dir, len(v.problems), strings.Join(v.problems, "\n  "))
	}
	return res, nil
}

type verifier struct {
	root     string
	kr       *pgp.Keyring
	problems []string
}

func (v *verifier) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, p := range v.problems {
		if p == msg {
			return
		}
	}
	v.problems = append(v.problems, msg)
}

func (v *verifier) read(rel string) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join(v.root, filepath.FromSlash(rel)))
	if err != nil {
		v.fail("%s: %v", rel, err)
		return nil, false
	}
	return b, true
}

func (v *verifier) run() *Result {
	res := &Result{}
	trusted := v.kr.Fingerprints()
	sort.Strings(trusted)
	if len(trusted) > 0 {
		res.Fingerprint = trusted[0]
	}
	v.checkPublishedKeys(trusted)

	suites, err := os.ReadDir(filepath.Join(v.root, "dists"))
	if err != nil {
		v.fail("dists: %v", err)
		return res
	}
	if len(suites) == 0 {
		v.fail("dists: no suites")
	}
	seen := map[string]bool{}
	for _, s := range suites {
		if !s.IsDir() {
			v.fail("dists/%s: not a directory", s.Name())
			continue
		}
		for _, p := range v.suite(path.Join("dists", s.Name())) {
			if !seen[p.Filename] {
				seen[p.Filename] = true
				res.Packages = append(res.Packages, p)
			}
		}
	}
	_ = filepath.WalkDir(v.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(v.root, p)
			res.Files = append(res.Files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(res.Files)
	return res
}

// checkPublishedKeys: every *-archive-keyring.{gpg,asc} at the root must
// hold trusted keys only, or users would install a different key. (With
// one trusted key, the archive's, that is exactly that key; a rebuild also
// trusts the throwaway key it signs what differs with, which it never
// publishes.)
func (v *verifier) checkPublishedKeys(trusted []string) {
	ents, _ := os.ReadDir(v.root)
	found := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), "-archive-keyring.gpg") && !strings.HasSuffix(e.Name(), "-archive-keyring.asc") {
			continue
		}
		found++
		b, ok := v.read(e.Name())
		if !ok {
			continue
		}
		kr, err := pgp.ReadKeyring(b)
		if err != nil {
			v.fail("%s: %v", e.Name(), err)
			continue
		}
		got := kr.Fingerprints()
		sort.Strings(got)
		for _, fp := range got {
			if !slices.Contains(trusted, fp) {
				v.fail("%s: holds key(s) %v, the trusted key is %v: republish the archive key", e.Name(), got, trusted)
				break
			}
		}
	}
	if found == 0 {
		v.fail("no *-archive-keyring.gpg at the repository root: users cannot fetch the key")
	}
}

type sum struct {
	hash string
	size int64
}

func (v *verifier) suite(dir string) []Package {
	release, ok := v.read(path.Join(dir, "Release"))
	if !ok {
		return nil
	}
	if sig, ok := v.read(path.Join(dir, "Release.gpg")); ok {
		if _, err := v.kr.VerifyDetached(bytes.NewReader(release), sig); err != nil {
			v.fail("%s/Release.gpg: %v", dir, err)
		}
	}
	if in, ok := v.read(path.Join(dir, "InRelease")); ok {
		text, _, err := v.kr.VerifyClearSigned(in)
		switch {
		case err != nil:
			v.fail("%s/InRelease: %v", dir, err)
		case !bytes.Equal(text, release):
			v.fail("%s/InRelease: signs a text different from Release", dir)
		}
	}
	paras, err := ParseParagraphs(release)
	if err != nil || len(paras) != 1 {
		v.fail("%s/Release: not one deb822 paragraph (%v)", dir, err)
		return nil
	}
	rel := paras[0]
	for _, f := range []string{"Origin", "Label", "Suite", "Codename", "Date", "Architectures", "Components", "SHA256"} {
		if !rel.Has(f) {
			v.fail("%s/Release: no %s field", dir, f)
		}
	}
	if s, c := rel.Get("Suite"), rel.Get("Codename"); path.Base(dir) != s && path.Base(dir) != c {
		v.fail("%s/Release: Suite %q / Codename %q do not name the directory", dir, s, c)
	}
	byHash := strings.EqualFold(rel.Get("Acquire-By-Hash"), "yes")

	sums := map[string]sum{}
	for _, line := range strings.Split(rel.Get("SHA256"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || len(f[0]) != 64 || !isCleanRel(f[2]) {
			v.fail("%s/Release: bad SHA256 line %q", dir, strings.TrimSpace(line))
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			v.fail("%s/Release: bad size in SHA256 line %q", dir, strings.TrimSpace(line))
			continue
		}
		sums[f[2]] = sum{f[0], n}
	}
	if len(sums) == 0 {
		v.fail("%s/Release: lists no index files", dir)
	}
	hashes := map[string]bool{} // dir/hash of every listed index
	for name, s := range sums {
		hashes[path.Join(path.Dir(name), s.hash)] = true
		v.checkFile(path.Join(dir, name), s)
		if byHash {
			v.checkFile(path.Join(dir, path.Dir(name), "by-hash", "SHA256", s.hash), s)
		}
	}
	// Every file under the suite is signed for, or a by-hash copy.
	_ = filepath.WalkDir(filepath.Join(v.root, filepath.FromSlash(dir)), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Join(v.root, filepath.FromSlash(dir)), p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == "Release" || rel == "InRelease" || rel == "Release.gpg":
		case path.Base(path.Dir(rel)) == "SHA256" && path.Base(path.Dir(path.Dir(rel))) == "by-hash":
			if hashes[path.Join(path.Dir(path.Dir(path.Dir(rel))), path.Base(rel))] {
				return nil // checked above
			}
			// An older generation's index, kept for clients mid-update:
			// content-addressed, so it must match its name.
			b, err := os.ReadFile(p)
			sum := sha256.Sum256(b)
			if err != nil || hex.EncodeToString(sum[:]) != path.Base(rel) {
				v.fail("%s/%s: by-hash file does not match its name (%v)", dir, rel, err)
			}
		default:
			if _, listed := sums[rel]; !listed {
				v.fail("%s/%s: not listed in Release (unsigned)", dir, rel)
			}
		}
		return nil
	})

	var pkgs []Package
	var names []string
	for name := range sums {
		if path.Base(name) == "Packages" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		pkgs = append(pkgs, v.packages(dir, name, sums)...)
	}
	return pkgs
}

func isCleanRel(p string) bool { return fs.ValidPath(p) && p != "." }

func (v *verifier) checkFile(rel string, want sum) ([]byte, bool) {
	b, ok := v.read(rel)
	if !ok {
		return nil, false
	}
	h := sha256.Sum256(b)
	if got := hex.EncodeToString(h[:]); got != want.hash || int64(len(b)) != want.size {
		v.fail("%s: sha256 %s size %d, Release says %s size %d (hash sum mismatch)", rel, got, len(b), want.hash, want.size)
		return nil, false
	}
	return b, true
}

func (v *verifier) packages(dir, name string, sums map[string]sum) []Package {
	idx, ok := v.checkFile(path.Join(dir, name), sums[name])
	if !ok {
		return nil
	}
	for ext, dec := range map[string]func(io.Reader) (io.Reader, error){
		".gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		".xz": func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
	} {
		s, listed := sums[name+ext]
		if !listed {
			continue
		}
		b, ok := v.checkFile(path.Join(dir, name+ext), s)
		if !ok {
			continue
		}
		r, err := dec(bytes.NewReader(b))
		var plain []byte
		if err == nil {
			plain, err = io.ReadAll(r)
		}
		if err != nil || !bytes.Equal(plain, idx) {
			v.fail("%s/%s%s: does not decompress to %s (%v)", dir, name, ext, name, err)
		}
	}
	paras, err := ParseParagraphs(idx)
	if err != nil {
		v.fail("%s/%s: %v", dir, name, err)
		return nil
	}
	var pkgs []Package
	for _, p := range paras {
		pkg := Package{Name: p.Get("Package"), Version: p.Get("Version"), Architecture: p.Get("Architecture"), Filename: p.Get("Filename"), SHA256: p.Get("SHA256")}
		where := fmt.Sprintf("%s/%s: %s", dir, name, pkg.ID())
		size, err := strconv.ParseInt(p.Get("Size"), 10, 64)
		if err != nil || !isCleanRel(pkg.Filename) || len(pkg.SHA256) != 64 {
			v.fail("%s: bad Filename/Size/SHA256 fields", where)
			continue
		}
		pkg.Size = size
		if pkg.Architecture != Architecture && pkg.Architecture != "all" {
			v.fail("%s: architecture %q in the %s index", where, pkg.Architecture, Architecture)
		}
		f, err := os.Open(filepath.Join(v.root, filepath.FromSlash(pkg.Filename)))
		if err != nil {
			v.fail("%s: %v", where, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		var ctl Paragraph
		if err == nil {
			ctl, err = ReadControl(f)
		}
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != pkg.SHA256 || n != size {
			v.fail("%s: %s has sha256 %s size %d, Packages says %s size %d (hash sum mismatch)", where, pkg.Filename, got, n, pkg.SHA256, size)
			continue
		}
		if err != nil {
			v.fail("%s: %s: %v", where, pkg.Filename, err)
			continue
		}
		if ctl.Get("Package") != pkg.Name || ctl.Get("Version") != pkg.Version || ctl.Get("Architecture") != pkg.Architecture {
			v.fail("%s: %s's control says %s_%s_%s", where, pkg.Filename, ctl.Get("Package"), ctl.Get("Version"), ctl.Get("Architecture"))
		}
		pkgs = append(pkgs, pkg)
	}
	return pkgs
}
