package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// verify runs the verification suite (package verify/checks) on the
// staged repositories and the release directory, writing dist/verify.json.
func (r *runner) verify(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	c := r.reposConfig(p)
	apt, dnf := c.StagedDirs(r.staged)
	if r.key == nil {
		return errors.New("no archive key loaded (the preflight stage did not run)")
	}
	cfg := checks.Config{
		AptDir: apt, DnfDir: dnf,
		ArchiveKey: r.key.PublicBinary(),
		Lock:       r.o.Lock,
		Flavours:   p.Flavours(),
		// What users have now: the live publication the staged one extends.
		PreviousAptDir: checks.PreviousPublication(apt),
		Skipped:        map[string]string{},
		Rebuild: func(ctx context.Context, outDir string, v checks.Variation, from checks.Publications) error {
			return Rebuild(ctx, p, r.o, outDir, v, from)
		},
	}
	if r.o.RebuildFrom != "" {
		cfg.Rebuild = adoptRebuild(r.o.RebuildFrom)
	}
	for _, s := range p.Skipped() {
		why, _ := p.SkipReason(s)
		cfg.Skipped[s] = why
	}
	if pub, err := r.cosignPublic(); err == nil {
		cfg.CosignKey = pub
	} else if _, skipped := cfg.Skipped["sign"]; !skipped {
		return fmt.Errorf("the cosign public key: %w", err)
	}
	// The stage's ledger is the one in memory: write it for the checks to
	// read the same thing a later `mage verify` reads.
	if err := l.WriteFile(p.LedgerPath()); err != nil {
		return fmt.Errorf("writing the ledger for the verification: %w", err)
	}
	env, err := verify.LoadEnvAt(p.OutDir(), r.o.RepoRoot, r.verifyCacheDir(p))
	if err != nil {
		if werr := verify.WriteAborted(filepath.Join(p.OutDir(), "verify.json"), nil, err); werr != nil {
			err = errors.Join(err, werr)
		}
		return err
	}
	if p.LockPath() != "" {
		if err := env.AddInput("lock", p.LockPath()); err != nil {
			return err
		}
	}
	env.SetPath("apt-publication", apt)
	env.SetPath("dnf-publication", dnf)
	log := r.o.Log
	if log == nil {
		log = io.Discard
	}
	err = verify.Verify(ctx, env, checks.Suite(cfg), verify.Options{Log: log, Progress: log})
	if _, aerr := l.AddFile(pipeline.KindReport, "verify.json", "", filepath.Join(p.OutDir(), "verify.json"), "verify.json"); aerr != nil && err == nil {
		err = aerr
	}
	return err
}

// verifyCacheDir is Options.VerifyCache, else <cache>/verify.
func (r *runner) verifyCacheDir(p pipeline.Plan) string {
	if r.o.VerifyCache != "" {
		return r.o.VerifyCache
	}
	return filepath.Join(p.CacheDir(), "verify")
}

// cosignPublic is the public half of the release's cosign key.
func (r *runner) cosignPublic() ([]byte, error) {
	sv := r.signer
	if sv == nil {
		var err error
		if sv, err = cosign.LoadSigner(r.o.CosignKey); err != nil {
			return nil, err
		}
	}
	return cosign.PublicKeyPEM(sv)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
