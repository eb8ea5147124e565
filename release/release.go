// Package release composes every stage of a HaLVM release into one ordered
// list — the whole release, readable on one screen in Stages — and runs it
// against a validated plan, writing dist/ledger.json and dist/events.jsonl.
// A failure anywhere publishes nothing: the repositories are only staged
// until the publish stage, which runs last, after verify.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sources"
)

// Options is everything about a run that is not in the plan.
type Options struct {
	Lock      *pins.Lock
	PGPKey    pgp.KeySource    // archive key: repositories, rpm headers, SHA256SUMS.asc
	CosignKey cosign.KeySource // images, attestations, SHA256SUMS.sig
	RepoRoot  string           // publish root of the repositories
	RepoURL   string           // where users fetch them
	Registry  string           // image repository prefix, e.g. 127.0.0.1:5000/halvm; "" keeps images in dist/ only
	Sources   sources.Options  // mirror settings (CacheDir is set from the plan)
	// Official marks a real release: development keys, pending pins and
	// skipped stages are refused. A run that is not official is a trial.
	Official bool
	Log      io.Writer // one line per stage, progress; nil is silent

	// breakStage, set by tests, makes the named stage fail deliberately.
	breakStage string
}

// runner carries what stages hand to each other beyond the ledger.
type runner struct {
	o      Options
	key    *pgp.Key
	signer cosignSigner
	trees  map[string]map[string]string // flavour -> format -> installed tree
	staged repos.Staged
	img    imageState // images pushed by digest (image), signed (sign), tagged (publish)
}

// Stages is the release, in order.
func (r *runner) Stages() []pipeline.Stage {
	return []pipeline.Stage{
		{Name: "preflight", Required: true, Run: r.preflight, Doc: "lock valid and complete, keys usable, host tools present"},
		{Name: "sources", Required: true, Run: r.sources, Doc: "fetch and verify every pinned input, check out the source tree"},
		{Name: "toolchain", Required: true, Run: r.toolchain, Doc: "build the toolchain of each flavour with every RTS way (step cache)"},
		{Name: "packages", Required: true, Run: r.packages, Doc: "signed, reproducible .deb and .rpm of each flavour and the keyring"},
		{Name: "image", Required: true, Run: r.image, Doc: "OCI image of each flavour from the same .deb, pushed by digest (untagged)"},
		{Name: "sbom", Required: true, Run: r.sbom, Doc: "SPDX, CycloneDX and SLSA provenance of each flavour"},
		{Name: "repos", Required: true, Run: r.repos, Doc: "stage signed apt and dnf publications (not live yet)"},
		{Name: "sign", Required: true, Run: r.sign, Doc: "cosign signatures and attestations on the images; signed SHA256SUMS"},
		{Name: "verify", Required: true, Run: r.verify, Doc: "the verification suite on the staged release"},
		{Name: "publish", Required: true, Run: r.publish, Doc: "switch the repositories live and tag the images"},
	}
}

// Stages lists the release's stages (for plan and -h).
func Stages() []pipeline.Stage { return (&runner{}).Stages() }

// Run runs the release. The ledger is written to dist/ledger.json whatever
// happens, so a failed run shows which stage failed and why.
func Run(ctx context.Context, p pipeline.Plan, o Options) (*pipeline.Ledger, error) {
	if err := os.MkdirAll(p.OutDir(), 0o755); err != nil {
		return nil, err
	}
	ev, err := os.OpenFile(filepath.Join(p.OutDir(), "events.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer ev.Close()
	r := &runner{o: o, trees: map[string]map[string]string{}}
	var l pipeline.Ledger
	stages := r.Stages()
	for i := range stages {
		if stages[i].Name == o.breakStage {
			stages[i].Run = func(context.Context, pipeline.Plan, *pipeline.Ledger) error {
				return errors.New("deliberately broken (test)")
			}
		}
	}
	runErr := pipeline.Run(ctx, p, stages, &l, pipeline.Options{Log: o.Log, Events: pipeline.NewEventLog(ev)})
	if err := l.WriteFile(p.LedgerPath()); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing the ledger: %w", err)
	}
	return &l, runErr
}
