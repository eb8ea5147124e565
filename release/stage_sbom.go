package release

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sbom"
)

// sbomInput is what sbom reads: the lock, and from the ledger every
// artifact so far and each flavour's toolchain tree manifest.
type sbomInput struct {
	lock      *pins.Lock
	manifests map[string]string // flavour -> tree manifest path
}

func (r *runner) sbomInput(p pipeline.Plan, l *pipeline.Ledger) (sbomInput, error) {
	lock, err := r.lock()
	if err != nil {
		return sbomInput{}, err
	}
	in := sbomInput{lock: lock, manifests: map[string]string{}}
	var errs []error
	for _, fl := range p.Flavours() {
		m := l.Find(pipeline.KindTreeManifest, fl)
		if len(m) == 0 {
			errs = append(errs, pipeline.MissingInput(p, l, "sbom", "the "+fl+" tree manifest (ledger kind "+string(pipeline.KindTreeManifest)+")", "toolchain"))
			continue
		}
		in.manifests[fl] = filepath.Join(p.OutDir(), m[len(m)-1].Path)
	}
	return in, errors.Join(errs...)
}

func (r *runner) sbom(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	in, err := r.sbomInput(p, l)
	if err != nil {
		return err
	}
	if err := sbom.WriteLock(p.OutDir(), in.lock, l); err != nil {
		return err
	}
	for _, fl := range p.Flavours() {
		tree, err := sbom.ReadTree(in.manifests[fl])
		if err != nil {
			return err
		}
		if _, err := sbom.WriteFlavour(p.OutDir(), sbom.Input{Lock: in.lock, Flavour: fl, Artifacts: l.Artifacts(), Tree: tree}, l); err != nil {
			return fmt.Errorf("SBOM of %s: %w", fl, err)
		}
	}
	return nil
}
