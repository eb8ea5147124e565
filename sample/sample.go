// Package sample generates the sample upstream: local git repositories with
// the shape of the HaLVM (a superproject, the halvm-ghc submodule with its
// own nested submodules, src/openlibm, one optional submodule the lock
// excludes), dead-style URLs in every .gitmodules that only the lock's
// rewrites turn into working file:// locations, a bootstrap-compiler tarball,
// and a lock (*pins.Lock) pinning all of it. The real HaLVM sources are not
// reachable from the machines this project is built on; every stage is
// exercised on this stand-in instead.
//
// Repository content is the embedded directory tree/<repo>/ (every file,
// copied as is) plus Options.Overlay[<repo>]; .gitmodules and the gitlinks
// are generated here and must not appear in the trees. A file is committed
// executable (100755) when its mode has an execute bit (overlays from
// os.DirFS) or its content starts with "#!" or an ELF header (embedded files
// carry no mode). tree/ghc-bindist/ (plus Overlay["ghc-bindist"]) is not a
// repository: it becomes the bootstrap-compiler tarball, below a top-level
// directory ghc-8.0.2/. Each tree/tools/<name>-<version>/ (plus
// Overlay["tools/<name>-<version>"]) becomes a tool tarball pinned with role
// "tool": happy's like a Hackage source tarball (top directory
// happy-1.19.12/), cabal-install's like its bindist (files at the root).
//
// Everything is deterministic: fixed identities and dates (Epoch), sorted
// file lists, normalized tar entries. The same Generate call gives the same
// commit ids and the same tarball bytes in any directory.
package sample

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/pins"
)

//go:embed all:tree
var embedded embed.FS

// Epoch is the commit time of every generated commit (2018-12-06T00:00:00Z,
// the day of HaLVM 2.4.3's master commit) and the lock's SOURCE_DATE_EPOCH.
const Epoch int64 = 1544054400

// Host is the dead host every .gitmodules URL of the sample names.
const Host = "git.sample.invalid"

// Names of the generated repositories (the lock's source names, the
// directories below tree/ and the keys of Options.Overlay).
const (
	RepoHaLVM    = "halvm"
	RepoHaLVMGHC = "halvm-ghc"
	RepoOpenlibm = "openlibm"
	RepoMinlibc  = "minlibc"
	RepoArray    = "array"
	RepoNofib    = "nofib"
	// Bindist is not a repository: its files make the bootstrap tarball.
	Bindist = "ghc-bindist"
)

// BindistName is the lock's file name of the sample bootstrap compiler;
// BindistFile is the tarball's file name.
const (
	BindistName = "ghc-8.0.2-x86_64-sample-linux"
	BindistFile = BindistName + ".tar.gz"
)

// Options shape the sample. The zero value gives the good upstream; the
// other fields are hooks for tests that need a bad one.
type Options struct {
	// Overlay adds files to a repository (or to Bindist), keyed by repo
	// name; an overlay file replaces the tree file of the same path.
	Overlay map[string]fs.FS
	// FileBaseURL, when set, is where the lock says the tarball is served
	// (an http:// test server over Upstream.FilesDir); the default is the
	// file:// URL of Upstream.FilesDir.
	FileBaseURL string

	// Gitlinks records, for a submodule path (relative to the superproject),
	// this commit in the parent instead of the submodule's real commit; the
	// lock pins the recorded value, as a lock made from that tree would.
	Gitlinks map[string]string
	// Unpinned lists submodule paths that stay in their parent but are left
	// out of the lock (neither pinned nor excluded). Only leaf repositories
	// (minlibc, array, openlibm, nofib) can be unpinned.
	Unpinned []string
	// Advance adds, after pinning, one more commit to every repository's
	// branch (parents' gitlinks then point at the children's new heads):
	// the branches move on, the pins must not.
	Advance bool
}

// Upstream is a generated sample upstream.
type Upstream struct {
	Dir      string            // the directory given to Generate
	ReposDir string            // bare repositories, <ReposDir>/<dir>.git
	FilesDir string            // served files (the bootstrap tarball)
	Repos    map[string]string // repo name -> path of its bare repository
	Commits  map[string]string // repo name -> pinned commit
	Heads    map[string]string // repo name -> branch head (differs from Commits with Advance)
	Files    map[string]string // lock file name -> path of the file in FilesDir (bindist and tools)
	Lock     *pins.Lock
}

// repo describes one generated repository.
type repo struct {
	name     string
	dir      string // bare repository is <ReposDir>/<dir>.git
	upstream string // URL in the parent's .gitmodules; "" for the superproject
	license  string
	subs     []sub
}

type sub struct {
	path string // relative to the parent
	repo string
}

// layout is the sample upstream's shape, parents first.
var layout = []repo{
	{name: RepoHaLVM, dir: "halvm", license: "BSD-3-Clause", subs: []sub{{"halvm-ghc", RepoHaLVMGHC}, {"src/openlibm", RepoOpenlibm}}},
	{name: RepoHaLVMGHC, dir: "halvm-ghc", upstream: "git://" + Host + "/halvm-ghc.git", license: "BSD-3-Clause",
		subs: []sub{{"libraries/array", RepoArray}, {"nofib", RepoNofib}, {"rts/minlibc", RepoMinlibc}}},
	{name: RepoOpenlibm, dir: "openlibm", upstream: "git://" + Host + "/openlibm", license: "MIT"},
	{name: RepoArray, dir: "packages-array", upstream: "git://" + Host + "/packages/array.git", license: "BSD-3-Clause"},
	{name: RepoMinlibc, dir: "minlibc", upstream: "https://" + Host + "/minlibc", license: "BSD-3-Clause"},
	{name: RepoNofib, dir: "nofib", upstream: "git://" + Host + "/nofib.git"},
}

// excluded are the submodules the lock lists under [[excluded]].
var excluded = map[string]string{RepoNofib: "GHC's benchmark suite, not needed by the build"}

func repoByName(name string) (repo, bool) {
	for _, r := range layout {
		if r.name == name {
			return r, true
		}
	}
	return repo{}, false
}

// Generate creates the sample upstream in dir (which must be empty or not
// exist yet) and returns it with a lock pinning everything.
func Generate(ctx context.Context, dir string, opts Options) (*Upstream, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("generating sample upstream: %w", err)
	}
	if err := checkOptions(opts); err != nil {
		return nil, fmt.Errorf("generating sample upstream: %w", err)
	}
	if ents, err := os.ReadDir(abs); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("generating sample upstream: %s is not empty: give a new directory", abs)
	}
	u := &Upstream{
		Dir: abs, ReposDir: filepath.Join(abs, "repos"), FilesDir: filepath.Join(abs, "files"),
		Repos: map[string]string{}, Commits: map[string]string{}, Heads: map[string]string{}, Files: map[string]string{},
	}
	for _, d := range []string{u.ReposDir, u.FilesDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("generating sample upstream: %w", err)
		}
	}
	g := &generator{u: u, opts: opts, env: gitEnv()}
	// Children before parents: a parent records its children's commits.
	for i := len(layout) - 1; i >= 0; i-- {
		if err := g.repo(ctx, layout[i]); err != nil {
			return nil, fmt.Errorf("generating sample repository %s: %w", layout[i].name, err)
		}
	}
	if opts.Advance {
		for i := len(layout) - 1; i >= 0; i-- {
			if err := g.advance(ctx, layout[i]); err != nil {
				return nil, fmt.Errorf("advancing sample repository %s: %w", layout[i].name, err)
			}
		}
	}
	if err := g.bindist(); err != nil {
		return nil, fmt.Errorf("generating sample bootstrap tarball: %w", err)
	}
	if err := g.tools(); err != nil {
		return nil, fmt.Errorf("generating sample tool tarballs: %w", err)
	}
	l, err := g.lock()
	if err != nil {
		return nil, fmt.Errorf("generating sample lock: %w", err)
	}
	u.Lock = l
	return u, nil
}

func checkOptions(o Options) error {
	var errs []error
	tools, err := toolDirs()
	if err != nil {
		errs = append(errs, err)
	}
	known := map[string]bool{Bindist: true}
	for _, t := range tools {
		known["tools/"+t.dir] = true
	}
	for k := range o.Overlay {
		if _, ok := repoByName(k); !ok && !known[k] {
			errs = append(errs, fmt.Errorf("overlay for unknown repository %q", k))
		}
	}
	paths := map[string]string{}
	for _, r := range layout {
		for _, s := range r.subs {
			paths[superPath(r.name, s.path)] = s.repo
		}
	}
	for p, c := range o.Gitlinks {
		if _, ok := paths[p]; !ok {
			errs = append(errs, fmt.Errorf("gitlink override for %q, which is not a submodule path", p))
		}
		if len(c) != 40 || strings.Trim(c, "0123456789abcdef") != "" {
			errs = append(errs, fmt.Errorf("gitlink override for %s: want 40 hex characters, got %q", p, c))
		}
	}
	for _, p := range o.Unpinned {
		name, ok := paths[p]
		if !ok {
			errs = append(errs, fmt.Errorf("unpinned %q is not a submodule path", p))
			continue
		}
		if r, _ := repoByName(name); len(r.subs) > 0 {
			errs = append(errs, fmt.Errorf("unpinned %q has submodules of its own: only leaf repositories can be unpinned", p))
		}
	}
	return errors.Join(errs...)
}

// superPath is the path of a submodule relative to the superproject.
func superPath(parent, rel string) string {
	p := parentPath(parent)
	if p == "." {
		return rel
	}
	return p + "/" + rel
}

// parentPath is where a repository sits relative to the superproject.
func parentPath(name string) string {
	if name == RepoHaLVM {
		return "."
	}
	for _, r := range layout {
		for _, s := range r.subs {
			if s.repo == name {
				return superPath(r.name, s.path)
			}
		}
	}
	return ""
}

func gitEnv() []string {
	return run.BaseEnv("GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
}

type generator struct {
	u    *Upstream
	opts Options
	env  []string
}

func (g *generator) git(ctx context.Context, dir string, stdin []byte, args ...string) (string, error) {
	c := run.Cmd{Args: append([]string{"git"}, args...), Dir: dir, Env: g.env}
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, err := run.Output(ctx, c)
	return strings.TrimSpace(string(out)), err
}

// file is one file of a repository or the bindist.
type file struct {
	path string
	mode int64 // 0o644 or 0o755
	data []byte
}

// files returns the tree and overlay files of a repository, sorted by path.
func (g *generator) files(name string) ([]file, error) {
	m := map[string]file{}
	sub, err := fs.Sub(embedded, "tree/"+name)
	if err != nil {
		return nil, err
	}
	if err := collect(sub, m); err != nil {
		return nil, fmt.Errorf("reading tree/%s: %w", name, err)
	}
	if ov := g.opts.Overlay[name]; ov != nil {
		if err := collect(ov, m); err != nil {
			return nil, fmt.Errorf("reading overlay %s: %w", name, err)
		}
	}
	out := make([]file, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func collect(fsys fs.FS, m map[string]file) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == "." {
				return nil // no tree for this repository
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		info, err := fs.Stat(fsys, p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 || bytes.HasPrefix(data, []byte("#!")) || bytes.HasPrefix(data, []byte("\x7fELF")) {
			mode = 0o755
		}
		m[p] = file{path: p, mode: mode, data: data}
		return nil
	})
}

func (g *generator) bare(r repo) string { return filepath.Join(g.u.ReposDir, r.dir+".git") }

// repo creates the bare repository of r with one commit.
func (g *generator) repo(ctx context.Context, r repo) error {
	files, err := g.files(r.name)
	if err != nil {
		return err
	}
	links := map[string]string{}
	for _, s := range r.subs {
		c := g.u.Commits[s.repo]
		if o, ok := g.opts.Gitlinks[superPath(r.name, s.path)]; ok {
			c = o
		}
		links[s.path] = c
	}
	var problems []error
	for _, f := range files {
		if f.path == ".gitmodules" {
			problems = append(problems, errors.New(".gitmodules must not be in the tree: it is generated"))
		}
		for _, s := range r.subs {
			if f.path == s.path || strings.HasPrefix(f.path, s.path+"/") {
				problems = append(problems, fmt.Errorf("%s is inside submodule path %s", f.path, s.path))
			}
		}
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	dir := g.bare(r)
	if _, err := g.git(ctx, "", nil, "init", "-q", "--bare", "-b", "main", dir); err != nil {
		return err
	}
	stream := commitStream(fmt.Sprintf("Import %s (sample upstream)", r.name), Epoch, files, r.subs, links, true)
	if _, err := g.git(ctx, dir, stream, "fast-import", "--quiet"); err != nil {
		return err
	}
	head, err := g.git(ctx, dir, nil, "rev-parse", "--verify", "refs/heads/main^{commit}")
	if err != nil {
		return err
	}
	g.u.Repos[r.name] = dir
	g.u.Commits[r.name] = head
	g.u.Heads[r.name] = head
	return nil
}

// advance adds a commit on top of the branch: a new file, and the
// parents' gitlinks moved to the children's new heads.
func (g *generator) advance(ctx context.Context, r repo) error {
	links := map[string]string{}
	for _, s := range r.subs {
		links[s.path] = g.u.Heads[s.repo]
	}
	files := []file{{path: "NEWS", mode: 0o644, data: []byte("moved on after pinning: a fetch must never see this file\n")}}
	stream := commitStream("Move on after the pin", Epoch+3600, files, r.subs, links, false)
	dir := g.bare(r)
	if _, err := g.git(ctx, dir, stream, "fast-import", "--quiet"); err != nil {
		return err
	}
	head, err := g.git(ctx, dir, nil, "rev-parse", "--verify", "refs/heads/main^{commit}")
	if err != nil {
		return err
	}
	g.u.Heads[r.name] = head
	return nil
}

// commitStream is a git fast-import stream of one commit on refs/heads/main
// (the first one when first, else on top of the branch).
func commitStream(msg string, when int64, files []file, subs []sub, links map[string]string, first bool) []byte {
	var b bytes.Buffer
	ident := fmt.Sprintf("Sample Upstream <upstream@%s> %d +0000", Host, when)
	fmt.Fprintf(&b, "commit refs/heads/main\nauthor %s\ncommitter %s\n", ident, ident)
	fmt.Fprintf(&b, "data %d\n%s\n", len(msg)+1, msg)
	if !first {
		b.WriteString("from refs/heads/main^0\n")
	}
	if len(subs) > 0 && first {
		files = append(files, file{path: ".gitmodules", mode: 0o644, data: gitmodules(subs)})
	}
	for _, f := range files {
		fmt.Fprintf(&b, "M %o inline %s\ndata %d\n", f.mode, quotePath(f.path), len(f.data))
		b.Write(f.data)
		b.WriteString("\n")
	}
	for _, s := range subs {
		fmt.Fprintf(&b, "M 160000 %s %s\n", links[s.path], quotePath(s.path))
	}
	b.WriteString("\n")
	return b.Bytes()
}

// quotePath quotes a path for fast-import when it needs it.
func quotePath(p string) string {
	if !strings.ContainsAny(p, "\"\\\n ") {
		return p
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(p) + `"`
}

// gitmodules is the .gitmodules of a parent: dead-style URLs only.
func gitmodules(subs []sub) []byte {
	var b bytes.Buffer
	for _, s := range subs {
		r, _ := repoByName(s.repo)
		fmt.Fprintf(&b, "[submodule %q]\n\tpath = %s\n\turl = %s\n", s.path, s.path, r.upstream)
	}
	return b.Bytes()
}

// bindist writes the bootstrap-compiler tarball.
func (g *generator) bindist() error {
	files, err := g.files(Bindist)
	if err != nil {
		return err
	}
	data, err := tarball("ghc-8.0.2", files)
	if err != nil {
		return err
	}
	p := filepath.Join(g.u.FilesDir, BindistFile)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	g.u.Files[BindistName] = p
	return nil
}

// tool is one stand-in tool of tree/tools/<dir>/, served as a tarball and
// pinned as a file with role "tool".
type tool struct {
	dir     string // below tree/tools/
	name    string // lock name
	version string
	file    string // tarball file name (as upstream names it)
	top     string // top-level directory in the tarball; "" puts files at its root
}

// knownTools shape the tarballs like their upstream counterparts: Hackage
// source tarballs have a top-level name-version/ directory, the
// cabal-install bindist holds the cabal binary at its root.
var knownTools = map[string]tool{
	"happy-1.19.12": {name: "happy", version: "1.19.12", file: "happy-1.19.12.tar.gz", top: "happy-1.19.12"},
	"cabal-install-1.24.0.2": {name: "cabal-install", version: "1.24.0.2",
		file: "cabal-install-1.24.0.2-x86_64-unknown-linux.tar.gz"},
}

// toolDirs lists tree/tools/*/, sorted. A directory not in knownTools
// named <name>-<version> becomes <name>-<version>.tar.gz with a top-level
// <name>-<version>/.
func toolDirs() ([]tool, error) {
	ents, err := fs.ReadDir(embedded, "tree/tools")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []tool
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		t, ok := knownTools[e.Name()]
		if !ok {
			i := strings.LastIndex(e.Name(), "-")
			if i <= 0 || i == len(e.Name())-1 || e.Name()[i+1] < '0' || e.Name()[i+1] > '9' {
				return nil, fmt.Errorf("tree/tools/%s: want a directory named <name>-<version>", e.Name())
			}
			t = tool{name: e.Name()[:i], version: e.Name()[i+1:], file: e.Name() + ".tar.gz", top: e.Name()}
		}
		t.dir = e.Name()
		out = append(out, t)
	}
	return out, nil
}

// tools writes the tool tarballs.
func (g *generator) tools() error {
	tools, err := toolDirs()
	if err != nil {
		return err
	}
	for _, t := range tools {
		files, err := g.files("tools/" + t.dir)
		if err != nil {
			return err
		}
		data, err := tarball(t.top, files)
		if err != nil {
			return fmt.Errorf("%s: %w", t.dir, err)
		}
		p := filepath.Join(g.u.FilesDir, t.file)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		g.u.Files[t.name] = p
	}
	return nil
}

// tarball is a deterministic tar.gz of files below top/ ("" for none).
func tarball(top string, files []file) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	mtime := time.Unix(Epoch, 0).UTC()
	dirs := map[string]bool{}
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: mtime, Format: tar.FormatPAX,
			Uname: "", Gname: "", Uid: 0, Gid: 0}
	}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "." || dirs[d] {
			return nil
		}
		if err := addDir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(hdr(d+"/", 0o755, tar.TypeDir, 0))
	}
	if top == "" {
		top = "."
	}
	for _, f := range files {
		name := path.Join(top, f.path)
		if err := addDir(path.Dir(name)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(hdr(name, f.mode, tar.TypeReg, int64(len(f.data)))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fileURL(p string) string { return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String() }

// lock pins the generated upstream.
func (g *generator) lock() (*pins.Lock, error) {
	reposURL := fileURL(g.u.ReposDir) + "/"
	l := &pins.Lock{
		Release: pins.Release{
			Name: "HaLVM", Version: "2.4.3", SourceDateEpoch: Epoch,
			EpochNote: "sample upstream: the fixed commit time of every generated commit",
			Homepage:  "https://github.com/GaloisInc/HaLVM", License: "BSD-3-Clause", Suite: "bookworm",
		},
		Flavours: []pins.Flavour{
			{Name: "halvm", IntegerLibrary: "integer-simple", ConfigureFlags: []string{}, Description: "HaLVM with integer-simple (the default flavour)"},
			{Name: "halvm-gmp", IntegerLibrary: "integer-gmp", ConfigureFlags: []string{"--enable-gmp"}, Description: "HaLVM with integer-gmp and a bundled static libgmp 6.1.2"},
		},
		Rewrites: []pins.Rewrite{
			{From: "git://" + Host + "/", To: reposURL},
			{From: "git://" + Host + "/packages/", To: reposURL + "packages-"},
			{From: "https://" + Host + "/", To: reposURL},
		},
	}
	unpinned := map[string]bool{}
	for _, p := range g.opts.Unpinned {
		unpinned[p] = true
	}
	for _, r := range layout {
		p := parentPath(r.name)
		commit := g.u.Commits[r.name]
		if o, ok := g.opts.Gitlinks[p]; ok {
			commit = o
		}
		if unpinned[p] {
			continue
		}
		if why, ok := excluded[r.name]; ok {
			l.Excluded = append(l.Excluded, pins.Excluded{Path: p, Commit: commit, Reason: why})
			continue
		}
		s := pins.Source{Name: r.name, Path: p, Commit: commit, License: r.license, URL: fileURL(g.bare(r))}
		if r.upstream != "" {
			s.UpstreamURL = r.upstream
			s.URL = rewriteURL(l.Rewrites, r.upstream)
			for _, pr := range layout {
				for _, c := range pr.subs {
					if c.repo == r.name {
						s.Parent = pr.name
					}
				}
			}
		}
		l.Sources = append(l.Sources, s)
	}
	base := strings.TrimSuffix(g.opts.FileBaseURL, "/")
	if base == "" {
		base = fileURL(g.u.FilesDir)
	}
	data, err := os.ReadFile(g.u.Files[BindistName])
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	l.Files = []pins.File{{
		Name: BindistName, Role: pins.RoleBootstrapGHC, Version: "8.0.2", URL: base + "/" + BindistFile,
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
	}}
	tools, err := toolDirs()
	if err != nil {
		return nil, err
	}
	for _, t := range tools {
		data, err := os.ReadFile(g.u.Files[t.name])
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		l.Files = append(l.Files, pins.File{Name: t.name, Role: pins.RoleTool, Version: t.version, URL: base + "/" + t.file,
			Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	// A lock is only useful if pins accepts it: round-trip it.
	return pins.Parse("sample.lock", pins.Bytes(l))
}

// rewriteURL applies the longest matching rewrite, as pins does.
func rewriteURL(rws []pins.Rewrite, u string) string {
	l := pins.Lock{Rewrites: rws}
	return l.RewriteURL(u)
}
