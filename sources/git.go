package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/pins"
)

// git runs git with an explicit, isolated environment: no system or global
// configuration, no prompts, and the lock's rewrites as url.<to>.insteadOf
// so a dead URL can never be contacted.
type git struct {
	env []string
}

func newGit(rewrites []pins.Rewrite) git {
	extra := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false"}
	env := run.Merge(run.BaseEnv(extra...), run.Inherit("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")...)
	n := 0
	add := func(k, v string) {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, k), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, v))
		n++
	}
	add("core.autocrlf", "false")
	add("advice.detachedHead", "false")
	add("gc.auto", "0")
	for _, r := range rewrites {
		add("url."+r.To+".insteadOf", r.From)
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(n))
	return git{env: run.Merge(env)}
}

func (g git) out(ctx context.Context, dir string, args ...string) (string, error) {
	b, err := run.Output(ctx, run.Cmd{Args: append([]string{"git"}, args...), Dir: dir, Env: g.env})
	return strings.TrimSpace(string(b)), err
}

func (g git) raw(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return run.Output(ctx, run.Cmd{Args: append([]string{"git"}, args...), Dir: dir, Env: g.env})
}

// FetchSources fetches the superproject and every pinned submodule into the
// cache, verifies every gitlink and .gitmodules entry against the lock, and
// then checks the tree out at dest (which must not exist yet). The tree is
// assembled beside dest and renamed into place only when complete.
func FetchSources(ctx context.Context, l *pins.Lock, dest string, o Options) ([]SourceResult, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	if dest, err = filepath.Abs(dest); err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("fetching sources: destination %s already exists: remove it first", dest)
	}
	f := &gitFetcher{o: o, l: l, g: newGit(l.Rewrites), modName: map[string]string{}}
	order, err := f.resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching sources: %w", err)
	}
	if err := f.checkout(ctx, order, dest); err != nil {
		return nil, fmt.Errorf("fetching sources: checking out into %s: %w", dest, err)
	}
	var out []SourceResult
	for _, s := range order {
		out = append(out, SourceResult{Name: s.Name, Path: s.Path, URL: s.URL, Commit: s.Commit, Cached: f.cached[s.Name]})
		o.record(pipeline.Artifact{Name: LedgerName("git", s.Name), Path: gitLocation(s.URL, s.Commit), Commit: s.Commit})
	}
	return out, nil
}

type gitFetcher struct {
	o       Options
	l       *pins.Lock
	g       git
	modName map[string]string // source name -> its submodule name in the parent's .gitmodules
	cached  map[string]bool
}

func (f *gitFetcher) repo(s pins.Source) string { return f.o.cache("git", s.Name+".git") }

// resolve fetches and verifies every pinned source, parents first, and
// returns them in that order.
func (f *gitFetcher) resolve(ctx context.Context) ([]pins.Source, error) {
	root := f.l.Root()
	if root.Name == "" {
		return nil, errors.New("the lock pins no superproject")
	}
	f.cached = map[string]bool{}
	var order []pins.Source
	queue := []pins.Source{root}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cached, err := f.fetch(ctx, s)
		if err != nil {
			return nil, err
		}
		f.cached[s.Name] = cached
		if err := f.verify(ctx, s); err != nil {
			return nil, err
		}
		order = append(order, s)
		queue = append(queue, f.l.Children(s.Name)...)
	}
	if len(order) != len(f.l.Sources) {
		return nil, fmt.Errorf("only %d of the %d pinned sources are reachable from the superproject %s", len(order), len(f.l.Sources), root.Name)
	}
	return order, nil
}

// fetch makes sure the cache holds s.Commit with its complete history,
// and reports whether it already did (no network access).
func (f *gitFetcher) fetch(ctx context.Context, s pins.Source) (cached bool, err error) {
	repo := f.repo(s)
	ref := "refs/pins/" + s.Commit
	if _, err := os.Stat(repo); err == nil {
		if _, err := f.g.out(ctx, repo, "rev-parse", "-q", "--verify", ref+"^{commit}"); err == nil {
			return true, nil
		}
	} else if err := f.initCache(ctx, repo); err != nil {
		return false, fmt.Errorf("creating cache repository for %s: %w", s.Name, err)
	}
	from, err := f.gitURL(s)
	if err != nil {
		return false, err
	}
	// By commit id first: what GitHub and local repositories serve. The
	// commit is what is asked for, never a branch; the build needs no
	// history, so only that commit (--depth=1: GHC's history is large).
	_, byID := f.g.out(ctx, repo, "fetch", "-q", "--depth=1", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", from, s.Commit)
	if byID != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("fetching %s: %w", s.Name, byID)
		}
		// Servers that refuse unadvertised ids: fetch branches and tags
		// (and a mirror's pins), then look for the commit.
		if _, err := f.g.out(ctx, repo, "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", from,
			"+refs/heads/*:refs/upstream/heads/*", "+refs/tags/*:refs/upstream/tags/*", "+refs/pins/*:refs/pins/*"); err != nil {
			return false, fmt.Errorf("fetching %s (commit %s) from %s: %w (when offline: fill the cache on a networked machine, or fetch from a mirror)", s.Name, s.Commit, from, err)
		}
	}
	if _, err := f.g.out(ctx, repo, "cat-file", "-e", s.Commit+"^{commit}"); err != nil {
		return false, fmt.Errorf("fetching %s: pinned commit %s is not in %s (neither fetchable by id nor reachable from its branches or tags): upstream rewrote its history or the pin is wrong; check sources %q in the lock",
			s.Name, s.Commit, from, s.Name)
	}
	if _, err := f.g.out(ctx, repo, "update-ref", ref, s.Commit); err != nil {
		return false, fmt.Errorf("recording %s in the cache: %w", s.Name, err)
	}
	return false, nil
}

// initCache creates a bare cache repository atomically.
func (f *gitFetcher) initCache(ctx context.Context, repo string) error {
	if err := os.MkdirAll(filepath.Dir(repo), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(repo), "."+filepath.Base(repo)+".partial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := f.g.out(ctx, "", "init", "-q", "--bare", tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, repo); err != nil {
		if _, statErr := os.Stat(repo); statErr == nil {
			return nil // made by a concurrent fetch
		}
		return err
	}
	return nil
}

// gitURL is where s is fetched from: the mirror directory, or the lock's
// working URL after the mirror mapping.
func (f *gitFetcher) gitURL(s pins.Source) (string, error) {
	if f.o.MirrorDir != "" {
		p := filepath.Join(f.o.MirrorDir, "git", s.Name+".git")
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("fetching %s: the mirror %s has no git/%s.git: export the mirror again from a complete cache (ExportMirror)", s.Name, f.o.MirrorDir, s.Name)
		}
		return p, nil
	}
	return mapURL(f.o.MirrorMap, s.URL), nil
}

// submodule is one entry of a .gitmodules file.
type submodule struct {
	name string // in .gitmodules
	path string
	url  string
}

// verify checks every gitlink of s's pinned commit against the lock and
// every pinned child against s's .gitmodules. All problems of s are
// reported together.
func (f *gitFetcher) verify(ctx context.Context, s pins.Source) error {
	repo := f.repo(s)
	listing, err := f.g.raw(ctx, repo, "ls-tree", "-r", "-z", "--full-tree", s.Commit)
	if err != nil {
		return fmt.Errorf("listing %s at %s: %w", s.Name, s.Commit, err)
	}
	links := map[string]string{} // path relative to s -> commit
	hasModules := false
	for _, e := range bytes.Split(listing, []byte{0}) {
		if len(e) == 0 {
			continue
		}
		meta, p, ok := strings.Cut(string(e), "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 {
			return fmt.Errorf("listing %s at %s: unexpected git ls-tree line %q", s.Name, s.Commit, e)
		}
		if fields[0] == "160000" {
			links[p] = fields[2]
		}
		if p == ".gitmodules" {
			hasModules = true
		}
	}
	var mods []submodule
	if hasModules {
		if mods, err = f.gitmodules(ctx, repo, s.Commit); err != nil {
			return fmt.Errorf("reading .gitmodules of %s at %s: %w", s.Name, s.Commit, err)
		}
	}
	full := func(rel string) string {
		if s.Path == "." {
			return rel
		}
		return s.Path + "/" + rel
	}
	pinned := map[string]pins.Source{}
	for _, c := range f.l.Children(s.Name) {
		pinned[f.l.RelPath(c)] = c
	}
	excluded := map[string]pins.Excluded{}
	for _, e := range f.l.Excluded {
		excluded[e.Path] = e
	}
	var problems []string
	paths := make([]string, 0, len(links))
	for p := range links {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		got := links[p]
		if c, ok := pinned[p]; ok {
			if got != c.Commit {
				problems = append(problems, fmt.Sprintf("%s: the gitlink in %s records %s but the lock pins %s (sources %q): the lock and the tree disagree; fix the pin (pins:update) or the superproject commit",
					full(p), s.Name, got, c.Commit, c.Name))
			}
			continue
		}
		if e, ok := excluded[full(p)]; ok {
			if e.Commit != "" && e.Commit != got {
				problems = append(problems, fmt.Sprintf("%s: the gitlink in %s records %s but the lock's [[excluded]] entry says %s: update the excluded commit",
					full(p), s.Name, got, e.Commit))
			}
			continue
		}
		problems = append(problems, fmt.Sprintf("%s: submodule (gitlink %s) in %s is neither pinned nor excluded: pin it under [[sources]] or list it under [[excluded]] with a reason",
			full(p), got, s.Name))
	}
	byPath := map[string]submodule{}
	for _, m := range mods {
		byPath[m.path] = m
	}
	rels := make([]string, 0, len(pinned))
	for p := range pinned {
		rels = append(rels, p)
	}
	sort.Strings(rels)
	for _, p := range rels {
		c := pinned[p]
		if _, ok := links[p]; !ok {
			problems = append(problems, fmt.Sprintf("%s: pinned as %q but %s at %s has no gitlink there: remove the pin or fix its path", c.Path, c.Name, s.Name, s.Commit))
			continue
		}
		m, ok := byPath[p]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: %s's .gitmodules has no entry for path %s", c.Path, s.Name, p))
		case m.url != c.UpstreamURL:
			problems = append(problems, fmt.Sprintf("%s: %s's .gitmodules says url %q but the lock's upstream_url is %q: fix upstream_url (and its rewrite) in the lock",
				c.Path, s.Name, m.url, c.UpstreamURL))
		default:
			f.modName[c.Name] = m.name
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("verifying the submodules of %s at %s: %d problem(s):\n  %s", s.Name, s.Commit, len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

// gitmodules parses the .gitmodules blob of a commit.
func (f *gitFetcher) gitmodules(ctx context.Context, repo, commit string) ([]submodule, error) {
	b, err := f.g.raw(ctx, repo, "config", "--blob", commit+":.gitmodules", "-z", "--list")
	if err != nil {
		return nil, err
	}
	byName := map[string]*submodule{}
	var names []string
	for _, e := range bytes.Split(b, []byte{0}) {
		key, val, _ := strings.Cut(string(e), "\n")
		if !strings.HasPrefix(key, "submodule.") {
			continue
		}
		rest := strings.TrimPrefix(key, "submodule.")
		i := strings.LastIndex(rest, ".")
		if i < 0 {
			continue
		}
		name, field := rest[:i], rest[i+1:]
		m := byName[name]
		if m == nil {
			m = &submodule{name: name}
			byName[name] = m
			names = append(names, name)
		}
		switch field {
		case "path":
			m.path = path.Clean(val)
		case "url":
			m.url = val
		}
	}
	out := make([]submodule, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out, nil
}

// checkout assembles the tree beside dest and renames it into place.
func (f *gitFetcher) checkout(ctx context.Context, order []pins.Source, dest string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".partial-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	gitDirs := map[string]string{} // source name -> its git directory
	for _, s := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(tmp, filepath.FromSlash(s.Path))
		var gitDir string
		if s.IsRoot() {
			gitDir = filepath.Join(dir, ".git")
			if _, err := f.g.out(ctx, "", "init", "-q", dir); err != nil {
				return err
			}
		} else {
			parent, _ := f.l.Source(s.Parent)
			gitDir = filepath.Join(gitDirs[parent.Name], "modules", filepath.FromSlash(f.modName[s.Name]))
			if err := f.initSubmodule(ctx, dir, gitDir); err != nil {
				return fmt.Errorf("%s: %w", s.Path, err)
			}
			pdir := filepath.Join(tmp, filepath.FromSlash(parent.Path))
			if _, err := f.g.out(ctx, pdir, "config", "submodule."+f.modName[s.Name]+".url", s.URL); err != nil {
				return err
			}
		}
		gitDirs[s.Name] = gitDir
		if _, err := f.g.out(ctx, dir, "fetch", "-q", "--depth=1", "--no-tags", "--no-write-fetch-head", "file://"+filepath.ToSlash(f.repo(s)), "refs/pins/"+s.Commit); err != nil {
			return fmt.Errorf("%s: copying %s from the cache: %w", s.Path, s.Commit, err)
		}
		if _, err := f.g.out(ctx, dir, "checkout", "-q", "--detach", s.Commit); err != nil {
			return fmt.Errorf("%s: checking out %s: %w", s.Path, s.Commit, err)
		}
		if _, err := f.g.out(ctx, dir, "remote", "add", "origin", s.URL); err != nil {
			return err
		}
	}
	if err := f.selfCheck(ctx, tmp, order); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

// initSubmodule creates a submodule repository the way git does: the git
// directory inside the parent's, a .git file and core.worktree pointing at
// each other by relative paths (the tree can move).
func (f *gitFetcher) initSubmodule(ctx context.Context, dir, gitDir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(gitDir), 0o755); err != nil {
		return err
	}
	if _, err := f.g.out(ctx, "", "init", "-q", "--separate-git-dir", gitDir, dir); err != nil {
		return err
	}
	toGit, err := filepath.Rel(dir, gitDir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".git"), []byte("gitdir: "+filepath.ToSlash(toGit)+"\n"), 0o644); err != nil {
		return err
	}
	toWork, err := filepath.Rel(gitDir, dir)
	if err != nil {
		return err
	}
	_, err = f.g.out(ctx, dir, "config", "core.worktree", filepath.ToSlash(toWork))
	return err
}

// selfCheck asks git itself whether every submodule sits at its pin.
func (f *gitFetcher) selfCheck(ctx context.Context, tree string, order []pins.Source) error {
	raw, err := f.g.raw(ctx, tree, "submodule", "status", "--recursive")
	if err != nil {
		return err
	}
	out := string(raw)
	want := map[string]string{}
	for _, s := range order {
		want[s.Path] = s.Commit
	}
	excluded := map[string]bool{}
	for _, e := range f.l.Excluded {
		excluded[e.Path] = true
	}
	var problems []string
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		if len(line) < 42 {
			continue
		}
		state, rest := line[0], line[1:]
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		commit, p := fields[0], fields[1]
		switch {
		case state == '-' && excluded[p]:
		case state == ' ' && want[p] == commit:
			seen++
		default:
			problems = append(problems, fmt.Sprintf("git submodule status: %q (want %s at %s)", line, p, want[p]))
		}
	}
	if seen != len(order)-1 {
		problems = append(problems, fmt.Sprintf("git submodule status shows %d checked-out submodules, want %d", seen, len(order)-1))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the checked-out tree does not match the pins:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
