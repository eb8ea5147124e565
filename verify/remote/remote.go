// Package remote fetches a published release over HTTP for a rebuild from
// its URL alone (`go run mage.go rebuild <URL>`), trusting nothing it
// downloads until it is checked: the archive keyring is accepted only
// when it holds the fingerprint the user gives, SHA256SUMS only when its
// OpenPGP signature (and, given the cosign public key, its cosign
// signature) verifies, and the lock only when SHA256SUMS lists it with
// its digest. Anything else that fails these checks is refused before any
// build. Then Compare judges every published artifact against the
// rebuild, keyless (verify/signed), IDENTICAL or DIFFERS.
package remote

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
)

// KeyringFile is the archive keyring at the apt repository's root.
const KeyringFile = "halvm-archive-keyring.gpg"

// Options say what to fetch and what to trust.
type Options struct {
	// URL is the release's files directory as published:
	// <base>/files/<version>-<release>/ (the repositories are <base>/apt/
	// and <base>/dnf/).
	URL string
	// Fingerprints are the archive key fingerprints the published
	// keyring must hold (upper-case hex; spaces and case are ignored).
	Fingerprints []string
	// CosignKey is the release's cosign public key (PEM); nil: the
	// cosign signature of SHA256SUMS is not checked (and says so).
	CosignKey []byte
	// Dir receives the download: Dir/files/<id>/, Dir/apt/, Dir/dnf/.
	Dir string
	// Client fetches; nil is a client with a 60 s timeout per request.
	Client *http.Client
	// Log receives one line per step; nil discards.
	Log io.Writer
}

// Release is a published release fetched and checked.
type Release struct {
	Base     string // the publish root URL, without a trailing /
	ID       string // <version>-<release>
	Release  string // <release>
	Keyring  []byte // the published archive keyring, checked
	Files    string // local copy of files/<id>/
	Apt, Dnf string // local copies of the served publications ("" when not published)
	Sums     []sbom.Sum
	SumsSHA  string // sha256 of SHA256SUMS
	Lock     string // local path of the lock, its digest checked
	Notes    []string
}

// ParseURL splits a release URL <base>/files/<version>-<release>/ into
// its base and id.
func ParseURL(raw string) (base, id string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("release URL %q: want http(s)://<host>/<prefix>/files/<version>-<release>/", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	i := strings.LastIndex(p, "/files/")
	if i < 0 || strings.Contains(p[i+len("/files/"):], "/") || !strings.Contains(p[i+len("/files/"):], "-") {
		return "", "", fmt.Errorf("release URL %q: want .../files/<version>-<release>/ (the release's files directory, as the release's verification summary names it)", raw)
	}
	id = p[i+len("/files/"):]
	u.Path = p[:i]
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), id, nil
}

// NormalizeFingerprint is f in upper-case hex without spaces.
func NormalizeFingerprint(f string) string {
	return strings.ToUpper(strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(f), "0x")), ""))
}

type fetcher struct {
	o Options
	c *http.Client
}

func (f fetcher) logf(format string, a ...any) {
	if f.o.Log != nil {
		fmt.Fprintf(f.o.Log, "rebuild: "+format+"\n", a...)
	}
}

// get downloads u into dst (created), returning its bytes.
func (f fetcher) get(ctx context.Context, u, dst string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	if dst != "" {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Fetch downloads the release at o.URL and checks it; an error means
// nothing may be built from it.
func Fetch(ctx context.Context, o Options) (*Release, error) {
	base, id, err := ParseURL(o.URL)
	if err != nil {
		return nil, err
	}
	f := fetcher{o: o, c: o.Client}
	if f.c == nil {
		f.c = &http.Client{Timeout: 60 * time.Second}
	}
	r := &Release{Base: base, ID: id, Release: id[strings.LastIndexByte(id, '-')+1:]}
	refuse := func(err error) (*Release, error) {
		return nil, fmt.Errorf("refusing to rebuild %s: %w", o.URL, err)
	}
	// 1. The keyring, by fingerprint.
	if len(o.Fingerprints) == 0 {
		return refuse(errors.New("no archive key fingerprint to check the published keyring against: set HALVM_PGP_FINGERPRINT (or HALVM_PGP_PUBLIC_KEY_FILE, the pinned key)"))
	}
	kb, err := f.get(ctx, base+"/apt/"+KeyringFile, "")
	if err != nil {
		return refuse(err)
	}
	kr, err := pgp.ReadKeyring(kb)
	if err != nil {
		return refuse(fmt.Errorf("the published keyring %s/apt/%s: %w", base, KeyringFile, err))
	}
	have := map[string]bool{}
	for _, fp := range kr.Fingerprints() {
		have[fp] = true
	}
	for _, want := range o.Fingerprints {
		if !have[NormalizeFingerprint(want)] {
			return refuse(fmt.Errorf("the published keyring %s/apt/%s holds %s, not the fingerprint you gave (%s): it is not the archive key you trust",
				base, KeyringFile, strings.Join(kr.Fingerprints(), ", "), NormalizeFingerprint(want)))
		}
	}
	r.Keyring = kb
	f.logf("the published keyring holds %s, the fingerprint given", strings.Join(kr.Fingerprints(), ", "))
	// 2. SHA256SUMS and its signatures.
	r.Files = filepath.Join(o.Dir, "files", id)
	furl := base + "/files/" + id + "/"
	sums, err := f.get(ctx, furl+sbom.SumsName, filepath.Join(r.Files, sbom.SumsName))
	if err != nil {
		return refuse(err)
	}
	asc, err := f.get(ctx, furl+sbom.SumsOpenPGP, filepath.Join(r.Files, sbom.SumsOpenPGP))
	if err != nil {
		return refuse(err)
	}
	fpr, err := kr.VerifyDetached(bytes.NewReader(sums), asc)
	if err != nil {
		return refuse(fmt.Errorf("%s%s does not verify over %s with the archive key: %w", furl, sbom.SumsOpenPGP, sbom.SumsName, err))
	}
	f.logf("%s%s: good signature by %s", furl, sbom.SumsName, fpr)
	sig, err := f.get(ctx, furl+sbom.SumsCosign, filepath.Join(r.Files, sbom.SumsCosign))
	switch {
	case err != nil && o.CosignKey != nil:
		return refuse(err)
	case o.CosignKey != nil:
		if err := cosign.VerifyBlob(o.CosignKey, sums, sig); err != nil {
			return refuse(fmt.Errorf("%s%s does not verify over %s with the cosign public key: %w", furl, sbom.SumsCosign, sbom.SumsName, err))
		}
		f.logf("%s%s: good cosign signature", furl, sbom.SumsCosign)
	default:
		r.Notes = append(r.Notes, "the cosign signature of SHA256SUMS was not checked: no cosign public key given (HALVM_COSIGN_PUBLIC_KEY_FILE)")
	}
	h := sha256.Sum256(sums)
	r.SumsSHA = hex.EncodeToString(h[:])
	if r.Sums, err = sbom.ParseSums(sums); err != nil {
		return refuse(fmt.Errorf("%s%s: %w", furl, sbom.SumsName, err))
	}
	// 3. Every listed file; the lock must be the one listed.
	for _, s := range r.Sums {
		b, err := f.get(ctx, furl+s.Name, filepath.Join(r.Files, filepath.FromSlash(s.Name)))
		if err != nil {
			return refuse(err)
		}
		if s.Name == sbom.LockPath {
			if got := sha256Hex(b); got != s.SHA256 {
				return refuse(fmt.Errorf("the lock %s%s is sha256 %s, the signed %s says %s", furl, s.Name, got, sbom.SumsName, s.SHA256))
			}
			r.Lock = filepath.Join(r.Files, filepath.FromSlash(s.Name))
		}
	}
	if r.Lock == "" {
		return refuse(fmt.Errorf("the signed %s%s lists no %s: nothing says what the release was built from", furl, sbom.SumsName, sbom.LockPath))
	}
	f.logf("%d files of %s%s downloaded", len(r.Sums), furl, sbom.SumsName)
	// 4. The repositories users are served.
	if r.Apt, err = fetchApt(ctx, f, base+"/apt/", filepath.Join(o.Dir, "apt"), kr); err != nil {
		return refuse(err)
	}
	if r.Dnf, err = fetchDnf(ctx, f, base+"/dnf/", filepath.Join(o.Dir, "dnf"), kr); err != nil {
		return refuse(err)
	}
	return r, nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// publication is where a served repository is copied: root/publications/
// served, with root/current pointing at it, as a publish root.
func publication(root string) (string, error) {
	dir := filepath.Join(root, "publications", "served")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(filepath.Join("publications", "served"), filepath.Join(root, "current")); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return dir, nil
}

// fetchApt copies the served apt repository: the root files, the suite's
// InRelease (its signature checked: a publication that does not verify is
// refused), Release and Release.gpg, every index the Release lists and
// every package those name.
func fetchApt(ctx context.Context, f fetcher, u, root string, kr *pgp.Keyring) (string, error) {
	dir, err := publication(root)
	if err != nil {
		return "", err
	}
	for _, n := range []string{KeyringFile, "halvm-archive-keyring.asc", "halvm.sources"} {
		if _, err := f.get(ctx, u+n, filepath.Join(dir, n)); err != nil {
			return "", err
		}
	}
	in, err := f.get(ctx, u+"dists/stable/InRelease", filepath.Join(dir, "dists", "stable", "InRelease"))
	if err != nil {
		return "", err
	}
	text, _, err := kr.VerifyClearSigned(in)
	if err != nil {
		return "", fmt.Errorf("%sdists/stable/InRelease does not verify with the archive key: %w", u, err)
	}
	for _, n := range []string{"Release", "Release.gpg"} {
		if _, err := f.get(ctx, u+"dists/stable/"+n, filepath.Join(dir, "dists", "stable", n)); err != nil {
			return "", err
		}
	}
	var pkgs []string
	byHash := strings.Contains(string(text), "\nAcquire-By-Hash: yes\n")
	for _, idx := range releaseFiles(text) {
		b, err := f.get(ctx, u+"dists/stable/"+idx.path, filepath.Join(dir, "dists", "stable", filepath.FromSlash(idx.path)))
		if err != nil {
			return "", err
		}
		if byHash {
			// apt fetches the index by its digest: the copy is published too.
			h := path.Join(path.Dir(idx.path), "by-hash", "SHA256", idx.sha256)
			// Not every index need have one: what the rebuild made and was
			// not published shows as EXTRA.
			_, _ = f.get(ctx, u+"dists/stable/"+h, filepath.Join(dir, "dists", "stable", filepath.FromSlash(h)))
		}
		if path.Base(idx.path) == "Packages" {
			pkgs = append(pkgs, fieldValues(b, "Filename")...)
		}
	}
	for _, p := range dedup(pkgs) {
		if _, err := f.get(ctx, u+p, filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return "", err
		}
	}
	f.logf("apt: %d packages of %s (InRelease verified)", len(dedup(pkgs)), u)
	return dir, nil
}

// indexFile is an index an apt Release lists.
type indexFile struct{ path, sha256 string }

// releaseFiles are the indexes the SHA256 section of an apt Release lists.
func releaseFiles(release []byte) []indexFile {
	var out []indexFile
	seen := map[string]bool{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(release))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, " ") {
			in = strings.TrimSpace(l) == "SHA256:"
			continue
		}
		if f := strings.Fields(l); in && len(f) == 3 && !strings.Contains(f[2], "..") && !seen[f[2]] && len(f[0]) == 64 && strings.Trim(f[0], "0123456789abcdef") == "" {
			seen[f[2]] = true
			out = append(out, indexFile{path: f[2], sha256: f[0]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// fieldValues are the values of a deb822 field in every paragraph.
func fieldValues(b []byte, field string) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			if v = strings.TrimSpace(v); v != "" && !strings.Contains(v, "..") {
				out = append(out, v)
			}
		}
	}
	return out
}

var hrefRE = regexp.MustCompile(`<(?:[a-z]+:)?location[^>]*\shref="([^"]+)"`)

// fetchDnf copies the served dnf repository: the root files, repomd.xml
// (its signature checked: refused when it does not verify), every
// metadata file it lists and every package the primary names.
func fetchDnf(ctx context.Context, f fetcher, u, root string, kr *pgp.Keyring) (string, error) {
	dir, err := publication(root)
	if err != nil {
		return "", err
	}
	for _, n := range []string{"halvm.repo", "RPM-GPG-KEY-halvm"} {
		if _, err := f.get(ctx, u+n, filepath.Join(dir, n)); err != nil {
			return "", err
		}
	}
	md, err := f.get(ctx, u+"repodata/repomd.xml", filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		return "", err
	}
	asc, err := f.get(ctx, u+"repodata/repomd.xml.asc", filepath.Join(dir, "repodata", "repomd.xml.asc"))
	if err != nil {
		return "", err
	}
	if _, err := kr.VerifyDetached(bytes.NewReader(md), asc); err != nil {
		return "", fmt.Errorf("%srepodata/repomd.xml.asc does not verify with the archive key: %w", u, err)
	}
	var pkgs []string
	for _, m := range hrefRE.FindAllSubmatch(md, -1) {
		href := string(m[1])
		if strings.Contains(href, "..") {
			continue
		}
		b, err := f.get(ctx, u+href, filepath.Join(dir, filepath.FromSlash(href)))
		if err != nil {
			return "", err
		}
		if strings.HasSuffix(href, "-primary.xml.gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return "", fmt.Errorf("%s%s: %w", u, href, err)
			}
			x, err := io.ReadAll(zr)
			if err != nil {
				return "", fmt.Errorf("%s%s: %w", u, href, err)
			}
			for _, p := range hrefRE.FindAllSubmatch(x, -1) {
				if s := string(p[1]); !strings.Contains(s, "..") {
					pkgs = append(pkgs, s)
				}
			}
		}
	}
	for _, p := range dedup(pkgs) {
		if _, err := f.get(ctx, u+p, filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return "", err
		}
	}
	f.logf("dnf: %d packages of %s (repomd.xml verified)", len(dedup(pkgs)), u)
	return dir, nil
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}
