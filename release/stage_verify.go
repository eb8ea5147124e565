package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
	"github.com/halvm/halvm-release/verify/xenboot"
)

// verifyInput is what verify reads: the archive key (preflight) and the
// staged publications (repos); the cosign key is sign's, or loaded from
// the options.
type verifyInput struct {
	key    *pgp.Key
	staged repos.Staged
}

func (r *runner) verifyInput(p pipeline.Plan, l *pipeline.Ledger) (verifyInput, error) {
	_, lerr := r.lock()
	k, s, err := r.keyAndStaged(p, l, "verify")
	return verifyInput{key: k, staged: s}, errors.Join(lerr, err)
}

// verify runs the verification suite (package verify/checks) on the
// staged repositories and the release directory, writing dist/verify.json.
func (r *runner) verify(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	in, err := r.verifyInput(p, l)
	if err != nil {
		return err
	}
	apt, dnf := r.reposConfig(p, in.key).StagedDirs(in.staged)
	cfg := checks.Config{
		AptDir: apt, DnfDir: dnf,
		ArchiveKey: in.key.PublicBinary(),
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
	suite := checks.Suite(cfg)
	reuse, key, inputs := r.verifyReuse(ctx, p, l, suite, apt, dnf, cfg.PreviousAptDir)
	rep, err := verify.VerifyReport(ctx, env, suite, verify.Options{Log: log, Progress: log, Reuse: reuse})
	if rep != nil && key != "" {
		l.SetMemo("verify", pipeline.Memo{Key: key, Inputs: inputs, Items: verdictItems(rep, key, l.Run())})
	}
	if _, aerr := l.AddFile(pipeline.KindReport, "verify.json", "", filepath.Join(p.OutDir(), "verify.json"), "verify.json"); aerr != nil && err == nil {
		err = aerr
	}
	return err
}

// verifyReuse returns the passing verdicts of the run before that may be
// reused: those recorded for exactly the same inputs (verifyInputs: every
// artifact and publication by digest, the keys, the checks' version and
// the host's pins). It also returns this run's key and inputs, under which
// this run's verdicts are recorded ("" when they cannot be digested:
// nothing is reused or recorded). An official release and HALVM_FRESH=verify
// (or all) reuse nothing.
func (r *runner) verifyReuse(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger, suite []verify.Check, apt, dnf, prevApt string) (map[string]verify.Result, string, map[string]string) {
	logf := func(format string, a ...any) {
		if r.o.Log != nil {
			fmt.Fprintf(r.o.Log, format+"\n", a...)
		}
	}
	inputs, err := r.verifyInputs(ctx, p, l, suite, apt, dnf, prevApt)
	if err != nil {
		logf("verify: every check runs and no verdict is recorded for reuse: the inputs cannot be digested: %v", err)
		return nil, "", nil
	}
	key := pipeline.MemoKey(inputs)
	prev, _ := l.PreviousStage("verify")
	reuse, why := reusableVerdicts(prev, inputs, r.o.Official, p.Fresh("verify"))
	if why != "" {
		logf("verify: every check runs: %s", why)
		return nil, key, inputs
	}
	if len(reuse) > 0 {
		runs := map[string]bool{}
		for _, res := range reuse {
			runs[res.ReusedFrom] = true
		}
		var from []string
		for run := range runs {
			from = append(from, run)
		}
		sort.Strings(from)
		logf("verify: %d of %d checks passed for exactly the same inputs in run %s: their verdicts are reused, the others run (HALVM_FRESH=verify runs every check)",
			len(reuse), len(suite), strings.Join(from, ", "))
	}
	return reuse, key, inputs
}

// reusableVerdicts are the passing verdicts the verify stage's record of
// the run before (prev) holds for exactly these inputs, or why none is
// reused: an official release never reuses one (RELEASE.md), nor does a
// run with HALVM_FRESH=verify (or all).
func reusableVerdicts(prev pipeline.StageRecord, inputs map[string]string, official, fresh bool) (map[string]verify.Result, string) {
	key := pipeline.MemoKey(inputs)
	switch {
	case official:
		return nil, "an official release never reuses a verdict (RELEASE.md)"
	case fresh:
		return nil, "HALVM_FRESH"
	case prev.Memo == nil:
		return nil, ""
	case prev.Memo.Key != key:
		return nil, fmt.Sprintf("inputs changed since run %s: %s", prev.Memo.Run, strings.Join(pipeline.DiffNames(prev.Memo.Inputs, inputs), ", "))
	}
	reuse := map[string]verify.Result{}
	for name, it := range prev.Memo.Items {
		var res verify.Result
		if it.Key != key || json.Unmarshal(it.Data, &res) != nil || res.Status != verify.Pass || res.Name != name {
			continue
		}
		res.ReusedFrom = it.Run
		reuse[name] = res
	}
	return reuse, ""
}

// verdictItems are the passing verdicts of a report, for a later run to
// reuse under key.
func verdictItems(rep *verify.Report, key, run string) map[string]pipeline.Item {
	items := map[string]pipeline.Item{}
	for _, res := range rep.Results {
		if res.Status != verify.Pass {
			continue
		}
		from := res.ReusedFrom
		if from == "" {
			from = run
		}
		data, err := json.Marshal(res)
		if err != nil {
			continue
		}
		items[res.Name] = pipeline.Item{Key: key, Run: from, Data: data}
	}
	return items
}

// verifyInputs are what a verdict depends on: the run's inputs (every
// artifact, the program, the lock, the keys), the publications verified and
// the one upgraded from, the checks (their version and the suite), the
// cosign key, and the host's pins: the Xen machine (its Debian packages),
// the clean Debian root the install checks start from (its installed
// packages), the host's Debian package indexes, and the host packages the
// checks run (QEMU among them).
func (r *runner) verifyInputs(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger, suite []verify.Check, apt, dnf, prevApt string) (map[string]string, error) {
	m, err := r.inputs(ctx, "verify", p, l)
	if err != nil {
		return nil, err
	}
	m["check-version"] = checks.SuiteVersion
	var names []string
	for _, c := range suite {
		names = append(names, fmt.Sprintf("%s/%s required=%v", c.Family, c.Name, c.Required))
	}
	m["suite"] = strings.Join(names, " ")
	pub, err := r.cosignPublic()
	if err != nil {
		return nil, err
	}
	m["cosign-key"] = sha256Hex(pub)
	m["verify-cache"] = r.verifyCacheDir(p)
	pubs := map[string]string{"publication apt": apt, "publication dnf": dnf}
	if prevApt != "" {
		pubs["publication previous apt"] = prevApt
	}
	sums, err := treeDigests(pubs)
	if err != nil {
		return nil, err
	}
	for k, v := range sums {
		m[k] = v
	}
	cache := r.verifyCacheDir(p)
	machine, err := xenboot.Prepare(ctx, filepath.Join(cache, "xenboot"))
	if err != nil {
		return nil, err
	}
	m["host xen machine"] = machine.Key
	tmpl, err := rootfs.PrepareSpec(ctx, filepath.Join(cache, "rootfs"), checks.RootfsSpec)
	if err != nil {
		return nil, err
	}
	_, status, err := fsutil.HashFile(filepath.Join(tmpl, "var", "lib", "dpkg", "status"))
	if err != nil {
		return nil, err
	}
	m["host rootfs packages"] = status
	lists, err := aptIndexes()
	if err != nil {
		return nil, err
	}
	m["host package indexes"] = lists
	return m, nil
}

// aptIndexes digests the host's Debian package indexes: what apt would
// install (in the clean roots too) changes only when they do.
func aptIndexes() (string, error) {
	files, err := filepath.Glob("/var/lib/apt/lists/*_Packages*")
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", errors.New("no Debian package indexes in /var/lib/apt/lists (run apt-get update)")
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		_, sum, err := fsutil.HashFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", filepath.Base(f), sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifyCacheDir is Options.VerifyCache, else <cache>/verify.
func (r *runner) verifyCacheDir(p pipeline.Plan) string {
	if r.o.VerifyCache != "" {
		return r.o.VerifyCache
	}
	return filepath.Join(p.CacheDir(), "verify")
}

// cosignPublic is the public half of the release's cosign key: the key
// sign loaded, else the options'.
func (r *runner) cosignPublic() ([]byte, error) {
	var sv signature.SignerVerifier
	if r.out.sign != nil {
		sv = r.out.sign.signer
	}
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
