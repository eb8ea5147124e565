package toolchain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/run"
)

// Status is a step's cache status before a build.
type Status struct {
	Step   string
	Key    string
	Hit    bool
	Reason string // why it misses; "" on a hit
	Shared bool   // a hit in the shared registry cache only
}

// Statuses returns every step's cache status: the local cache first, then
// the shared registry cache (Config.Registry).
func (r *Recipe) Statuses() []Status {
	keys, comps := r.Keys()
	c := r.stepCache()
	ctx := context.Background()
	var out []Status
	for _, s := range r.Steps {
		st := Status{Step: s.Name, Key: keys[s.Name]}
		switch {
		case s.Recreate:
			st.Reason = "not cached: re-run (cheap) whenever a later step runs"
			st.Hit = true
		case c.has(st.Key):
			st.Hit = true
		case c.shared(ctx, st.Key):
			st.Hit, st.Shared = true, true
		default:
			st.Reason = c.missReason(r.Flavour.Name, s.Name, comps[s.Name])
		}
		out = append(out, st)
	}
	return out
}

// Result is what a build produced.
type Result struct {
	Flavour  string
	StageDir string // the installed tree, at the final prefix below it
	Manifest string // the tree manifest file (in Config.OutDir)
	Ran      []string
	Restored []string
	Pulled   []string // steps restored from the shared registry cache
	// Discarded are the shared cache entries that did not match their
	// digests: each step was built instead, and the warning says so.
	Discarded []string
}

// Record adds the tree manifest to the ledger (path relative to outDir).
func (res *Result) Record(l *pipeline.Ledger, outDir string) error {
	rel, err := filepath.Rel(outDir, res.Manifest)
	if err != nil {
		rel = res.Manifest
	}
	_, err = l.AddFile(pipeline.KindTreeManifest, "toolchain", res.Flavour, res.Manifest, rel)
	return err
}

// Build runs the recipe for one flavour: preflight, fetch (failing early
// when inputs are unreachable; skipped when every step is in the cache),
// every step (restored from the cache when its key is there), then
// normalize the staged tree, refuse build-path leaks and write the tree
// manifest.
func Build(ctx context.Context, c Config) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Preflight(ctx); err != nil {
		return nil, err
	}
	r, err := NewRecipe(c, ProbeHost(ctx))
	if err != nil {
		return nil, err
	}
	fetch := func(ctx context.Context) error {
		if _, err := Fetch(ctx, c); err != nil {
			return fmt.Errorf("building toolchain %s: %w", c.Flavour, err)
		}
		return nil
	}
	// Every step in a cache: nothing to build, nothing to fetch (unless a
	// shared entry is discarded: then Run fetches).
	r.fetchLate = fetch
	for _, st := range r.Statuses() {
		if !st.Hit {
			if err := fetch(ctx); err != nil {
				return nil, err
			}
			r.fetchLate = nil
			break
		}
	}
	return r.Run(ctx)
}

func (r *Recipe) logf(format string, a ...any) {
	if r.Config.Log != nil {
		fmt.Fprintf(r.Config.Log, format+"\n", a...)
	}
}

// Run runs the recipe's steps against fetched inputs.
func (r *Recipe) Run(ctx context.Context) (*Result, error) {
	l := r.Layout
	for _, d := range []string{l.Home(), l.Tmp(), l.Logs(r.Flavour.Name)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("building toolchain %s: %w", r.Flavour.Name, err)
		}
	}
	res := &Result{Flavour: r.Flavour.Name, StageDir: r.StageDir()}
	keys, comps := r.Keys()
	statuses := r.Statuses()
	cache := r.stepCache()
	allHit, err := r.pullShared(ctx, cache, statuses, res)
	if err != nil {
		return res, fmt.Errorf("building toolchain %s: %w", r.Flavour.Name, err)
	}
	if !allHit && r.fetchLate != nil {
		if err := r.fetchLate(ctx); err != nil {
			return res, err
		}
	}
	for i, s := range r.Steps {
		st := statuses[i]
		key := keys[s.Name]
		switch {
		case allHit && s.Root != r.StageDir():
			// Nothing to build: only the installed tree is needed.
			continue
		case s.Recreate || !st.Hit:
			if !s.Recreate {
				r.logf("toolchain %s: step %s: running (cache miss: %s)", r.Flavour.Name, s.Name, st.Reason)
			} else {
				r.logf("toolchain %s: step %s: running (not cached)", r.Flavour.Name, s.Name)
			}
			start := time.Now()
			if err := r.runStep(ctx, s, key, comps[s.Name], cache); err != nil {
				return res, fmt.Errorf("building toolchain %s: step %s: %w", r.Flavour.Name, s.Name, err)
			}
			r.logf("toolchain %s: step %s: done in %s", r.Flavour.Name, s.Name, time.Since(start).Round(time.Millisecond))
			res.Ran = append(res.Ran, s.Name)
		default:
			if err := cache.restore(key, s); err != nil {
				return res, fmt.Errorf("building toolchain %s: restoring step %s from the cache: %w", r.Flavour.Name, s.Name, err)
			}
			r.logf("toolchain %s: step %s: cache hit", r.Flavour.Name, s.Name)
			res.Restored = append(res.Restored, s.Name)
			if cache.remote != nil && !st.Shared && !cache.shared(ctx, key) {
				r.pushStep(ctx, cache, key, s.Name)
			}
		}
	}
	if err := r.finish(res); err != nil {
		return res, fmt.Errorf("building toolchain %s: %w", r.Flavour.Name, err)
	}
	return res, nil
}

func (r *Recipe) runStep(ctx context.Context, s Step, key string, comps []component, cache stepCache) error {
	var before map[string]entry
	if s.Fresh {
		if err := resetDir(s.Root); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(s.Root, 0o755); err != nil {
			return err
		}
		var err error
		if before, err = scan(s.Root); err != nil {
			return err
		}
	}
	logPath := filepath.Join(r.Layout.Logs(r.Flavour.Name), s.Name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	var out io.Writer = logf
	if r.Config.Log != nil {
		out = io.MultiWriter(logf, r.Config.Log)
	}
	for _, a := range s.Pre {
		fmt.Fprintf(out, "+ (go) %s\n", a.Doc)
		if err := a.Run(ctx); err != nil {
			return err
		}
	}
	for _, c := range s.Commands {
		fmt.Fprintf(out, "+ cd %s && %s\n", c.Dir, shellQuote(c.Args))
		var stdout bytes.Buffer
		err := run.Run(ctx, run.Cmd{
			Args: append(append([]string(nil), umaskWrapper...), c.Args...), Dir: c.Dir, Env: r.Env,
			Stdout: io.MultiWriter(out, &stdout), Stderr: out,
		})
		if err != nil {
			return fmt.Errorf("%w (full log: %s)", err, logPath)
		}
		if c.Expect != "" && !regexp.MustCompile(c.Expect).Match(stdout.Bytes()) {
			return fmt.Errorf("%s printed %q, which does not match /%s/: the pinned tool is not the expected version",
				shellQuote(c.Args), strings.TrimSpace(stdout.String()), c.Expect)
		}
	}
	for _, a := range s.Post {
		fmt.Fprintf(out, "+ (go) %s\n", a.Doc)
		if err := a.Run(ctx); err != nil {
			return err
		}
	}
	var missing []string
	for _, o := range s.Outputs {
		if _, err := os.Lstat(o); err != nil {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		hint := ""
		if s.Name == "configure" {
			hint = " (configure exits 0 when its checks fail: read its messages in " + logPath + ", install what they name and run again)"
		}
		logf.Sync()
		tail, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimRight(string(tail), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		return fmt.Errorf("did not produce %s%s; the end of its output:\n%s", strings.Join(missing, ", "), hint, strings.Join(lines, "\n"))
	}
	if s.Recreate {
		return nil
	}
	if err := cache.snapshot(key, s, comps, before); err != nil {
		return fmt.Errorf("storing in the step cache: %w", err)
	}
	r.pushStep(ctx, cache, key, s.Name)
	return cache.recordLast(r.Flavour.Name, s.Name, comps)
}

// pushStep writes a step's entry to the shared cache too. A failure never
// fails the build: the registry cache warned once, the local cache has it.
func (r *Recipe) pushStep(ctx context.Context, cache stepCache, key, step string) {
	if err := cache.push(ctx, key, step); err != nil && cache.remote.Down() == nil {
		r.logf("toolchain %s: step %s: not pushed to the shared cache: %v", r.Flavour.Name, step, err)
	}
}

// pullShared copies the shared cache entries the build will restore into
// the local cache, before any step runs. An entry that is discarded (its
// content does not match its digest) or that the registry can no longer
// give turns its step into a miss, which can widen what the build needs:
// it repeats until nothing changes. It returns whether every step hits.
func (r *Recipe) pullShared(ctx context.Context, cache stepCache, statuses []Status, res *Result) (bool, error) {
	for {
		allHit := true
		for _, st := range statuses {
			allHit = allHit && st.Hit
		}
		changed := false
		for i, s := range r.Steps {
			st := &statuses[i]
			if !st.Shared || !st.Hit || (allHit && s.Root != r.StageDir()) {
				continue
			}
			found, err := cache.pull(ctx, st.Key)
			switch {
			case err != nil && errors.Is(err, regcache.ErrCorrupt):
				st.Hit, st.Shared, st.Reason = false, false, "shared cache entry discarded: "+err.Error()
				res.Discarded = append(res.Discarded, s.Name)
				r.logf("toolchain %s: step %s: the shared cache entry was discarded (%v): building it", r.Flavour.Name, s.Name, err)
			case err != nil:
				return false, fmt.Errorf("pulling step %s from the shared cache: %w", s.Name, err)
			case !found:
				st.Hit, st.Shared, st.Reason = false, false, "the shared cache no longer gives it"
			default:
				st.Shared = false // local now
				res.Pulled = append(res.Pulled, s.Name)
				r.logf("toolchain %s: step %s: pulled from the shared cache", r.Flavour.Name, s.Name)
				continue
			}
			changed = true
		}
		if !changed {
			return allHit, nil
		}
	}
}

// finish normalizes the staged tree, refuses build-path leaks and writes
// the manifest.
func (r *Recipe) finish(res *Result) error {
	stage := r.StageDir()
	if err := stripTree(stage); err != nil {
		return fmt.Errorf("stripping %s: %w", stage, err)
	}
	if err := clampTree(stage, r.Config.Epoch, true); err != nil {
		return fmt.Errorf("normalizing %s: %w", stage, err)
	}
	if err := CheckLeaks(stage, r.Layout.Root); err != nil {
		return err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# HaLVM %s toolchain tree, flavour %s (%s), installed below %s\n", r.Lock.Release.Version, r.Flavour.Name, r.Flavour.IntegerLibrary, r.Config.Prefix)
	if err := WriteManifest(&buf, os.DirFS(stage)); err != nil {
		return err
	}
	out := r.Config.OutDir
	if out == "" {
		out = filepath.Join(r.Layout.Root, r.Flavour.Name)
	}
	res.Manifest = filepath.Join(out, "toolchain-"+r.Flavour.Name+".manifest")
	return fsutil.WriteFileAtomic(res.Manifest, buf.Bytes(), 0o644)
}

// Plan writes the dry run of one flavour's build to w: every step with its
// commands, directory and environment, and whether the step cache has it
// (a miss says why). It fetches nothing and runs no step.
func Plan(ctx context.Context, w io.Writer, c Config) error {
	r, err := NewRecipe(c, ProbeHost(ctx))
	if err != nil {
		return err
	}
	return r.WritePlan(w, PlanOptions{Cache: true, Here: true})
}
