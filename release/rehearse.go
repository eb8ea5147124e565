package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample/upstream"
	"github.com/halvm/halvm-release/sources"
)

// The local rehearsal of the CI graph (.github/workflows/release.yml) on
// one machine: `go run mage.go ci:rehearse`. Every job is a separate
// process (this program again, see init) with a local cache of its own
// and, for the jobs that share a fixed build path, a private view of it
// (a mount namespace of its own, the private directory bind-mounted on
// the fixed path: what separate runners have); the cells and the release
// job share one registry, Debian's docker-registry on 127.0.0.1.

// RehearseOptions configure a rehearsal.
type RehearseOptions struct {
	// RealLock pins the tool packages of the sample upstream it generates
	// (the rehearsal, like the demo, runs on the sample upstream).
	RealLock *pins.Lock
	// Dir holds everything: the sample upstream, its mirror, the registry's
	// storage, each process's cache, private build dir, log and report.
	Dir string
	// DownloadCache is the content-addressed download cache the sample's
	// generation and the one fetch of the inputs use.
	DownloadCache string
	// WorkDir is the fixed build path every cell and the release job see
	// (each its own, bind-mounted there); it must be an absolute path.
	WorkDir string
	// Cells are the toolchain cells, flavour and layout; the same cell
	// twice makes two processes push the same keys at once. The rebuild
	// and the release job build every flavour of them in every layout.
	Cells []CellSpec
	// Sequential runs the jobs one after another instead of the cells and
	// the rebuild at once.
	Sequential bool
	Log        io.Writer
}

// CellSpec is one cell of the matrix.
type CellSpec struct {
	Flavour string
	Layout  packaging.Format
}

func (c CellSpec) String() string { return c.Flavour + "-" + string(c.Layout) }

// JobReport is what one process of the rehearsal did.
type JobReport struct {
	Job       string            `json:"job"`
	Cells     []CellReport      `json:"cells"`
	Manifests map[string]string `json:"manifests"` // cell -> sha256 of its tree manifest
	Wall      time.Duration     `json:"wall_ns"`
	Warnings  string            `json:"warnings,omitempty"`
}

// CellReport is one cell's build inside a job.
type CellReport struct {
	Cell        string        `json:"cell"`
	Ran         int           `json:"ran"`
	Restored    int           `json:"restored"`
	FromShared  int           `json:"from_shared"`
	Discarded   []string      `json:"discarded,omitempty"`
	BytesPushed int64         `json:"bytes_pushed"`
	BytesPulled int64         `json:"bytes_pulled"`
	Duration    time.Duration `json:"duration_ns"`
}

// Rehearsal is the outcome of a rehearsal.
type Rehearsal struct {
	Registry string
	Cells    []JobReport // one per cell process
	Rebuild  JobReport   // the independent rebuild: every cell, no shared cache
	Release  JobReport   // every cell from the shared cache, empty local cache
	// Wall is the graph's wall time: cells and rebuild (concurrently or
	// one after another), then the release job.
	Wall time.Duration
}

// rehearseRequest is a rehearsal job's process request.
type rehearseRequest struct {
	Job      string
	LockPath string
	Version  string
	Epoch    int64
	Cells    []CellSpec
	CacheDir string
	OutDir   string
	WorkDir  string
	Private  string // bind-mounted on WorkDir in the process's own mount namespace
	Mirror   string
	Registry string
	Report   string
}

// RehearseProgram is the package of a rehearsal job's process
// (cmd/halvm-rehearse-job), which the rehearsal builds and starts with the
// job's request file as its argument.
const RehearseProgram = "github.com/halvm/halvm-release/cmd/halvm-rehearse-job"

// Rehearse runs the CI graph locally: it generates the sample upstream,
// fetches its inputs once into a mirror (the upstream every job fetches
// from), starts a registry, then runs each cell and the independent
// rebuild as processes (at once, or one after another), then the release
// job, which must restore every cell from the registry without running a
// step, with the same tree manifests as the cells and the rebuild.
func Rehearse(ctx context.Context, o RehearseOptions) (*Rehearsal, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the rehearsal gives each job a private build path in a mount namespace of its own: that needs root")
	}
	if !filepath.IsAbs(o.WorkDir) {
		return nil, fmt.Errorf("the rehearsal's fixed build path %q: want an absolute path", o.WorkDir)
	}
	if len(o.Cells) == 0 {
		return nil, errors.New("the rehearsal has no cell")
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "rehearse: "+format+"\n", a...)
		}
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dir, o.WorkDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	up, err := upstream.Generate(ctx, filepath.Join(dir, "upstream"), upstream.Options{CacheDir: o.DownloadCache, ToolDebs: o.RealLock.DebsWithRole(pins.RoleTool), Log: io.Discard})
	if err != nil {
		return nil, fmt.Errorf("generating the sample upstream: %w", err)
	}
	lockPath := filepath.Join(dir, "sample.lock")
	if err := fsutil.WriteFileAtomic(lockPath, pins.Bytes(up.Lock), 0o644); err != nil {
		return nil, err
	}
	// The upstream every job fetches from, as a runner fetches from the
	// internet: one fetch here, exported as a mirror directory.
	mirror := filepath.Join(dir, "mirror")
	so := sources.Options{CacheDir: o.DownloadCache}
	if _, err := sources.Fetch(ctx, up.Lock, filepath.Join(dir, "fetch-check"), so); err != nil {
		return nil, fmt.Errorf("fetching the sample's inputs: %w", err)
	}
	os.RemoveAll(filepath.Join(dir, "fetch-check"))
	if err := sources.ExportMirror(ctx, up.Lock, so, mirror); err != nil {
		return nil, fmt.Errorf("exporting the sample's inputs: %w", err)
	}
	srv, err := regcache.StartServer(ctx, filepath.Join(dir, "registry"))
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	reh := &Rehearsal{Registry: srv.Addr + "/halvm/build-cache"}
	logf("registry %s (docker-registry, storage %s)", reh.Registry, srv.Storage)
	base := rehearseRequest{LockPath: lockPath, Version: up.Lock.Release.Version, Epoch: up.Lock.Release.Epoch().Unix(), WorkDir: o.WorkDir, Mirror: mirror}
	job := func(name string, cells []CellSpec, registry bool, private bool) rehearseRequest {
		rq := base
		rq.Job, rq.Cells = name, cells
		jd := filepath.Join(dir, "jobs", name)
		rq.CacheDir, rq.OutDir, rq.Report = filepath.Join(jd, "cache"), filepath.Join(jd, "out"), filepath.Join(jd, "report.json")
		if registry {
			rq.Registry = reh.Registry
		}
		if private {
			rq.Private = filepath.Join(jd, "work")
		} else {
			rq.WorkDir = filepath.Join(jd, "elsewhere", "build-root") // the rebuild varies its build path
		}
		return rq
	}
	start := time.Now()
	var jobs []rehearseRequest
	for i, c := range o.Cells {
		jobs = append(jobs, job(fmt.Sprintf("cell-%d-%s", i+1, c), []CellSpec{c}, true, true))
	}
	all := uniqueCells(o.Cells)
	jobs = append(jobs, job("rebuild", all, false, false))
	reports := make([]JobReport, len(jobs))
	errs := make([]error, len(jobs))
	if o.Sequential {
		for i, rq := range jobs {
			logf("%s: starting", rq.Job)
			reports[i], errs[i] = runRehearseJob(ctx, rq)
			logf("%s: done in %s", rq.Job, reports[i].Wall.Round(time.Millisecond))
		}
	} else {
		var wg sync.WaitGroup
		for i, rq := range jobs {
			wg.Add(1)
			logf("%s: starting", rq.Job)
			go func() {
				defer wg.Done()
				reports[i], errs[i] = runRehearseJob(ctx, rq)
				logf("%s: done in %s", rq.Job, reports[i].Wall.Round(time.Millisecond))
			}()
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return reh, err
	}
	reh.Cells, reh.Rebuild = reports[:len(o.Cells)], reports[len(o.Cells)]
	logf("release: starting (every cell from the registry, empty local cache)")
	reh.Release, err = runRehearseJob(ctx, job("release", all, true, true))
	if err != nil {
		return reh, err
	}
	reh.Wall = time.Since(start)
	return reh, reh.check()
}

// check: the release job ran no step, and every cell's tree manifest is
// the same in the cells, the rebuild and the release.
func (r *Rehearsal) check() error {
	var bad []string
	for _, c := range r.Release.Cells {
		if c.Ran != 0 {
			bad = append(bad, fmt.Sprintf("the release job ran %d toolchain steps of %s (want every step from the shared cache)", c.Ran, c.Cell))
		}
	}
	for cell, want := range r.Release.Manifests {
		if got := r.Rebuild.Manifests[cell]; got != want {
			bad = append(bad, fmt.Sprintf("%s: the release job's tree manifest %s differs from the independent rebuild's %s", cell, want, got))
		}
		for _, j := range r.Cells {
			if got, ok := j.Manifests[cell]; ok && got != want {
				bad = append(bad, fmt.Sprintf("%s: %s's tree manifest %s differs from the release job's %s", cell, j.Job, got, want))
			}
		}
	}
	if len(bad) > 0 {
		return errors.New("the rehearsal failed:\n  " + strings.Join(bad, "\n  "))
	}
	return nil
}

// Summary is the rehearsal's figures, one line each.
func (r *Rehearsal) Summary() string {
	var b strings.Builder
	line := func(j JobReport) {
		for _, c := range j.Cells {
			fmt.Fprintf(&b, "  %-22s %-14s %2d steps ran, %2d restored (%2d from the registry), %9d bytes pushed, %9d pulled, %s\n",
				j.Job, c.Cell, c.Ran, c.Restored, c.FromShared, c.BytesPushed, c.BytesPulled, c.Duration.Round(time.Millisecond))
		}
	}
	for _, j := range r.Cells {
		line(j)
	}
	line(r.Rebuild)
	line(r.Release)
	fmt.Fprintf(&b, "  wall time of the graph: %s\n", r.Wall.Round(time.Millisecond))
	return b.String()
}

func uniqueCells(cells []CellSpec) []CellSpec {
	seen := map[CellSpec]bool{}
	var out []CellSpec
	for _, c := range cells {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// runRehearseJob runs one job as a process and reads its report.
func runRehearseJob(ctx context.Context, rq rehearseRequest) (JobReport, error) {
	var rep JobReport
	if err := os.MkdirAll(filepath.Dir(rq.Report), 0o755); err != nil {
		return rep, err
	}
	b, _ := json.Marshal(rq)
	reqPath := filepath.Join(filepath.Dir(rq.Report), "request.json")
	if err := os.WriteFile(reqPath, b, 0o644); err != nil {
		return rep, err
	}
	exe, err := buildProgram(ctx, filepath.Dir(rq.Report), RehearseProgram)
	if err != nil {
		return rep, err
	}
	args := []string{exe, reqPath}
	if rq.Private != "" {
		args = append([]string{"unshare", "--mount", "--propagation", "private"}, args...)
	}
	logPath := filepath.Join(filepath.Dir(rq.Report), "log")
	logf, err := os.Create(logPath)
	if err != nil {
		return rep, err
	}
	defer logf.Close()
	env := run.BaseEnv()
	if err := run.Run(ctx, run.Cmd{Args: args, Env: env, Stdout: logf, Stderr: logf, WaitDelay: 30 * time.Second}); err != nil {
		return rep, fmt.Errorf("rehearsal job %s (log: %s): %w", rq.Job, logPath, err)
	}
	data, err := os.ReadFile(rq.Report)
	if err != nil {
		return rep, fmt.Errorf("rehearsal job %s wrote no report (log: %s): %w", rq.Job, logPath, err)
	}
	err = json.Unmarshal(data, &rep)
	return rep, err
}

// RehearseJob is a rehearsal job's process (cmd/halvm-rehearse-job): it
// runs the job of the request file reqPath and returns the exit code.
func RehearseJob(reqPath string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "rehearse:", err)
		return 1
	}
	b, err := os.ReadFile(reqPath)
	if err != nil {
		return fail(err)
	}
	var rq rehearseRequest
	if err := json.Unmarshal(b, &rq); err != nil {
		return fail(err)
	}
	start := time.Now()
	if rq.Private != "" {
		// Our own mount namespace (unshare --mount): our own fixed build path.
		if err := os.MkdirAll(rq.Private, 0o755); err != nil {
			return fail(err)
		}
		if err := syscall.Mount(rq.Private, rq.WorkDir, "", syscall.MS_BIND, ""); err != nil {
			return fail(fmt.Errorf("bind-mounting %s on %s: %w", rq.Private, rq.WorkDir, err))
		}
	}
	lock, err := pins.LoadFile(rq.LockPath)
	if err != nil {
		return fail(err)
	}
	var flavours []string
	var layouts []packaging.Format
	for _, c := range rq.Cells {
		flavours = appendNew(flavours, c.Flavour)
		layouts = appendNew(layouts, c.Layout)
	}
	p, err := pipeline.NewPlan(pipeline.Config{Version: rq.Version, Release: 1, Flavours: flavours, Epoch: time.Unix(rq.Epoch, 0).UTC(),
		LockPath: rq.LockPath, OutDir: rq.OutDir, CacheDir: rq.CacheDir, WorkDir: rq.WorkDir})
	if err != nil {
		return fail(err)
	}
	var warn strings.Builder
	var reg *regcache.Cache
	if rq.Registry != "" {
		if reg, err = regcache.New(rq.Registry, io.MultiWriter(os.Stderr, &warn)); err != nil {
			return fail(err)
		}
	}
	cells, err := BuildCells(context.Background(), p, Options{Lock: lock, CacheRegistry: reg, Sources: sources.Options{MirrorDir: rq.Mirror}, Log: os.Stderr}, layouts)
	if err != nil {
		return fail(err)
	}
	rep := JobReport{Job: rq.Job, Manifests: map[string]string{}}
	for _, c := range cells {
		name := CellSpec{c.Flavour, c.Layout}.String()
		_, sum, err := fsutil.HashFile(c.Result.Manifest)
		if err != nil {
			return fail(err)
		}
		rep.Manifests[name] = sum
		rep.Cells = append(rep.Cells, CellReport{Cell: name, Ran: len(c.Result.Ran), Restored: len(c.Result.Restored), FromShared: len(c.Result.Pulled),
			Discarded: c.Result.Discarded, BytesPushed: c.Pushed, BytesPulled: c.Pulled, Duration: c.Duration})
	}
	rep.Wall = time.Since(start)
	rep.Warnings = warn.String()
	out, _ := json.MarshalIndent(rep, "", " ")
	if err := fsutil.WriteFileAtomic(rq.Report, out, 0o644); err != nil {
		return fail(err)
	}
	return 0
}

func appendNew[T comparable](l []T, v T) []T {
	for _, x := range l {
		if x == v {
			return l
		}
	}
	return append(l, v)
}

// RehearseBoth runs the rehearsal twice, each in a fresh directory below
// /var/tmp with a fresh registry: the cells and the rebuild at once, then
// one after another; it prints both summaries and wall times to w.
func RehearseBoth(ctx context.Context, o RehearseOptions, w io.Writer) error {
	var walls []time.Duration
	for _, seq := range []bool{false, true} {
		dir, err := os.MkdirTemp("/var/tmp", "halvm-rehearse-")
		if err != nil {
			return err
		}
		o.Dir, o.WorkDir, o.Sequential = dir, filepath.Join(dir, "fixed-build-path"), seq
		how := "concurrently"
		if seq {
			how = "one after another"
		}
		reh, err := Rehearse(ctx, o)
		if reh != nil {
			fmt.Fprintf(w, "rehearsal, cells and rebuild %s (registry %s, work in %s):\n%s", how, reh.Registry, dir, reh.Summary())
		}
		if err != nil {
			return fmt.Errorf("rehearsal (%s; logs in %s/jobs/*/log): %w", how, dir, err)
		}
		walls = append(walls, reh.Wall)
		os.RemoveAll(dir)
	}
	fmt.Fprintf(w, "wall time: %s concurrently, %s one after another\n", walls[0].Round(time.Second), walls[1].Round(time.Second))
	return nil
}
