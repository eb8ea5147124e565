package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify/checks"
)

// Variation is how a rebuild's conditions differ (checks.Variation).
type Variation = checks.Variation

// rebuildStages are the stages a reproducibility rebuild runs; the others
// (signing, verification, publishing) are skipped: the rebuild compares
// bytes, it never publishes. Its image stage pushes nowhere.
var rebuildStages = map[string]bool{"preflight": true, "sources": true, "toolchain": true, "packages": true, "image": true, "sbom": true, "repos": true}

// RebuildProgram is the package of the rebuild child (cmd/halvm-rebuild),
// which Rebuild builds and starts with the request file as its argument.
const RebuildProgram = "github.com/halvm/halvm-release/cmd/halvm-rebuild"

// rebuildRequest is everything the rebuild child needs. Keys are named by
// their sources (files, variable names), never carried.
type rebuildRequest struct {
	Version   string
	Release   int
	Flavours  []string
	Epoch     int64
	LockPath  string
	OutDir    string
	CacheDir  string
	WorkDir   string
	Umask     int
	RepoRoot  string
	RepoURL   string
	PGPKey    pgp.KeySource
	MirrorDir string
	MirrorMap []pins.Rewrite
	Debs      map[string]string
	AptRoot   string
}

// Rebuild runs the release's build stages again from the lock into outDir
// for the reproducibility check, in a child process (cmd/halvm-rebuild,
// built from this source tree) with conditions of its own: fetched inputs come from the
// cache (<cache>/inputs, verified by their pins). Before anything is
// built, every input the lock pins must be in that cache or fetchable
// (reachInputs, which fetches what is missing into the cache): otherwise
// the rebuild is refused with an *UnreachableInputsError naming each one,
// and no verdict is claimed. The toolchain and the
// images are built again with an empty step cache, below another build
// root (v.WorkDir), with the umask, time zone (TZ) and locale of v, another
// HOME, USER, LOGNAME and TMPDIR, its environment in reverse order and,
// with v.NoNetwork, no network at all (unshare --net).
// It never reads the shared cache (HALVM_CACHE_REGISTRY, o.CacheRegistry):
// its step cache is fresh and the only thing it shares is the input cache,
// whose every file is verified by its pinned sha256; the child's
// environment (rebuildEnv) never carries the variable, and the child
// refuses to start if it finds it. A poisoned shared cache therefore makes
// the release's artifacts differ from the rebuild's, and verify fails.
// The repositories are staged under outDir/repos on top of copies of the
// publications the release's own extended (from), as the release staged
// them on top of the live ones; its ledger is
// outDir/ledger.json and its log outDir.log. The user id is not varied:
// the image stage builds root filesystems as root.
// It holds no private key: it signs with the release's published
// signatures (from.Signed, checked with from.ArchiveKey) where they verify
// over its bytes (pgp.PublishedSignatures), so the same check can run on
// a machine that has only the public keys. The one exception is the CI's
// independent rebuild, which runs before the release exists (rebuildKey).
func Rebuild(ctx context.Context, p pipeline.Plan, o Options, outDir string, v Variation, from checks.Publications) error {
	outDir = absPath(outDir)
	cache := outDir + ".cache"
	home := outDir + ".home"
	tmp := outDir + ".tmp"
	for _, d := range []string{outDir, cache, home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("preparing the rebuild: %w", err)
		}
	}
	if err := os.Symlink(filepath.Join(absPath(p.CacheDir()), "inputs"), filepath.Join(cache, "inputs")); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sharing the fetched-input cache with the rebuild: %w", err)
	}
	if err := seedRepos(filepath.Join(outDir, "repos"), from); err != nil {
		return err
	}
	lockPath := absPath(p.LockPath())
	if b, err := os.ReadFile(lockPath); err != nil {
		return fmt.Errorf("the rebuild reads the lock %s: %w", lockPath, err)
	} else if o.Lock != nil && string(b) != string(pins.Bytes(o.Lock)) {
		// The child rebuilds from the file: it must be the lock this run used.
		lockPath = filepath.Join(outDir, "rebuild.lock")
		if err := os.WriteFile(lockPath, pins.Bytes(o.Lock), 0o644); err != nil {
			return err
		}
	}
	if err := reachInputs(ctx, p, o, lockPath, outDir); err != nil {
		return err
	}
	key, err := rebuildKey(outDir, o, from)
	if err != nil {
		return err
	}
	rq := rebuildRequest{Version: p.Version(), Release: p.Release(), Flavours: p.Flavours(), Epoch: p.Epoch().Unix(),
		LockPath: lockPath, OutDir: outDir, CacheDir: cache, WorkDir: absPath(v.WorkDir), Umask: v.Umask,
		RepoRoot: filepath.Join(outDir, "repos"), RepoURL: o.RepoURL, PGPKey: key,
		MirrorDir: o.Sources.MirrorDir, MirrorMap: o.Sources.MirrorMap, Debs: o.Sources.DebArchives, AptRoot: o.Sources.AptRoot}
	b, err := json.Marshal(rq)
	if err != nil {
		return err
	}
	reqPath := outDir + ".request.json"
	if err := os.WriteFile(reqPath, b, 0o600); err != nil {
		return err
	}
	exe, err := buildProgram(ctx, outDir+".bin", RebuildProgram)
	if err != nil {
		return err
	}
	env := rebuildEnv(v, home, tmp)
	logPath := outDir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{exe, reqPath}
	if v.NoNetwork {
		// A network namespace of its own with no interface up: a rebuild
		// that reached for anything not in the cache fails.
		if os.Geteuid() != 0 {
			return errors.New("the rebuild runs without network, in a network namespace of its own: that needs root (run the verification as root)")
		}
		args = append([]string{"unshare", "--net"}, args...)
	}
	err = run.Run(ctx, run.Cmd{Args: args, Env: env, Stdout: logf, Stderr: logf, WaitDelay: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("the rebuild (log: %s): %w", logPath, err)
	}
	return nil
}

// UnreachableInputsError is a rebuild refused before building: the lock
// names inputs that are neither in the rebuilder's input cache nor
// fetchable. Each is named; no verdict is claimed for the release, whose
// every artifact depends on its inputs.
type UnreachableInputsError struct{ Gaps []sources.Gap }

func (e *UnreachableInputsError) Error() string {
	lines := make([]string, len(e.Gaps))
	for i, g := range e.Gaps {
		lines[i] = fmt.Sprintf("%s: %s: %s", g.Input, g.Reason, g.Remedy)
	}
	return fmt.Sprintf("the rebuild cannot reach %d pinned input(s) of the lock, so nothing was built and no verdict is given (NOT CHECKED):\n  %s",
		len(e.Gaps), strings.Join(lines, "\n  "))
}

// reachInputs checks, before anything is built, that every input the lock
// pins is in the input cache the rebuild shares (<cache>/inputs) or
// fetchable (sources.Unreachable), and refuses with every unreachable one
// named. Inputs that are not cached but answer are fetched and verified
// into the cache here, by this process: the rebuild itself runs without
// network.
func reachInputs(ctx context.Context, p pipeline.Plan, o Options, lockPath, outDir string) error {
	lock := o.Lock
	if lock == nil {
		l, err := pins.LoadFile(lockPath)
		if err != nil {
			return fmt.Errorf("the rebuild reads the lock %s: %w", lockPath, err)
		}
		lock = l
	}
	so := o.Sources
	so.CacheDir = filepath.Join(absPath(p.CacheDir()), "inputs")
	so.Ledger, so.Registry = nil, nil
	gaps, toFetch := sources.Unreachable(ctx, lock, so)
	if len(gaps) > 0 {
		return &UnreachableInputsError{Gaps: gaps}
	}
	if len(toFetch) == 0 {
		return nil
	}
	dest := outDir + ".inputs-tree"
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	defer os.RemoveAll(dest)
	if _, err := sources.Fetch(ctx, lock, dest, so); err != nil {
		return fmt.Errorf("fetching the rebuild's inputs (%s) into its input cache %s: %w", strings.Join(toFetch, ", "), so.CacheDir, err)
	}
	return nil
}

// rebuildEnv is the child's whole environment, in reverse order: a build
// that depended on environment order or on any variable not passed on
// explicitly would differ. No key reaches it: it signs with the
// release's published signatures (see Rebuild).
func rebuildEnv(v Variation, home, tmp string) []string {
	env := append(run.Inherit("PATH"),
		"HOME="+home, "USER="+v.User, "LOGNAME="+v.User, "TMPDIR="+tmp,
	)
	if v.TZ != "" {
		env = append(env, "TZ="+v.TZ)
	}
	env = append(env, v.Env...)
	// Never the shared cache, whatever the variation says.
	kept := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, config.CacheRegistryVar+"=") {
			kept = append(kept, e)
		}
	}
	env = kept
	sort.Sort(sort.Reverse(sort.StringSlice(env)))
	return env
}

// rebuildKey is what the rebuild signs with. Rebuilding a release (verify,
// anyone's `go run mage.go verify`): no private key, the archive public key
// and the release's own signed publications, whose signatures it reuses
// where they verify over its bytes (pgp.PublishedSignatures). The only
// exception is the independent rebuild of a CI release graph
// (RebuildIndependently), which runs beside the toolchain cells before the
// release exists, so there is nothing published to reuse: it signs with
// the archive key from a file (o.PGPKey.File; never a key held in a
// variable, which would have to travel in the child's environment).
func rebuildKey(outDir string, o Options, from checks.Publications) (pgp.KeySource, error) {
	if len(from.ArchiveKey) > 0 && len(from.Signed) > 0 {
		pubFile := outDir + ".archive-key.pgp"
		if err := os.WriteFile(pubFile, from.ArchiveKey, 0o644); err != nil {
			return pgp.KeySource{}, fmt.Errorf("preparing the rebuild: %w", err)
		}
		var signed []string
		for _, d := range from.Signed {
			signed = append(signed, absPath(d))
		}
		return pgp.KeySource{PublicFile: pubFile, SignaturesFrom: signed}, nil
	}
	if from.Independent && o.PGPKey.File != "" && o.PGPKey.Env == "" && o.PGPKey.PassphraseEnv == "" {
		k := pgp.KeySource{File: absPath(o.PGPKey.File)}
		if o.PGPKey.PassphraseFile != "" {
			k.PassphraseFile = absPath(o.PGPKey.PassphraseFile)
		}
		return k, nil
	}
	if from.Independent {
		return pgp.KeySource{}, errors.New("the independent rebuild signs with the archive key from a file: set HALVM_PGP_KEY_FILE (and HALVM_PGP_PASSPHRASE_FILE), not the key in a variable")
	}
	return pgp.KeySource{}, errors.New("the rebuild needs the archive public key and the release's signed publications (it never holds a private key)")
}

// buildProgram compiles one of this module's programs (pkg, e.g.
// RebuildProgram) from the checkout this process runs in (the current
// directory must be inside it, as it is for `go run mage.go` and the
// tests) into dir, and returns its path.
func buildProgram(ctx context.Context, dir, pkg string) (string, error) {
	goEnv := run.BaseEnv(run.Inherit("GOPATH", "GOMODCACHE", "GOCACHE", "GOROOT", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "GOENV", "XDG_CACHE_HOME")...)
	mod, err := run.Output(ctx, run.Cmd{Args: []string{"go", "env", "GOMOD"}, Env: goEnv})
	if err != nil {
		return "", fmt.Errorf("building %s with the Go toolchain: %w", pkg, err)
	}
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("building %s from the halvm-release checkout: run from inside it (go env GOMOD says %q)", pkg, strings.TrimSpace(string(mod)))
	}
	exe := filepath.Join(dir, path.Base(pkg))
	if err := run.Run(ctx, run.Cmd{Args: []string{"go", "build", "-o", exe, pkg}, Dir: root, Env: goEnv}); err != nil {
		return "", fmt.Errorf("building the program %s: %w", pkg, err)
	}
	return exe, nil
}

// RebuildChild is the rebuild process (cmd/halvm-rebuild): it runs the
// build stages of the request file reqPath that Rebuild wrote, reading the
// child's environment through lookup (for its log line), and
// returns an error unless every stage passed.
func RebuildChild(ctx context.Context, reqPath string, lookup func(string) (string, bool), log io.Writer) error {
	b, err := os.ReadFile(reqPath)
	if err != nil {
		return err
	}
	var rq rebuildRequest
	if err := json.Unmarshal(b, &rq); err != nil {
		return fmt.Errorf("the request %s: %w", reqPath, err)
	}
	if _, ok := lookup(config.CacheRegistryVar); ok {
		return fmt.Errorf("%s is set: the reproducibility rebuild never reads the shared cache (it answers a poisoned one)", config.CacheRegistryVar)
	}
	syscall.Umask(rq.Umask)
	lock, err := pins.LoadFile(rq.LockPath)
	if err != nil {
		return err
	}
	skip := map[string]string{}
	for _, s := range Stages() {
		if !rebuildStages[s.Name] {
			skip[s.Name] = "a reproducibility rebuild only builds"
		}
	}
	p, err := pipeline.NewPlan(pipeline.Config{Version: rq.Version, Release: rq.Release, Flavours: rq.Flavours, Epoch: time.Unix(rq.Epoch, 0).UTC(),
		LockPath: rq.LockPath, OutDir: rq.OutDir, CacheDir: rq.CacheDir, WorkDir: rq.WorkDir, Skip: skip,
		// A rebuild reuses nothing: it is the second, independent build.
		Fresh: []string{pipeline.FreshAll}})
	if err != nil {
		return fmt.Errorf("planning the rebuild: %w", err)
	}
	tz, _ := lookup("TZ")
	home, _ := lookup("HOME")
	fmt.Fprintf(log, "rebuild: pid %d, umask %04o, TZ=%s, HOME=%s, build root %s\n", os.Getpid(), rq.Umask, tz, home, rq.WorkDir)
	_, err = Run(ctx, p, Options{Lock: lock, PGPKey: rq.PGPKey, RepoRoot: rq.RepoRoot, RepoURL: rq.RepoURL,
		Sources: sources.Options{MirrorDir: rq.MirrorDir, MirrorMap: rq.MirrorMap, DebArchives: rq.Debs, AptRoot: rq.AptRoot}, Log: log,
		// Never the shared cache: the rebuild is what answers a poisoned one.
		CacheRegistry: nil, skipRequired: true})
	// What no published signature covered (the rebuild differs there) was
	// signed with a throwaway key: say what, for whoever reads the log.
	if k, kerr := pgp.LoadKey(rq.PGPKey); kerr == nil {
		if m := k.Misses(); len(m) > 0 {
			fmt.Fprintf(log, "rebuild: %d signature(s) made with a throwaway key: no published signature covers these bytes, so what holds them differs from the release:\n  %s\n", len(m), strings.Join(m, "\n  "))
		}
	}
	return err
}

// seedRepos makes the publications of from the live ones below root
// (apt/, dnf/), as they were when the release staged its own: hard-linked
// copies (a copy where linking is not possible), never changed by the
// rebuild, which stages a new publication next to them.
func seedRepos(root string, from checks.Publications) error {
	for _, s := range []struct{ repo, dir string }{{"apt", from.Apt}, {"dnf", from.Dnf}} {
		if s.dir == "" {
			continue
		}
		name := filepath.Base(s.dir)
		dst := filepath.Join(root, s.repo, "publications", name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-a", "--link", s.dir, dst}, Env: run.BaseEnv()}); err != nil {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-a", s.dir, dst}, Env: run.BaseEnv()}); err != nil {
				return fmt.Errorf("seeding the rebuild with the %s publication %s: %w", s.repo, s.dir, err)
			}
		}
		if err := os.Symlink(filepath.Join("publications", name), filepath.Join(root, s.repo, "current")); err != nil {
			return fmt.Errorf("seeding the rebuild with the %s publication %s: %w", s.repo, s.dir, err)
		}
	}
	return nil
}
