package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/pins"
)

// preflightResult is what preflight hands on: the loaded archive key
// (repositories, SHA256SUMS.asc, the memo inputs of every later stage).
type preflightResult struct {
	key *pgp.Key
}

// lock is the run's lock, which preflight, sources, toolchain, image,
// sbom and verify read (an option of the run, no stage's result).
func (r *runner) lock() (*pins.Lock, error) {
	if r.o.Lock == nil {
		return nil, errors.New("no lock loaded")
	}
	return r.o.Lock, nil
}

// archiveKey is the archive key preflight loaded, or the error of stage,
// which needs it, when preflight has left none.
func (r *runner) archiveKey(p pipeline.Plan, l *pipeline.Ledger, stage string) (*pgp.Key, error) {
	if r.out.preflight == nil || r.out.preflight.key == nil {
		return nil, pipeline.MissingInput(p, l, stage, "the archive key", "preflight")
	}
	return r.out.preflight.key, nil
}

func (r *runner) preflight(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	lock, err := r.lock()
	if err != nil {
		return err
	}
	var errs []error
	if pend := lock.Pending(); len(pend) > 0 {
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
		r.out.preflight = &preflightResult{key: k}
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
