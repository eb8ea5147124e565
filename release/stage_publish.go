package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/repos"
)

// publishInput is what publish reads: the archive key (preflight: the
// switch verifies what it makes live), the staged publications (repos)
// and, through publishImages, the images pushed by digest (image).
type publishInput struct {
	key    *pgp.Key
	staged repos.Staged
}

func (r *runner) publishInput(p pipeline.Plan, l *pipeline.Ledger) (publishInput, error) {
	k, s, err := r.keyAndStaged(p, l, "publish")
	return publishInput{key: k, staged: s}, err
}

// keyAndStaged are the archive key (preflight) and the staged
// publications (repos) for stage, which reads both, or what is missing.
func (r *runner) keyAndStaged(p pipeline.Plan, l *pipeline.Ledger, stage string) (*pgp.Key, repos.Staged, error) {
	k, err := r.archiveKey(p, l, stage)
	if r.out.repos == nil {
		return k, repos.Staged{}, errors.Join(err, pipeline.MissingInput(p, l, stage, "the staged publications", "repos"))
	}
	return k, r.out.repos.staged, err
}

func (r *runner) publish(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) (err error) {
	in, err := r.publishInput(p, l)
	if err != nil {
		return err
	}
	defer func() { r.out.publish = &publishResult{live: r.live(p)} }()
	c := r.reposConfig(p, in.key)
	if skipped := p.Skipped(); len(skipped) > 0 || l.Snapshot() {
		if r.o.Official {
			return fmt.Errorf("this run skipped stages (%s): it is a snapshot and is never published as a release", strings.Join(skipped, ", "))
		}
		// Nothing unverified goes live, in any mode: a snapshot stops here.
		apt, dnf := c.StagedDirs(in.staged)
		if r.o.Log != nil {
			fmt.Fprintf(r.o.Log, "%-12s SNAPSHOT (skipped: %s): staged, NOT switched live: %s and %s.\n"+
				"%-12s look at it with `go run mage.go repo:staged` (serves it as /apt/ and /dnf/ on HALVM_REPO_ADDR) or any web server pointed at those directories; the next run removes it\n",
				"publish", strings.Join(skipped, ", "), apt, dnf, "")
		}
		return nil
	}
	if err := repos.Activate(c, in.staged); err != nil {
		return err
	}
	// The release files (SBOMs, provenance, signed SHA256SUMS) go beside the
	// repositories; a trial that skipped signing has none.
	if len(l.Find(pipeline.KindChecksums, "")) > 0 {
		if _, err := repos.PublishFiles(ctx, c, p.PackageVersion(), p.OutDir()); err != nil {
			return err
		}
	} else if r.o.Official {
		return errors.New("no signed SHA256SUMS: an official release publishes its release files")
	}
	return r.publishImages(ctx, p, l)
}

// liveState names the live publications after publish.
type liveState struct{ Apt, Dnf, Files string }

// publishResult is what publish leaves: the live publications (recorded
// in its memo, for a re-run to tell that nothing changed since).
type publishResult struct {
	live liveState
}

func (r *runner) live(p pipeline.Plan) liveState {
	c := r.reposConfig(p, nil)
	cur := func(root string) string {
		n, err := publish.Current(root)
		if err != nil {
			return "none"
		}
		return n
	}
	return liveState{Apt: cur(c.AptDir()), Dnf: cur(c.DnfDir()), Files: cur(c.FilesDir())}
}

// publishReuse: publish is unchanged when its inputs are and the live
// publications are still those it left; a reuse tags the images again
// (a throwaway registry has lost them; a lasting one keeps them).
func (r *runner) publishReuse() *pipeline.Reuse {
	return r.reuseOf("publish", nil, pipeline.Reuse{
		State: func() (json.RawMessage, error) {
			var lv liveState
			if r.out.publish != nil {
				lv = r.out.publish.live
			}
			return json.Marshal(lv)
		},
		Outputs: func(_ context.Context, p pipeline.Plan, _ json.RawMessage) (map[string]string, error) {
			lv := r.live(p)
			return map[string]string{"live apt": lv.Apt, "live dnf": lv.Dnf, "live files": lv.Files}, nil
		},
		Restore: func(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger, _ pipeline.Memo) error {
			r.out.publish = &publishResult{live: r.live(p)}
			if len(p.Skipped()) > 0 || l.Snapshot() {
				return nil
			}
			return r.publishImages(ctx, p, l)
		},
	})
}

// publishImages tags the images pushed by digest: 2.4.3, 2.4.3-<release>,
// latest (and the base image's bookworm). It runs last, after verify, so a
// failure anywhere before leaves no tag.
func (r *runner) publishImages(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	if len(r.pushed()) == 0 {
		return nil
	}
	if err := oci.Tag(ctx, r.pushed()); err != nil {
		return err
	}
	if r.o.Log != nil {
		for _, pu := range r.pushed() {
			var tags []string
			for _, t := range pu.Tags {
				tags = append(tags, t.TagStr())
			}
			fmt.Fprintf(r.o.Log, "publish: %s tagged %s\n", pu.Digest.Context(), strings.Join(tags, ", "))
		}
	}
	return nil
}
