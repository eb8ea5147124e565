package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/toolchain"
)

// DefaultBuilderID is the provenance builder.id when Input.BuilderID is empty.
const DefaultBuilderID = "https://github.com/halvm/halvm-release/builders/mage@v1"

// BuildType is the SLSA buildType of a toolchain build: the recipe that the
// provenance's externalParameters parameterise.
const BuildType = "https://github.com/halvm/halvm-release/buildtypes/toolchain/v1"

// RTSWays are the GHC runtime-system ways every HaLVM toolchain builds.
var RTSWays = []string{"v", "p", "thr", "debug", "thr_debug"}

// ProductKinds are the ledger kinds a flavour's documents describe as
// produced artifacts (and the provenance names as its subjects).
var ProductKinds = []pipeline.Kind{pipeline.KindDeb, pipeline.KindRPM, pipeline.KindOCIImage, pipeline.KindOCILayout}

// Input is what one flavour's documents are generated from.
type Input struct {
	Lock    *pins.Lock
	Flavour string
	// Artifacts is the run's ledger (Ledger.Artifacts()). The products of
	// this flavour (ProductKinds with this flavour or no flavour) become
	// artifacts of the SBOMs and subjects of the provenance; the flavour's
	// tree manifest becomes a provenance byproduct. Other kinds are ignored.
	Artifacts []pipeline.Artifact
	// Tree, when not empty, is the manifest of the installed toolchain tree:
	// its files become SPDX files CONTAINed by the toolchain package and
	// CycloneDX file components nested in it.
	Tree []TreeFile
	// BuilderID is the provenance builder.id; DefaultBuilderID when empty.
	BuilderID string
}

// TreeFile is one regular file of an installed toolchain tree.
type TreeFile struct {
	Path   string      // slash-separated, relative to the tree root
	Mode   fs.FileMode // permission bits
	Size   int64
	SHA256 string
}

// Documents are one flavour's generated documents.
type Documents struct {
	SPDX       []byte // SPDX 2.3 JSON
	CycloneDX  []byte // CycloneDX 1.5 JSON
	Provenance []byte // in-toto Statement v1 with a SLSA provenance v1 predicate
}

// Generate makes all three documents of a flavour.
func Generate(in Input) (Documents, error) {
	inv, err := newInventory(in)
	if err != nil {
		return Documents{}, err
	}
	var d Documents
	if d.SPDX, err = inv.spdx(); err != nil {
		return Documents{}, fmt.Errorf("generating SPDX for %s: %w", in.Flavour, err)
	}
	if d.CycloneDX, err = inv.cyclonedx(); err != nil {
		return Documents{}, fmt.Errorf("generating CycloneDX for %s: %w", in.Flavour, err)
	}
	if d.Provenance, err = inv.provenance(); err != nil {
		return Documents{}, fmt.Errorf("generating provenance for %s: %w", in.Flavour, err)
	}
	return d, nil
}

// Classes of items.
const (
	classToolchain = "toolchain"
	classSource    = "source"
	classFile      = "file"
	classDeb       = "deb"
	classArtifact  = "artifact"
	classTree      = "tree"
)

// item is one thing the documents describe, in a format-neutral form.
type item struct {
	key     string // stable reference: CycloneDX bom-ref, provenance name, SPDXID seed
	class   string
	name    string
	version string
	commit  string // sources
	sha256  string // files, debs, artifacts, tree files
	size    int64
	url     string // where it is fetched from
	vcs     string // sources: VCS locator git+<url>@<commit>
	purl    string
	license string // SPDX expression, "" unknown
	role    string // files and debs
	parent  string // sources: key of the source holding the gitlink
	path    string // sources: path in the superproject; tree: path in the tree
	mode    fs.FileMode
	kind    pipeline.Kind // artifacts
	pending string        // files whose digest is not pinned yet
	note    string
}

// inventory is everything a flavour's documents say, computed once from
// the inputs; the three renderers and Check all work from it.
type inventory struct {
	release    pins.Release
	flavour    pins.Flavour
	builderID  string
	lockDigest string // sha256 of the canonical lock
	root       item   // the toolchain of this flavour
	sources    []item
	files      []item
	debs       []item
	artifacts  []item
	byproducts []item
	tree       []item
}

func (inv *inventory) epoch() time.Time { return inv.release.Epoch() }

var (
	hex64RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	githubRE = regexp.MustCompile(`^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(\.git)?/?$`)
)

func newInventory(in Input) (*inventory, error) {
	if in.Lock == nil {
		return nil, errors.New("sbom: no lock given")
	}
	l := in.Lock
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	fl, ok := l.Flavour(in.Flavour)
	if !ok {
		var names []string
		for _, f := range l.Flavours {
			names = append(names, f.Name)
		}
		bad("sbom: flavour %q is not in the lock (want one of %s)", in.Flavour, strings.Join(names, ", "))
	}
	inv := &inventory{release: l.Release, flavour: fl, builderID: in.BuilderID}
	if inv.builderID == "" {
		inv.builderID = DefaultBuilderID
	}
	sum := sha256.Sum256(pins.Bytes(l))
	inv.lockDigest = hex.EncodeToString(sum[:])
	inv.root = item{key: "toolchain/" + in.Flavour, class: classToolchain, name: in.Flavour, version: l.Release.Version,
		url: l.Release.Homepage, license: l.Release.License, note: fl.Description}

	for _, s := range l.Sources {
		it := item{key: "source/" + s.Name, class: classSource, name: s.Name, version: s.Commit, commit: s.Commit,
			url: s.URL, vcs: vcsLocator(s.URL, s.Commit), purl: sourcePURL(s), license: s.License, path: s.Path, note: s.Note}
		if s.Parent != "" {
			it.parent = "source/" + s.Parent
		}
		inv.sources = append(inv.sources, it)
	}
	for _, f := range l.Files {
		inv.files = append(inv.files, item{key: "file/" + f.Name, class: classFile, name: f.Name, version: f.Version,
			sha256: f.SHA256, size: f.Size, url: f.URL, purl: filePURL(f), role: f.Role, pending: f.Pending})
	}
	for _, d := range l.Debs {
		inv.debs = append(inv.debs, item{key: debKey(d), class: classDeb, name: d.Name, version: d.Version,
			sha256: d.SHA256, size: d.Size, url: d.Archive + ":" + d.Filename, purl: debPURL(d, l.Release.Suite), role: d.Role})
	}

	seen := map[string]bool{}
	for i, a := range in.Artifacts {
		if a.Flavour != "" && a.Flavour != in.Flavour {
			continue
		}
		isProduct := containsKind(ProductKinds, a.Kind)
		if !isProduct && !(a.Kind == pipeline.KindTreeManifest && a.Flavour == in.Flavour) {
			continue
		}
		where := fmt.Sprintf("sbom: ledger artifact %d (%s %s)", i, a.Kind, a.Name)
		if a.Name == "" {
			bad("%s: has no name", where)
		}
		if !hex64RE.MatchString(a.SHA256) {
			bad("%s: sha256 %q is not 64 lower-case hex characters", where, a.SHA256)
		}
		// Products are named by their file (halvm_2.4.3-1_amd64.deb and
		// halvm-2.4.3-1.x86_64.rpm are both package "halvm").
		name := a.Name
		if a.Path != "" && isProduct {
			name = path.Base(filepath.ToSlash(a.Path))
		}
		it := item{key: artifactKey(a), class: classArtifact, name: name, sha256: a.SHA256, size: a.Size, kind: a.Kind, path: a.Path}
		if seen[it.key] {
			bad("%s: recorded twice (once without a flavour): give the shared artifact a distinct name", where)
		}
		seen[it.key] = true
		if isProduct {
			inv.artifacts = append(inv.artifacts, it)
		} else {
			inv.byproducts = append(inv.byproducts, it)
		}
	}

	seenPath := map[string]bool{}
	for i, t := range in.Tree {
		where := fmt.Sprintf("sbom: tree manifest entry %d (%s)", i, t.Path)
		if t.Path == "" || path.IsAbs(t.Path) || path.Clean(t.Path) != t.Path || t.Path == "." || strings.HasPrefix(t.Path, "../") {
			bad("%s: want a clean relative slash-separated path", where)
		}
		if seenPath[t.Path] {
			bad("%s: listed twice", where)
		}
		seenPath[t.Path] = true
		if !hex64RE.MatchString(t.SHA256) {
			bad("%s: sha256 %q is not 64 lower-case hex characters", where, t.SHA256)
		}
		if t.Size < 0 {
			bad("%s: negative size %d", where, t.Size)
		}
		inv.tree = append(inv.tree, item{key: "tree/" + t.Path, class: classTree, name: t.Path, path: t.Path,
			sha256: t.SHA256, size: t.Size, mode: t.Mode.Perm()})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, list := range [][]item{inv.sources, inv.files, inv.debs, inv.artifacts, inv.byproducts, inv.tree} {
		sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	}
	return inv, nil
}

func containsKind(list []pipeline.Kind, k pipeline.Kind) bool {
	for _, v := range list {
		if v == k {
			return true
		}
	}
	return false
}

func debKey(d pins.Deb) string { return "deb/" + d.Role + "/" + d.Name + ":" + d.Arch }

func artifactKey(a pipeline.Artifact) string { return "artifact/" + string(a.Kind) + "/" + a.Name }

// vcsLocator is the SPDX VCS locator of a commit: git+<url>@<commit>.
func vcsLocator(u, commit string) string {
	if strings.HasPrefix(u, "git://") {
		return u + "@" + commit
	}
	return "git+" + strings.TrimSuffix(u, "/") + "@" + commit
}

// sourcePURL is pkg:github/<owner>/<repo>@<commit> for GitHub repositories
// and pkg:generic/<name>@<commit>?vcs_url=... for any other.
func sourcePURL(s pins.Source) string {
	if m := githubRE.FindStringSubmatch(s.URL); m != nil {
		return "pkg:github/" + purlEscape(m[1]) + "/" + purlEscape(m[2]) + "@" + s.Commit
	}
	return "pkg:generic/" + purlEscape(s.Name) + "@" + s.Commit + "?vcs_url=" + purlEscape(vcsLocator(s.URL, s.Commit))
}

func filePURL(f pins.File) string {
	q := []string{}
	if f.SHA256 != "" {
		q = append(q, "checksum="+purlEscape("sha256:"+f.SHA256))
	}
	q = append(q, "download_url="+purlEscape(f.URL))
	return "pkg:generic/" + purlEscape(f.Name) + "@" + purlEscape(f.Version) + "?" + strings.Join(q, "&")
}

func debPURL(d pins.Deb, suite string) string {
	p := "pkg:deb/debian/" + purlEscape(d.Name) + "@" + purlEscape(d.Version) + "?arch=" + purlEscape(d.Arch)
	if suite != "" {
		p += "&distro=" + purlEscape(suite)
	}
	return p
}

// purlEscape percent-encodes everything but RFC 3986 unreserved characters,
// as the purl specification asks for names, versions and qualifier values.
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// purlVersion returns the decoded version of a purl ("" when it has none).
func purlVersion(p string) string {
	rest, _, _ := strings.Cut(p, "?")
	rest, _, _ = strings.Cut(rest, "#")
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return ""
	}
	v, err := url.PathUnescape(rest[i+1:])
	if err != nil {
		return rest[i+1:]
	}
	return v
}

// spdxID turns a key into an SPDX element ID (without the SPDXRef- prefix).
// Only letters, digits, '.' and '-' are allowed: the class separator (the
// first '/') becomes '-', and when anything else had to be replaced a short
// hash of the key is appended so that IDs stay unique.
func spdxID(key string) string {
	class, rest, _ := strings.Cut(key, "/")
	var b strings.Builder
	b.WriteString(class)
	b.WriteByte('-')
	changed := false
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('-')
		changed = true
	}
	if changed {
		sum := sha256.Sum256([]byte(key))
		b.WriteString("-" + hex.EncodeToString(sum[:4]))
	}
	return b.String()
}

// ReadTree reads the regular files of the toolchain tree manifest at path
// (toolchain.ReadManifestFile), as the SBOM lists them.
func ReadTree(path string) ([]TreeFile, error) {
	files, err := toolchain.ReadManifestFile(path)
	if err != nil {
		return nil, err
	}
	tree := make([]TreeFile, 0, len(files))
	for _, e := range files {
		tree = append(tree, TreeFile{Path: e.Path, Mode: e.Mode, Size: e.Size, SHA256: e.SHA256})
	}
	return tree, nil
}
