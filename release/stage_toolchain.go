package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/toolchain"
)

// toolchainResult is what toolchain hands on: the installed tree of each
// flavour in each package format (flavour -> format -> directory).
type toolchainResult struct {
	trees map[string]map[string]string
}

// buildDir is the fixed build root every toolchain is built below.
func buildDir(p pipeline.Plan) string { return p.WorkDir() }

// formatLibDirs are the libdirs each package format installs the toolchain
// with: the paths are baked into the toolchain, so each format gets its own
// install.
var formatLibDirs = map[packaging.Format]string{
	packaging.Deb: packaging.Layouts[packaging.Deb].Libdir,
	packaging.RPM: packaging.Layouts[packaging.RPM].Libdir,
}

func (r *runner) toolchain(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	// What it reads is the lock (in r.o, which buildCell hands on).
	if _, err := r.lock(); err != nil {
		return err
	}
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
	trees := map[string]map[string]string{}
	for _, fl := range p.Flavours() {
		for _, f := range packaging.Formats {
			res, err := buildCell(ctx, p, r.o, fl, f, log)
			if err != nil {
				return fmt.Errorf("%w (full log: %s)", err, logPath)
			}
			if trees[fl] == nil {
				trees[fl] = map[string]string{}
			}
			trees[fl][string(f)] = res.StageDir
			if f == packaging.Deb { // one manifest per flavour in the ledger: the Debian layout's
				if err := res.Record(l, p.OutDir()); err != nil {
					return err
				}
			}
		}
	}
	r.out.toolchain = &toolchainResult{trees: trees}
	return nil
}

// toolchainReuse: the installed trees (below the work directory) are
// outputs, digested whole; the packages stage gets them back.
func (r *runner) toolchainReuse() *pipeline.Reuse {
	return r.reuseOf("toolchain", nil, pipeline.Reuse{
		State: func() (json.RawMessage, error) {
			var trees map[string]map[string]string
			if r.out.toolchain != nil {
				trees = r.out.toolchain.trees
			}
			return json.Marshal(trees)
		},
		Outputs: func(_ context.Context, p pipeline.Plan, state json.RawMessage) (map[string]string, error) {
			var trees map[string]map[string]string
			if err := json.Unmarshal(state, &trees); err != nil {
				return nil, err
			}
			dirs := map[string]string{}
			for _, fl := range p.Flavours() {
				for _, f := range packaging.Formats {
					dir := trees[fl][string(f)]
					if dir == "" {
						return nil, fmt.Errorf("no %s tree of %s recorded", f, fl)
					}
					dirs["tree "+fl+" "+string(f)] = dir
				}
			}
			return treeDigests(dirs)
		},
		Restore: func(_ context.Context, _ pipeline.Plan, _ *pipeline.Ledger, prev pipeline.Memo) error {
			var trees map[string]map[string]string
			if err := json.Unmarshal(prev.State, &trees); err != nil {
				return err
			}
			r.out.toolchain = &toolchainResult{trees: trees}
			return nil
		},
	})
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
	var cells []Cell
	for _, fl := range p.Flavours() {
		for _, f := range layouts {
			var pushed, pulled int64
			if o.CacheRegistry != nil {
				pushed, pulled = o.CacheRegistry.Pushed(), o.CacheRegistry.Pulled()
			}
			start := time.Now()
			res, err := buildCell(ctx, p, o, fl, f, o.Log)
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
func buildCell(ctx context.Context, p pipeline.Plan, o Options, flavour string, f packaging.Format, log io.Writer) (*toolchain.Result, error) {
	c := toolchainConfig(p, o, flavour, f)
	c.Log = log
	res, err := toolchain.Build(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("toolchain %s (%s layout): %w", flavour, f, err)
	}
	return res, nil
}

func toolchainConfig(p pipeline.Plan, o Options, flavour string, f packaging.Format) toolchain.Config {
	return toolchain.Config{
		Lock: o.Lock, Flavour: flavour, Epoch: p.Epoch(),
		BuildDir:     filepath.Join(buildDir(p), string(f)),
		CacheDir:     filepath.Join(p.CacheDir(), "toolchain"),
		FileCacheDir: filepath.Join(p.CacheDir(), "inputs"),
		OutDir:       filepath.Join(p.OutDir(), "toolchain", string(f)),
		LibDir:       formatLibDirs[f], Mirror: o.Sources.MirrorDir, Log: o.Log,
		Registry: o.CacheRegistry,
	}
}

// ToolchainConfig is the toolchain build of a flavour in the Debian layout,
// as the release runs it (for the plan and toolchain targets).
func ToolchainConfig(p pipeline.Plan, lock *pins.Lock, flavour string) toolchain.Config {
	return toolchainConfig(p, Options{Lock: lock}, flavour, packaging.Deb)
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
