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
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/pipeline"
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

// Fetch fetches and verifies every input of the lock: the source tree,
// checked out at dest (which must not exist yet), every file and every
// Debian package into the cache. Pending pins are refused before anything
// is fetched.
func Fetch(ctx context.Context, l *pins.Lock, dest string, o Options) (*Result, error) {
	if err := refusePending(l.Files); err != nil {
		return nil, err
	}
	// Files first: they only ever land in the cache, verified, so a failure
	// of any input leaves no tree behind.
	res := &Result{}
	var err error
	if res.Files, err = FetchFiles(ctx, l.Files, o); err != nil {
		return nil, err
	}
	if len(l.Debs) > 0 {
		if res.Debs, err = FetchDebs(ctx, l.Debs, o); err != nil {
			return nil, err
		}
	}
	if res.Sources, err = FetchSources(ctx, l, dest, o); err != nil {
		return nil, err
	}
	res.Tree = dest
	return res, nil
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

// FetchFresh is Fetch into dest after removing what a previous fetch left
// there (a checked-out tree is cheap to recreate from the cache).
func FetchFresh(ctx context.Context, l *pins.Lock, dest string, o Options) (*Result, error) {
	if err := os.RemoveAll(dest); err != nil {
		return nil, fmt.Errorf("fetching sources: removing the previous tree: %w", err)
	}
	return Fetch(ctx, l, dest, o)
}
