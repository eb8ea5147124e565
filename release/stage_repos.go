package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/repos"
)

// reposResult is what repos hands on: the staged (not yet live)
// publications, which verify checks and publish switches live.
type reposResult struct {
	staged repos.Staged
}

// stagedOrNone is what r (nil: repos did not stage anything) staged.
func (r *reposResult) stagedOrNone() repos.Staged {
	if r == nil {
		return repos.Staged{}
	}
	return r.staged
}

// reposInput is what repos reads: the archive key (preflight) and the
// .deb and .rpm files the packages stage recorded in the ledger.
type reposInput struct {
	key        *pgp.Key
	debs, rpms []string
}

func (r *runner) reposInput(p pipeline.Plan, l *pipeline.Ledger) (reposInput, error) {
	var in reposInput
	var errs []error
	k, err := r.archiveKey(p, l, "repos")
	if err != nil {
		errs = append(errs, err)
	}
	in.key = k
	for _, a := range l.Find(pipeline.KindDeb, "") {
		in.debs = append(in.debs, filepath.Join(p.OutDir(), a.Path))
	}
	for _, a := range l.Find(pipeline.KindRPM, "") {
		in.rpms = append(in.rpms, filepath.Join(p.OutDir(), a.Path))
	}
	if len(in.debs)+len(in.rpms) == 0 {
		errs = append(errs, pipeline.MissingInput(p, l, "repos", "the .deb and .rpm packages (ledger kinds deb, rpm)", "packages"))
	}
	return in, errors.Join(errs...)
}

// reposConfig is the repositories' configuration; key, the archive key,
// is needed to stage and to switch live (nil for anything else).
func (r *runner) reposConfig(p pipeline.Plan, key *pgp.Key) repos.Config {
	return repos.Config{Root: r.o.RepoRoot, URL: r.o.RepoURL, Key: key, Epoch: p.Epoch(), Version: p.Version(), RequireReleaseKey: r.o.Official, Keep: r.o.Keep}
}

func (r *runner) repos(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	in, err := r.reposInput(p, l)
	if err != nil {
		return err
	}
	c := r.reposConfig(p, in.key)
	s, err := repos.Prepare(ctx, c, in.debs, in.rpms)
	if err != nil {
		return err
	}
	r.out.repos = &reposResult{staged: s}
	pubs, err := c.StagedArtifacts(s)
	if err != nil {
		return err
	}
	for _, a := range pubs {
		l.Add(a)
	}
	return nil
}

// reposReuse: the staged publications are outputs, digested whole. What
// they were staged on (the live publications) is an input; when the live
// one is this stage's own earlier output (that run published it), the
// input is what that run staged on.
func (r *runner) reposReuse() *pipeline.Reuse {
	base := func(_ context.Context, p pipeline.Plan, l *pipeline.Ledger, m map[string]string) error {
		c := r.reposConfig(p, nil)
		var prevStaged repos.Staged
		prev, ok := l.PreviousStage("repos")
		if ok && prev.Memo != nil {
			_ = json.Unmarshal(prev.Memo.State, &prevStaged)
		}
		for _, x := range []struct{ name, root, prev string }{{"apt", c.AptDir(), prevStaged.Apt}, {"dnf", c.DnfDir(), prevStaged.Dnf}} {
			key := "base " + x.name
			cur, err := publish.Current(x.root)
			switch {
			case errors.Is(err, publish.ErrNothingPublished):
				m[key] = "nothing published"
			case err != nil:
				return err
			case cur == x.prev && prev.Memo != nil && prev.Memo.Inputs[key] != "":
				m[key] = prev.Memo.Inputs[key]
			default:
				sum, err := pipeline.TreeDigest(filepath.Join(x.root, "publications", cur))
				if err != nil {
					return err
				}
				m[key] = cur + " " + sum
			}
		}
		return nil
	}
	return r.reuseOf("repos", base, pipeline.Reuse{
		State: func() (json.RawMessage, error) { return json.Marshal(r.out.repos.stagedOrNone()) },
		Outputs: func(_ context.Context, p pipeline.Plan, state json.RawMessage) (map[string]string, error) {
			var s repos.Staged
			if err := json.Unmarshal(state, &s); err != nil {
				return nil, err
			}
			apt, dnf := r.reposConfig(p, nil).StagedDirs(s)
			m, err := treeDigests(map[string]string{"publication apt": apt, "publication dnf": dnf})
			if err != nil {
				return nil, err
			}
			m["publication apt"] = s.Apt + " " + m["publication apt"]
			m["publication dnf"] = s.Dnf + " " + m["publication dnf"]
			return m, nil
		},
		Restore: func(_ context.Context, p pipeline.Plan, _ *pipeline.Ledger, prev pipeline.Memo) error {
			var s repos.Staged
			if err := json.Unmarshal(prev.State, &s); err != nil {
				return err
			}
			// Staged and never live (a run that failed at publish), or
			// live now (the run that staged them published them).
			c := r.reposConfig(p, nil)
			for _, x := range []struct{ root, name string }{{c.AptDir(), s.Apt}, {c.DnfDir(), s.Dnf}} {
				un, err := publish.Unpublished(x.root)
				if err != nil {
					return err
				}
				cur, _ := publish.Current(x.root)
				if x.name != cur && !contains(un, x.name) {
					return fmt.Errorf("%s is neither staged nor the live publication of %s", x.name, x.root)
				}
			}
			r.out.repos = &reposResult{staged: s}
			return nil
		},
	})
}
