package release

import (
	"context"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
)

// sourcesResult is what sources hands on: the checked-out source tree
// (its LICENSE and examples go into the packages).
type sourcesResult struct {
	srcDir string
}

// sourcesInput is what sources reads: the lock and where to check out.
type sourcesInput struct {
	lock   *pins.Lock
	srcDir string
}

func (r *runner) sourcesInput(p pipeline.Plan) (sourcesInput, error) {
	lock, err := r.lock()
	return sourcesInput{lock: lock, srcDir: filepath.Join(p.WorkDir(), "src")}, err
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
	in, err := r.sourcesInput(p)
	if err != nil {
		return err
	}
	if _, err := sources.FetchFresh(ctx, in.lock, in.srcDir, r.sourcesOptions(p, l)); err != nil {
		return err
	}
	r.out.sources = &sourcesResult{srcDir: in.srcDir}
	return nil
}
