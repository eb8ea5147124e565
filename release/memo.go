package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/repos"
)

// What a re-run reuses (issue 18), stage by stage:
//
//   - preflight and sources always run: they check the host, the keys and
//     every pin against the lock, in about a second.
//   - toolchain, packages, image, sbom, repos, sign and publish are skipped
//     ("unchanged since <run>") when their inputs — everything the stages
//     before them produced, by digest (pipeline.LedgerInputs), this
//     program, the plan, the lock, the run's options, the archive key and
//     the versions of the host packages the stage uses — are those an
//     earlier run recorded, and their outputs are still on disk with the
//     recorded digests. Their hand-offs (trees, staged publications,
//     images and signatures in the registry, tags) are restored.
//   - image, when it runs, still reuses each image whose own key (base
//     pins, .deb digest, image config, program, tools) is unchanged.
//   - verify reuses each passing verdict recorded for the same inputs
//     (verifyReuse); an official release never does.
//
// HALVM_FRESH names stages that run regardless.

// sha256Hex is the hex sha256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// inputs are what every memoized stage reads besides its own inputs.
func (r *runner) inputs(ctx context.Context, stage string, p pipeline.Plan, l *pipeline.Ledger) (map[string]string, error) {
	if r.o.Lock == nil {
		return nil, errors.New("no lock loaded")
	}
	key, err := r.archiveKey(p, l, stage)
	if err != nil {
		return nil, err
	}
	prog, err := pipeline.ProgramDigest()
	if err != nil {
		return nil, err
	}
	tools, err := r.hostTools(ctx, stage)
	if err != nil {
		return nil, err
	}
	m := pipeline.LedgerInputs(l)
	m["program"] = prog
	m["plan"] = planKey(p)
	m["lock"] = sha256Hex(pins.Bytes(r.o.Lock))
	m["options"] = r.optionsKey()
	m["archive-key"] = sha256Hex(key.PublicBinary())
	m["host-tools"] = tools
	return m, nil
}

func planKey(p pipeline.Plan) string {
	var skip []string
	for _, s := range p.Skipped() {
		why, _ := p.SkipReason(s)
		skip = append(skip, s+"="+why)
	}
	return fmt.Sprintf("version=%s release=%d epoch=%d flavours=%s out=%s work=%s cache=%s skip=%q",
		p.Version(), p.Release(), p.Epoch().Unix(), strings.Join(p.Flavours(), ","), p.OutDir(), p.WorkDir(), p.CacheDir(), skip)
}

// optionsKey is every option of the run that a stage's outputs depend on.
// A throwaway registry (the demo's: a new port every run, gone after it)
// is not: images and signatures are pushed to it again from dist/.
func (r *runner) optionsKey() string {
	reg := r.o.Registry
	if r.o.ThrowawayRegistry && reg != "" {
		reg = "(a throwaway registry)"
	}
	var archives []string
	for k, v := range r.o.Sources.DebArchives {
		archives = append(archives, k+"="+v)
	}
	sort.Strings(archives)
	return fmt.Sprintf("registry=%s repo-root=%s repo-url=%s official=%v keep=%d mirror=%s mirror-map=%v archives=%s apt-root=%s",
		reg, absPath(r.o.RepoRoot), r.o.RepoURL, r.o.Official, r.o.Keep, r.o.Sources.MirrorDir, r.o.Sources.MirrorMap, archives, r.o.Sources.AptRoot)
}

// hostTools are the installed versions of the host packages a stage uses
// (the hostreq table), as dpkg knows them.
func (r *runner) hostTools(ctx context.Context, stage string) (string, error) {
	if v, ok := r.tools[stage]; ok {
		return v, nil
	}
	names := hostreq.Names(hostreq.NeededBy(stage))
	v := "none"
	if len(names) > 0 {
		// A package that is not installed is part of the answer
		// (dpkg-query names it and exits 1); no dpkg-query is no answer.
		var stderr bytes.Buffer
		out, err := run.Output(ctx, run.Cmd{Args: append([]string{"dpkg-query", "-W", "-f=${Package}=${Version}\\n"}, names...), Env: run.BaseEnv(), Stderr: &stderr})
		if err != nil && len(out) == 0 {
			return "", fmt.Errorf("the versions of the host packages of %s: %w: %s", stage, err, strings.TrimSpace(stderr.String()))
		}
		lines := append(strings.Fields(string(out)), strings.Split(strings.TrimSpace(stderr.String()), "\n")...)
		sort.Strings(lines)
		v = strings.Join(lines, " ")
	}
	if r.tools == nil {
		r.tools = map[string]string{}
	}
	r.tools[stage] = v
	return v, nil
}

// reuseOf is the Reuse of a stage with the common inputs, the stage's
// own extra inputs (nil: none) and the given outputs, state and restore.
func (r *runner) reuseOf(stage string, extra func(context.Context, pipeline.Plan, *pipeline.Ledger, map[string]string) error, re pipeline.Reuse) *pipeline.Reuse {
	re.Inputs = func(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) (map[string]string, error) {
		m, err := r.inputs(ctx, stage, p, l)
		if err != nil {
			return nil, err
		}
		if extra != nil {
			return m, extra(ctx, p, l, m)
		}
		return m, nil
	}
	return &re
}

// treeDigests digests directories by name.
func treeDigests(dirs map[string]string) (map[string]string, error) {
	m := map[string]string{}
	for name, dir := range dirs {
		sum, err := pipeline.TreeDigest(dir)
		if err != nil {
			return nil, err
		}
		m[name] = sum
	}
	return m, nil
}

// keptForResume are the publications a run that failed at publish staged
// and verified: the next run keeps them (removing every other publication
// that never went live) so that, when nothing changed, it publishes
// exactly them.
func keptForResume(prev *pipeline.Ledger) repos.Staged {
	if prev == nil {
		return repos.Staged{}
	}
	var pub, rep pipeline.StageRecord
	for _, s := range prev.Stages() {
		switch s.Name {
		case "publish":
			pub = s
		case "repos":
			rep = s
		}
	}
	var kept repos.Staged
	if pub.Status != pipeline.Failed || rep.Status != pipeline.Passed || rep.Memo == nil || json.Unmarshal(rep.Memo.State, &kept) != nil {
		return repos.Staged{}
	}
	return kept
}

// unpublishedOf is the part of s that never went live (what a failed run
// may discard).
func unpublishedOf(c repos.Config, s repos.Staged) repos.Staged {
	keep := func(root, name string) string {
		un, err := publish.Unpublished(root)
		if err != nil || !contains(un, name) {
			return ""
		}
		return name
	}
	return repos.Staged{Apt: keep(c.AptDir(), s.Apt), Dnf: keep(c.DnfDir(), s.Dnf)}
}

// previousLedger is the ledger an earlier run left in the output
// directory, or nil (a first run, or one that cannot be read: then
// every stage runs).
func previousLedger(p pipeline.Plan, logf func(string, ...any)) *pipeline.Ledger {
	if _, err := os.Stat(p.LedgerPath()); err != nil {
		return nil
	}
	prev, err := pipeline.ReadLedger(p.LedgerPath())
	if err != nil {
		logf("%-12s every stage runs: the earlier run's ledger cannot be read: %v", "start", err)
		return nil
	}
	return prev
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
