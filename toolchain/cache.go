package toolchain

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/regcache"
)

// cacheFormat changes whenever the meaning of a key or snapshot changes.
const cacheFormat = "halvm-toolchain-step-cache-1"

// component is one named part of a step's cache key.
type component struct{ Name, Value string }

// components lists everything that can change a step's output: the step
// itself (commands, directories, Go actions), the environment, the host
// tools, its declared inputs and the keys of the steps it depends on.
//
// Where this machine keeps its caches is not part of a key: an input is
// named by its sha256 (its own component), and the same step reads it from
// whichever local cache a runner has, so runners with their caches in
// different places share entries through the registry.
func (r *Recipe) components(s Step, keys map[string]string) []component {
	local := r.cachePaths()
	c := []component{{"format", cacheFormat}, {"step", s.Name}, {"root", s.Root}, {"fresh", fmt.Sprint(s.Fresh)}}
	for i, a := range s.Pre {
		c = append(c, component{fmt.Sprintf("pre-action %d", i+1), local.Replace(a.Doc)})
	}
	for i, cmd := range s.Commands {
		c = append(c, component{fmt.Sprintf("command %d", i+1), local.Replace("cd " + cmd.Dir + " && " + shellQuote(cmd.Args) + " expect " + cmd.Expect)})
	}
	for i, a := range s.Post {
		c = append(c, component{fmt.Sprintf("action %d", i+1), local.Replace(a.Doc)})
	}
	for i, o := range s.Outputs {
		c = append(c, component{fmt.Sprintf("output %d", i+1), o})
	}
	c = append(c, component{"environment", strings.Join(r.Env, "\n")})
	c = append(c, component{"host tools", r.Host.Fingerprint})
	for _, in := range s.Inputs {
		c = append(c, component{"input " + in.Name, in.Value})
	}
	deps := append([]string(nil), s.Deps...)
	sort.Strings(deps)
	for _, d := range deps {
		c = append(c, component{"step " + d, keys[d]})
	}
	return c
}

// cachePaths replaces the local cache directories in a key's components
// by placeholders: a directory is replaced only as a whole path (followed
// by "/", a separator or the end), the longer first (the input cache may
// lie inside the other).
func (r *Recipe) cachePaths() pathReplacer {
	var pr pathReplacer
	for _, d := range []struct{ path, name string }{{r.Config.FileCacheDir, "<input cache>"}, {r.Config.CacheDir, "<cache>"}} {
		if d.path != "" {
			pr = append(pr, pathRule{regexp.MustCompile(regexp.QuoteMeta(d.path) + `(/|$|[\s'"=:;,)])`), d.name + "$1", len(d.path)})
		}
	}
	sort.SliceStable(pr, func(i, j int) bool { return pr[i].n > pr[j].n })
	return pr
}

type pathRule struct {
	re   *regexp.Regexp
	with string
	n    int
}

type pathReplacer []pathRule

// Replace applies every rule to s.
func (pr pathReplacer) Replace(s string) string {
	for _, r := range pr {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

func keyOf(c []component) string {
	h := sha256.New()
	for _, x := range c {
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(x.Name), x.Name, len(x.Value), x.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Keys returns every step's cache key.
func (r *Recipe) Keys() (map[string]string, map[string][]component) {
	keys := map[string]string{}
	comps := map[string][]component{}
	for _, s := range r.Steps {
		c := r.components(s, keys)
		comps[s.Name] = c
		keys[s.Name] = keyOf(c)
	}
	return keys, comps
}

// stepCache is the content-addressed step cache: <dir>/<key>.tar holds the
// changes a step made below its root, <dir>/<key>.json its metadata, and
// <dir>/last/<flavour>/<step>.json the components of the last build of a
// step, to explain a miss.
//
// remote, when set, is the shared cache in an OCI registry behind it
// (HALVM_CACHE_REGISTRY): read after the local cache, written with it.
type stepCache struct {
	dir    string
	remote *regcache.Cache
}

// stepCache is the recipe's step cache.
func (r *Recipe) stepCache() stepCache {
	return stepCache{dir: filepath.Join(r.Config.CacheDir, "steps"), remote: r.Config.Registry}
}

// shared reports whether the registry holds key (never with no registry).
func (c stepCache) shared(ctx context.Context, key string) bool {
	return c.remote != nil && c.remote.HasStep(ctx, key)
}

// pull copies key's entry from the registry into the local cache. An
// entry that does not match its digest is discarded (the registry cache
// warned) and the error says so; found is false when the registry lacks
// it or became unusable.
func (c stepCache) pull(ctx context.Context, key string) (found bool, err error) {
	meta, found, err := c.remote.PullStep(ctx, key, c.tarPath(key))
	if err != nil || !found {
		return false, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(meta, &m); err != nil {
		os.Remove(c.tarPath(key))
		return false, fmt.Errorf("%w: its metadata is not a step's: %w", regcache.ErrCorrupt, err)
	}
	return true, fsutil.WriteFileAtomic(c.metaPath(key), meta, 0o644)
}

// push copies key's local entry to the registry (no-op without one).
func (c stepCache) push(ctx context.Context, key, step string) error {
	if c.remote == nil {
		return nil
	}
	meta, err := os.ReadFile(c.metaPath(key))
	if err != nil {
		return err
	}
	return c.remote.PushStep(ctx, key, step, meta, c.tarPath(key))
}

type snapshotMeta struct {
	Step       string      `json:"step"`
	Root       string      `json:"root"`
	Deleted    []string    `json:"deleted"`
	Components []component `json:"components"`
}

func (c stepCache) tarPath(key string) string  { return filepath.Join(c.dir, key+".tar") }
func (c stepCache) metaPath(key string) string { return filepath.Join(c.dir, key+".json") }
func (c stepCache) lastPath(flavour, step string) string {
	return filepath.Join(c.dir, "last", flavour, step+".json")
}

func (c stepCache) has(key string) bool {
	_, err1 := os.Stat(c.tarPath(key))
	_, err2 := os.Stat(c.metaPath(key))
	return err1 == nil && err2 == nil
}

// missReason explains why a step is not in the cache, comparing its
// components with the last build of the same step.
func (c stepCache) missReason(flavour, step string, comps []component) string {
	data, err := os.ReadFile(c.lastPath(flavour, step))
	if err != nil {
		return "never built with this cache"
	}
	var last []component
	if json.Unmarshal(data, &last) != nil {
		return "never built with this cache"
	}
	old := map[string]string{}
	for _, x := range last {
		old[x.Name] = x.Value
	}
	var changed []string
	seen := map[string]bool{}
	for _, x := range comps {
		seen[x.Name] = true
		if v, ok := old[x.Name]; !ok {
			changed = append(changed, x.Name+" added")
		} else if v != x.Value {
			changed = append(changed, x.Name+" changed")
		}
	}
	for _, x := range last {
		if !seen[x.Name] {
			changed = append(changed, x.Name+" removed")
		}
	}
	if len(changed) == 0 {
		return "cache entry missing"
	}
	return strings.Join(changed, ", ")
}

func (c stepCache) recordLast(flavour, step string, comps []component) error {
	data, _ := json.Marshal(comps)
	return fsutil.WriteFileAtomic(c.lastPath(flavour, step), data, 0o644)
}

// entry is the state of one path below a root.
type entry struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	link  string
}

// scan lists every path below root with its type, mode, size and mtime.
func scan(root string) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e := entry{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			e.link, _ = os.Readlink(p)
		}
		if fi.IsDir() {
			e.size = 0
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// snapshot writes the changes between before and the current state of root
// into the cache under key.
func (c stepCache) snapshot(key string, s Step, comps []component, before map[string]entry) error {
	after, err := scan(s.Root)
	if err != nil {
		return fmt.Errorf("scanning %s: %w", s.Root, err)
	}
	var changed, deleted []string
	for p, e := range after {
		if b, ok := before[p]; !ok || b != e {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			deleted = append(deleted, p)
		}
	}
	sort.Strings(changed)
	sort.Strings(deleted)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".snap-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	tw := tar.NewWriter(bw)
	for _, p := range changed {
		e := after[p]
		h := &tar.Header{Name: filepath.ToSlash(p), Mode: int64(e.mode.Perm()), ModTime: e.mtime, Format: tar.FormatPAX}
		switch {
		case e.mode.IsDir():
			h.Typeflag = tar.TypeDir
		case e.mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.mode.IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, e.size
		default:
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			tmp.Close()
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(filepath.Join(s.Root, p))
			if err != nil {
				tmp.Close()
				return err
			}
			_, err = io.CopyN(tw, f, e.size)
			f.Close()
			if err != nil {
				tmp.Close()
				return fmt.Errorf("snapshot of %s: %s changed while reading: %w", s.Name, p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.tarPath(key)); err != nil {
		return err
	}
	meta, _ := json.MarshalIndent(snapshotMeta{Step: s.Name, Root: s.Root, Deleted: deleted, Components: comps}, "", " ")
	return fsutil.WriteFileAtomic(c.metaPath(key), meta, 0o644)
}

// restore applies a step's snapshot to its root.
func (c stepCache) restore(key string, s Step) error {
	data, err := os.ReadFile(c.metaPath(key))
	if err != nil {
		return err
	}
	var meta snapshotMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("reading %s: %w", c.metaPath(key), err)
	}
	if s.Fresh {
		if err := resetDir(s.Root); err != nil {
			return err
		}
	}
	for _, p := range meta.Deleted {
		if err := os.RemoveAll(filepath.Join(s.Root, p)); err != nil {
			return err
		}
	}
	f, err := os.Open(c.tarPath(key))
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading snapshot of %s: %w", s.Name, err)
		}
		p := filepath.Join(s.Root, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, s.Root+string(filepath.Separator)) {
			return fmt.Errorf("snapshot of %s: entry %q leaves the root", s.Name, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
				os.Remove(p)
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, fs.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{p, h.ModTime})
		case tar.TypeSymlink:
			os.RemoveAll(p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeReg:
			os.RemoveAll(p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(p, fs.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
			if err := os.Chtimes(p, h.ModTime, h.ModTime); err != nil {
				return err
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t); err != nil {
			return err
		}
	}
	return nil
}

func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("emptying %s: %w", dir, err)
	}
	return os.MkdirAll(dir, 0o755)
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>*?()[]{}!#~") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
