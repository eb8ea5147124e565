// Package sources owns fetching and verifying the pinned inputs of a
// release: the git superproject and every pinned submodule at its pinned
// commit (never a branch), the downloaded files (bootstrap compiler,
// tools) and the Debian packages of the lock, each checked against its pin
// before anything uses it.
//
// Everything goes through a content-addressed cache: git objects in one
// bare repository per source (<cache>/git/<name>.git, a fetched commit kept
// under refs/pins/<commit>), files and packages under
// <cache>/sha256/<hex>. A second fetch of the same pins makes no network
// access. A mirror (a directory laid out by ExportMirror, or URL prefix
// mappings) makes the fetch work air-gapped.
//
// The checked-out tree has the layout `git submodule update --init
// --recursive` gives: the superproject's .git is a directory, every pinned
// submodule's .git is a file pointing (relatively) into the parent's
// .git/modules/, HEADs detached at the pinned commits, submodule URLs set
// to the lock's working URLs. Excluded submodules stay empty directories.
// Repositories are shallow (depth 1): the build needs the pinned trees, not
// their history, and GHC's history is large.
//
// Each verified input is recorded in the ledger as a pipeline.KindSource
// artifact named like the selectors of pins:update: git:<source> (Path is
// the SPDX-style download location git+<url>@<commit>, Commit the pinned
// commit, no size or sha256),
// file:<name> (Path the lock's URL, Size, SHA256) and
// deb:<name>_<version>_<arch> (Path <archive>/<pool filename>, Size, SHA256).
package sources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/pins"
)

// Options of a fetch.
type Options struct {
	// CacheDir is the content-addressed cache (required).
	CacheDir string
	// MirrorDir, when set, is the only place inputs come from (air-gapped):
	// git/<source name>.git, files/<file name from its URL>,
	// <archive>/<pool filename> for Debian packages. ExportMirror writes one.
	MirrorDir string
	// MirrorMap rewrites URL prefixes (longest match wins) of every git URL,
	// file URL and Debian archive URI before it is fetched, e.g.
	// https://github.com/ -> file:///srv/mirror/github/.
	MirrorMap []pins.Rewrite
	// DebArchives maps a Debian archive ("debian", "debian-security") to its
	// base URI. Nil means: read this machine's apt configuration below
	// AptRoot ("" is "/").
	DebArchives map[string]string
	AptRoot     string
	// Ledger, when set, receives a KindSource artifact per verified input.
	Ledger *pipeline.Ledger
	// HTTPClient is used for http(s) downloads; nil is a default client
	// (no overall timeout: the context bounds a download).
	HTTPClient *http.Client
	// RefuseGaps (an official release) refuses a lock with any pending
	// pin before anything is fetched.
	RefuseGaps bool
	// Registry, when set, is the shared input cache (HALVM_CACHE_REGISTRY)
	// behind CacheDir: a file or package missing locally is pulled from it
	// by sha256 (and verified like a download) before any download, and
	// every verified download is pushed to it.
	Registry *regcache.Cache
}

// Result is what a fetch produced.
type Result struct {
	Tree    string // the checked-out source tree ("" when no tree was asked for)
	Sources []SourceResult
	Files   []FileResult
	Debs    []FileResult
}

// SourceResult is one checked-out git source.
type SourceResult struct {
	Name   string
	Path   string // relative to the tree
	URL    string // the lock's working URL
	Commit string
	Cached bool // no network access was needed
}

// FileResult is one verified file in the cache.
type FileResult struct {
	Name   string // lock name (files) or name_version_arch (debs)
	Path   string // absolute path in the cache: <cache>/sha256/<hex>
	URL    string // where it came from (after mirror mapping)
	Size   int64
	SHA256 string
	Cached bool
}

// LedgerName is the name an input is recorded under in the ledger, the
// same selector `pins:update` takes: git:<source>, file:<name>,
// deb:<name>_<version>_<arch>.
func LedgerName(kind, name string) string { return kind + ":" + name }

// DebName is a Debian package's name in results and the ledger.
func DebName(d pins.Deb) string { return d.Name + "_" + d.Version + "_" + d.Arch }

// FetchLockFile loads the lock at lockPath (reporting every problem of a
// malformed lock at once) and fetches everything it pins, see Fetch.
func FetchLockFile(ctx context.Context, lockPath, dest string, o Options) (*Result, error) {
	l, err := pins.LoadFile(lockPath)
	if err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	return Fetch(ctx, l, dest, o)
}

// Fetch fetches and verifies every input of the lock it can: first the
// source tree (every git source, checked out at dest, which must not exist
// yet), then the files and Debian packages into the cache, smallest first.
// A gap (a pending pin, an input the mirror or upstream does not have)
// blocks only itself: everything else is still fetched and verified, and
// the returned error (it wraps a *GapsError) names every gap with its
// remedy. The Result holds what was verified, also on error; the tree is
// kept when the only failures are gaps, and removed when an input is
// wrong (a tampered file, a moved gitlink).
// With Options.RefuseGaps (an official release) a lock with any pending
// pin is refused before anything is fetched.
func Fetch(ctx context.Context, l *pins.Lock, dest string, o Options) (*Result, error) {
	if o.RefuseGaps {
		if err := refusePending(l.Files); err != nil {
			return nil, fmt.Errorf("%w (an official release refuses any gap; nothing was fetched)", err)
		}
	}
	res := &Result{}
	var errs []error
	var gaps []Gap
	srcs, err := FetchSources(ctx, l, dest, o)
	if err != nil {
		errs = append(errs, err)
	} else {
		res.Sources, res.Tree = srcs, dest
	}
	for _, in := range blobsBySize(l) {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		switch {
		case in.file != nil && in.file.Pending != "":
			gaps = append(gaps, Gap{Input: LedgerName("file", in.file.Name), Reason: "its pin is pending (" + in.file.Pending + ")",
				Remedy: fmt.Sprintf("run `go run mage.go pins:update file:%s` on a machine that reaches %s", in.file.Name, in.file.URL)})
		case in.file != nil:
			r, err := FetchFile(ctx, *in.file, o)
			if err != nil {
				if g, ok := o.fileGap(*in.file, err); ok {
					gaps = append(gaps, g)
				} else {
					errs = append(errs, err)
				}
				continue
			}
			res.Files = append(res.Files, r)
		default:
			r, err := FetchDebs(ctx, []pins.Deb{*in.deb}, o)
			if err != nil {
				if g, ok := o.debGap(*in.deb, err); ok {
					gaps = append(gaps, g)
				} else {
					errs = append(errs, err)
				}
				continue
			}
			res.Debs = append(res.Debs, r...)
		}
	}
	inLockOrder(res, l)
	if len(errs) > 0 && res.Tree != "" {
		// Something is wrong (not merely absent): no tree is left for a
		// build to pick up by mistake.
		if err := os.RemoveAll(res.Tree); err != nil {
			errs = append(errs, err)
		}
		res.Tree, res.Sources = "", nil
	}
	if len(gaps) > 0 {
		errs = append(errs, &GapsError{Gaps: gaps})
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	return res, nil
}

// inLockOrder sorts the results as the lock lists the inputs (they are
// fetched smallest first).
func inLockOrder(res *Result, l *pins.Lock) {
	idx := map[string]int{}
	for i, f := range l.Files {
		idx["f"+f.Name] = i
	}
	for i, d := range l.Debs {
		idx["d"+DebName(d)] = i
	}
	sort.SliceStable(res.Files, func(i, j int) bool { return idx["f"+res.Files[i].Name] < idx["f"+res.Files[j].Name] })
	sort.SliceStable(res.Debs, func(i, j int) bool { return idx["d"+res.Debs[i].Name] < idx["d"+res.Debs[j].Name] })
}

// Gap is a pinned input that could not be fetched: its pin is pending, or
// the mirror (or upstream) does not have it.
type Gap struct {
	Input  string // the ledger name: file:<name>, deb:<name>_<version>_<arch>
	Reason string
	Remedy string
}

// GapsError lists every gap of a fetch; everything else was verified.
type GapsError struct{ Gaps []Gap }

func (e *GapsError) Error() string {
	lines := make([]string, len(e.Gaps))
	for i, g := range e.Gaps {
		lines[i] = fmt.Sprintf("%s: %s: %s", g.Input, g.Reason, g.Remedy)
	}
	return fmt.Sprintf("%d pinned input(s) could not be fetched (everything else was fetched and verified):\n  %s", len(e.Gaps), strings.Join(lines, "\n  "))
}

// blob to fetch: a file or a Debian package.
type pinnedBlob struct {
	file *pins.File
	deb  *pins.Deb
	size int64
}

// blobsBySize orders the lock's files and packages smallest first (a file
// whose size is not recorded, or pending, counts as small: it is reported
// or fetched early), then by name.
func blobsBySize(l *pins.Lock) []pinnedBlob {
	var out []pinnedBlob
	for i := range l.Files {
		out = append(out, pinnedBlob{file: &l.Files[i], size: l.Files[i].Size})
	}
	for i := range l.Debs {
		out = append(out, pinnedBlob{deb: &l.Debs[i], size: l.Debs[i].Size})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].size < out[j].size })
	return out
}

// fileGap tells whether err means the file is absent (a gap), not wrong.
func (o Options) fileGap(f pins.File, err error) (Gap, bool) {
	if !errors.Is(err, fs.ErrNotExist) {
		return Gap{}, false
	}
	where := f.URL
	remedy := "run on a machine that reaches " + f.URL + ", or carry it in a mirror (files/<name from its URL>)"
	if o.MirrorDir != "" {
		base, _ := urlBase(f.URL)
		where = filepath.Join(o.MirrorDir, "files", base)
		remedy = fmt.Sprintf("put the pinned file (sha256 %s, from %s) at %s, or export the mirror again from a complete cache", f.SHA256, f.URL, where)
	}
	return Gap{Input: LedgerName("file", f.Name), Reason: "not found at " + where, Remedy: remedy}, true
}

// debGap tells whether err means the package is absent (a gap).
func (o Options) debGap(d pins.Deb, err error) (Gap, bool) {
	if !errors.Is(err, fs.ErrNotExist) {
		return Gap{}, false
	}
	where := d.Archive + "/" + d.Filename
	remedy := "add the Debian archive " + d.Archive + " to apt's sources"
	if o.MirrorDir != "" {
		where = filepath.Join(o.MirrorDir, d.Archive, filepath.FromSlash(d.Filename))
		remedy = fmt.Sprintf("put the pinned package (sha256 %s) at %s, or export the mirror again from a complete cache", d.SHA256, where)
	}
	return Gap{Input: LedgerName("deb", DebName(d)), Reason: "not found at " + where, Remedy: remedy}, true
}

func refusePending(files []pins.File) error {
	if err := RefusePending(files); err != nil {
		return fmt.Errorf("fetching sources: %w", err)
	}
	return nil
}

// RefusePending reports every file whose pin is pending (no size and
// sha256 recorded yet), with the command that records it; nil if none.
// Nothing may be fetched for a lock with pending pins.
func RefusePending(files []pins.File) error {
	var errs []error
	for _, f := range files {
		if f.Pending != "" {
			errs = append(errs, fmt.Errorf("file %s: its pin is pending (%s): run `go run mage.go pins:update file:%s` on a machine that reaches %s",
				f.Name, f.Pending, f.Name, f.URL))
		}
	}
	return errors.Join(errs...)
}

func (o Options) check() error {
	if o.CacheDir == "" {
		return errors.New("no cache directory given")
	}
	if o.MirrorDir != "" {
		if fi, err := os.Stat(o.MirrorDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("mirror directory %s is not a directory: create it with sources.ExportMirror from a filled cache", o.MirrorDir)
		}
	}
	return nil
}

func (o Options) cache(elem ...string) string {
	return filepath.Join(append([]string{o.CacheDir}, elem...)...)
}

// mapURL applies the longest matching mirror mapping.
func mapURL(m []pins.Rewrite, u string) string {
	l := pins.Lock{Rewrites: m}
	return l.RewriteURL(u)
}

// absDir makes a directory option absolute.
func absDir(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

func (o Options) normalized() (Options, error) {
	var err error
	if o.CacheDir, err = absDir(o.CacheDir); err != nil {
		return o, err
	}
	if o.MirrorDir, err = absDir(o.MirrorDir); err != nil {
		return o, err
	}
	return o, o.check()
}

// record adds a verified input to the ledger.
func (o Options) record(a pipeline.Artifact) {
	if o.Ledger != nil {
		a.Kind = pipeline.KindSource
		o.Ledger.Add(a)
	}
}

// gitLocation is the ledger Path of a git source: an SPDX-style download
// location, git+<url>@<commit>.
func gitLocation(url, commit string) string {
	if !strings.HasPrefix(url, "git+") {
		url = "git+" + url
	}
	return url + "@" + commit
}

// FetchFresh is Fetch into dest, replacing what a previous fetch left
// there. Nothing is removed before the new tree is complete: the tree is
// checked out beside dest and takes its place only once every git source
// is verified; a refusal or a failed source fetch leaves dest as it was.
// Gaps in files are still reported (the tree is replaced: it is verified).
func FetchFresh(ctx context.Context, l *pins.Lock, dest string, o Options) (*Result, error) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".next-")
	if err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	defer os.RemoveAll(work)
	next := filepath.Join(work, "tree")
	res, fetchErr := Fetch(ctx, l, next, o)
	if res == nil || res.Tree == "" {
		return res, fetchErr
	}
	if err := os.RemoveAll(abs); err != nil {
		return res, fmt.Errorf("fetching sources: removing the previous tree %s: %w", abs, err)
	}
	if err := os.Rename(next, abs); err != nil {
		return res, fmt.Errorf("fetching sources: moving the new tree into place: %w", err)
	}
	res.Tree = abs
	return res, fetchErr
}

// Summary is what a fetch verified and what it could not fetch, for
// people: one line per kind, then every gap with its remedy.
func Summary(res *Result, err error) string {
	b := &strings.Builder{}
	if res != nil {
		fmt.Fprintf(b, "sources: %d git sources, %d files, %d Debian packages verified", len(res.Sources), len(res.Files), len(res.Debs))
		if res.Tree != "" {
			fmt.Fprintf(b, "; tree at %s", res.Tree)
		}
		b.WriteString("\n")
	}
	var gaps *GapsError
	if errors.As(err, &gaps) {
		for _, g := range gaps.Gaps {
			fmt.Fprintf(b, "GAP %s: %s\n    remedy: %s\n", g.Input, g.Reason, g.Remedy)
		}
	}
	return b.String()
}

// UnsizedVerified returns the files of the lock pinned by sha256 alone
// (size not recorded) that res verified, with their measured sizes, for
// pins.RecordSizes.
func UnsizedVerified(l *pins.Lock, res *Result) map[string]struct {
	SHA256 string
	Size   int64
} {
	out := map[string]struct {
		SHA256 string
		Size   int64
	}{}
	if res == nil {
		return out
	}
	for _, r := range res.Files {
		if f, ok := l.File(r.Name); ok && f.Pending == "" && !f.SizeKnown() && r.SHA256 == f.SHA256 && r.Size > 0 {
			out[r.Name] = struct {
				SHA256 string
				Size   int64
			}{r.SHA256, r.Size}
		}
	}
	return out
}
