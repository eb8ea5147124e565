package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/toolchain"
	"github.com/halvm/halvm-release/toolchain/testprog"
)

// buildDir is the fixed build root every toolchain is built below.
func (r *runner) buildDir(p pipeline.Plan) string { return p.WorkDir() }

func (r *runner) preflight(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	var errs []error
	if r.o.Lock == nil {
		return errors.New("no lock loaded")
	}
	if pend := r.o.Lock.Pending(); len(pend) > 0 {
		errs = append(errs, fmt.Errorf("%d pin(s) are pending, a release needs every input pinned:\n  %s", len(pend), strings.Join(pend, "\n  ")))
	}
	k, err := pgp.LoadKey(r.o.PGPKey)
	if err != nil {
		errs = append(errs, fmt.Errorf("archive key: %w (set HALVM_PGP_KEY_FILE, or run `go run mage.go keys:dev` for a trial)", err))
	} else {
		if r.o.Official && k.IsDevelopment() {
			errs = append(errs, fmt.Errorf("archive key %s is a development key: an official release needs the release key", k.Fingerprint()))
		}
		if k.Created().After(p.Epoch()) {
			errs = append(errs, fmt.Errorf("archive key %s was created after SOURCE_DATE_EPOCH (%s): signatures made at the epoch would be invalid", k.Fingerprint(), p.Epoch().Format("2006-01-02")))
		}
		r.key = k
	}
	if r.o.Official && len(p.Skipped()) > 0 {
		errs = append(errs, fmt.Errorf("an official release cannot skip stages (skipped: %s): unset HALVM_SKIP, or run a trial", strings.Join(p.Skipped(), ", ")))
	}
	// Every host prerequisite of the whole run, verify's checks included,
	// at once with one command: a release never installs anything.
	skipped := map[string]string{}
	for _, s := range p.Skipped() {
		skipped[s], _ = p.SkipReason(s)
	}
	if err := hostreq.Ensure(ctx, HostNeeds(p.Flavours(), skipped), hostreq.EnsureOptions{}); err != nil {
		errs = append(errs, err)
	}
	// The cosign key is needed only at the sign stage: a wrong password
	// must not wait for the whole build to show.
	if _, skip := p.SkipReason("sign"); !skip {
		if _, err := cosign.LoadSigner(r.o.CosignKey); err != nil {
			errs = append(errs, fmt.Errorf("cosign key: %w (set HALVM_COSIGN_KEY_FILE and HALVM_COSIGN_PASSWORD_FILE, or run `go run mage.go keys:dev` for a trial)", err))
		}
	}
	return errors.Join(errs...)
}

func (r *runner) sourcesOptions(p pipeline.Plan, l *pipeline.Ledger) sources.Options {
	o := r.o.Sources
	o.CacheDir = filepath.Join(p.CacheDir(), "inputs")
	o.Ledger = l
	o.RefuseGaps = r.o.Official // an official release refuses any gap
	o.Registry = r.o.CacheRegistry
	return o
}

func (r *runner) sources(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	_, err := sources.FetchFresh(ctx, r.o.Lock, filepath.Join(p.WorkDir(), "src"), r.sourcesOptions(p, l))
	return err
}

// formatLibDirs are the libdirs each package format installs the toolchain
// with: the paths are baked into the toolchain, so each format gets its own
// install.
var formatLibDirs = map[packaging.Format]string{
	packaging.Deb: packaging.Layouts[packaging.Deb].Libdir,
	packaging.RPM: packaging.Layouts[packaging.RPM].Libdir,
}

func (r *runner) toolchain(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	logPath := filepath.Join(p.OutDir(), "logs", "toolchain.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := &progressWriter{file: logFile, progress: r.o.Log}
	if reg := r.o.CacheRegistry; reg != nil {
		defer func() { fmt.Fprintf(log, "toolchain: %s\n", reg.Summary()) }()
	}
	for _, fl := range p.Flavours() {
		for _, f := range packaging.Formats {
			res, err := r.buildCell(ctx, p, fl, f, log)
			if err != nil {
				return fmt.Errorf("%w (full log: %s)", err, logPath)
			}
			if r.trees[fl] == nil {
				r.trees[fl] = map[string]string{}
			}
			r.trees[fl][string(f)] = res.StageDir
			if f == packaging.Deb { // one manifest per flavour in the ledger: the Debian layout's
				if err := res.Record(l, p.OutDir()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Cell is one toolchain build of a CI matrix: a flavour in a layout.
type Cell struct {
	Flavour        string
	Layout         packaging.Format
	Result         *toolchain.Result
	Pushed, Pulled int64 // bytes to and from the shared cache
	Duration       time.Duration
}

// BuildCells builds the toolchain of each of the plan's flavours in each
// of layouts (HALVM_FLAVOURS x HALVM_LAYOUTS: `go run mage.go toolchain`,
// one CI cell per pair) exactly as the release's toolchain stage does,
// through the local step cache and, with o.CacheRegistry, the shared one,
// which receives every step built.
func BuildCells(ctx context.Context, p pipeline.Plan, o Options, layouts []packaging.Format) ([]Cell, error) {
	r := &runner{o: o}
	var cells []Cell
	for _, fl := range p.Flavours() {
		for _, f := range layouts {
			var pushed, pulled int64
			if o.CacheRegistry != nil {
				pushed, pulled = o.CacheRegistry.Pushed(), o.CacheRegistry.Pulled()
			}
			start := time.Now()
			res, err := r.buildCell(ctx, p, fl, f, o.Log)
			if err != nil {
				return cells, err
			}
			c := Cell{Flavour: fl, Layout: f, Result: res, Duration: time.Since(start)}
			if o.CacheRegistry != nil {
				c.Pushed, c.Pulled = o.CacheRegistry.Pushed()-pushed, o.CacheRegistry.Pulled()-pulled
			}
			cells = append(cells, c)
		}
	}
	return cells, nil
}

// buildCell builds the toolchain of one flavour in one layout (a CI cell).
func (r *runner) buildCell(ctx context.Context, p pipeline.Plan, flavour string, f packaging.Format, log io.Writer) (*toolchain.Result, error) {
	c := r.toolchainConfig(p, flavour, f)
	c.Log = log
	res, err := toolchain.Build(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("toolchain %s (%s layout): %w", flavour, f, err)
	}
	return res, nil
}

func (r *runner) toolchainConfig(p pipeline.Plan, flavour string, f packaging.Format) toolchain.Config {
	return toolchain.Config{
		Lock: r.o.Lock, Flavour: flavour, Epoch: p.Epoch(),
		BuildDir:     filepath.Join(r.buildDir(p), string(f)),
		CacheDir:     filepath.Join(p.CacheDir(), "toolchain"),
		FileCacheDir: filepath.Join(p.CacheDir(), "inputs"),
		OutDir:       filepath.Join(p.OutDir(), "toolchain", string(f)),
		LibDir:       formatLibDirs[f], Mirror: r.o.Sources.MirrorDir, Log: r.o.Log,
		Registry: r.o.CacheRegistry,
	}
}

func (r *runner) packages(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	trees := map[string]map[packaging.Format]packaging.Tree{}
	var forbidden []string
	for fl, byFormat := range r.trees {
		trees[fl] = map[packaging.Format]packaging.Tree{}
		for f, dir := range byFormat {
			lay := packaging.Layouts[packaging.Format(f)]
			trees[fl][packaging.Format(f)] = packaging.Tree{Root: dir, Prefix: lay.Prefix, Libdir: lay.Libdir}
			forbidden = append(forbidden, filepath.Join(r.buildDir(p), f))
		}
	}
	// The project's verification programs (not upstream's examples).
	hello := filepath.Join(p.WorkDir(), "verify-programs")
	if err := os.RemoveAll(hello); err != nil {
		return err
	}
	for _, name := range []string{testprog.Hello, testprog.Null} {
		if err := fsutil.WriteFileAtomic(filepath.Join(hello, name), testprog.Source(name), 0o644); err != nil {
			return err
		}
	}
	in := packaging.Inputs{Trees: trees, Hello: hello, LicenseFile: filepath.Join(p.WorkDir(), "src", "LICENSE"), Forbidden: forbidden, Key: r.o.PGPKey}
	if fi, err := os.Stat(filepath.Join(p.WorkDir(), "src", "examples")); err == nil && fi.IsDir() {
		in.Examples = filepath.Join(p.WorkDir(), "src", "examples")
	}
	return packaging.BuildAll(ctx, p, in, l)
}

func (r *runner) sbom(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	if err := sbom.WriteLock(p.OutDir(), r.o.Lock, l); err != nil {
		return err
	}
	for _, fl := range p.Flavours() {
		var tree []sbom.TreeFile
		for _, m := range l.Find(pipeline.KindTreeManifest, fl) {
			t, err := readManifest(filepath.Join(p.OutDir(), m.Path))
			if err != nil {
				return err
			}
			tree = t
		}
		if _, err := sbom.WriteFlavour(p.OutDir(), sbom.Input{Lock: r.o.Lock, Flavour: fl, Artifacts: l.Artifacts(), Tree: tree}, l); err != nil {
			return fmt.Errorf("SBOM of %s: %w", fl, err)
		}
	}
	return nil
}

// readManifest reads the files of a toolchain tree manifest
// (toolchain.ReadManifest).
func readManifest(path string) ([]sbom.TreeFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the tree manifest: %w", err)
	}
	defer f.Close()
	entries, err := toolchain.ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []sbom.TreeFile
	for _, e := range entries {
		if e.Type == 'f' {
			out = append(out, sbom.TreeFile{Path: e.Path, Mode: e.Mode, Size: e.Size, SHA256: e.SHA256})
		}
	}
	return out, nil
}

func (r *runner) reposConfig(p pipeline.Plan) repos.Config {
	return repos.Config{Root: r.o.RepoRoot, URL: r.o.RepoURL, Key: r.key, Epoch: p.Epoch(), Version: p.Version(), RequireReleaseKey: r.o.Official, Keep: r.o.Keep}
}

func (r *runner) repos(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	var debs, rpms []string
	for _, a := range l.Find(pipeline.KindDeb, "") {
		debs = append(debs, filepath.Join(p.OutDir(), a.Path))
	}
	for _, a := range l.Find(pipeline.KindRPM, "") {
		rpms = append(rpms, filepath.Join(p.OutDir(), a.Path))
	}
	s, err := repos.Prepare(ctx, r.reposConfig(p), debs, rpms)
	if err != nil {
		return err
	}
	r.staged = s
	c := r.reposConfig(p)
	// The ledger records publications relative to the publish root: a
	// verification resolves them against the root it is given, never
	// against the directory the release ran in.
	apt, dnf := c.StagedDirs(s)
	for _, p := range []struct {
		kind      pipeline.Kind
		name, dir string
		pub       string
	}{{pipeline.KindAptRepo, "apt", apt, s.Apt}, {pipeline.KindDnfRepo, "dnf", dnf, s.Dnf}} {
		rel, err := filepath.Rel(c.Root, p.dir)
		if err != nil {
			return fmt.Errorf("recording the %s publication: %w", p.name, err)
		}
		l.Add(pipeline.Artifact{Kind: p.kind, Name: p.name, Path: filepath.ToSlash(rel), Commit: p.pub})
	}
	return nil
}

func (r *runner) publish(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) (err error) {
	defer func() { r.publishedLive = r.live(p) }()
	if skipped := p.Skipped(); len(skipped) > 0 || l.Snapshot() {
		if r.o.Official {
			return fmt.Errorf("this run skipped stages (%s): it is a snapshot and is never published as a release", strings.Join(skipped, ", "))
		}
		// Nothing unverified goes live, in any mode: a snapshot stops here.
		c := r.reposConfig(p)
		apt, dnf := c.StagedDirs(r.staged)
		if r.o.Log != nil {
			fmt.Fprintf(r.o.Log, "%-12s SNAPSHOT (skipped: %s): staged, NOT switched live: %s and %s.\n"+
				"%-12s look at it with `go run mage.go repo:staged` (serves it as /apt/ and /dnf/ on HALVM_REPO_ADDR) or any web server pointed at those directories; the next run removes it\n",
				"publish", strings.Join(skipped, ", "), apt, dnf, "")
		}
		return nil
	}
	if err := repos.Activate(r.reposConfig(p), r.staged); err != nil {
		return err
	}
	// The release files (SBOMs, provenance, signed SHA256SUMS) go beside the
	// repositories; a trial that skipped signing has none.
	if len(l.Find(pipeline.KindChecksums, "")) > 0 {
		if _, err := repos.PublishFiles(ctx, r.reposConfig(p), p.PackageVersion(), p.OutDir()); err != nil {
			return err
		}
	} else if r.o.Official {
		return errors.New("no signed SHA256SUMS: an official release publishes its release files")
	}
	return r.publishImages(ctx, p, l)
}

// ToolchainConfig is the toolchain build of a flavour in the Debian layout,
// as the release runs it (for the plan and toolchain targets).
func ToolchainConfig(p pipeline.Plan, lock *pins.Lock, flavour string) toolchain.Config {
	r := &runner{o: Options{Lock: lock}}
	return r.toolchainConfig(p, flavour, packaging.Deb)
}

// progressWriter sends a build's whole output to a log file and its
// one-line step reports ("toolchain <flavour>: step ...") to progress.
type progressWriter struct {
	file     io.Writer
	progress io.Writer
	partial  []byte
}

func (w *progressWriter) Write(b []byte) (int, error) {
	if _, err := w.file.Write(b); err != nil {
		return 0, err
	}
	if w.progress == nil {
		return len(b), nil
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i+1]
		if bytes.HasPrefix(line, []byte("toolchain ")) {
			_, _ = w.progress.Write(line)
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}
