package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"
	_ "time/tzdata" // the rebuild's time zone (TZ) without the host's tzdata

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/oci/cosign"
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

// rebuildRequestVar names the request file of a rebuild child process
// (see init): a program linking this package becomes the rebuild when its
// parent sets it.
const rebuildRequestVar = "HALVM_REBUILD_REQUEST"

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
	CosignKey cosign.KeySource
	MirrorDir string
	MirrorMap []pins.Rewrite
	Debs      map[string]string
	AptRoot   string
}

func init() {
	if path := os.Getenv(rebuildRequestVar); path != "" {
		os.Exit(rebuildChild(path))
	}
}

// Rebuild runs the release's build stages again from the lock into outDir
// for the reproducibility check, in a child process (this program again,
// see init) with conditions of its own: fetched inputs come from the
// cache (<cache>/inputs, verified by their pins); the toolchain and the
// images are built again with an empty step cache, below another build
// root (v.WorkDir), with the umask, time zone (TZ) and locale of v, another
// HOME, USER, LOGNAME and TMPDIR, its environment in reverse order and,
// with v.NoNetwork, no network at all (unshare --net).
// The repositories are staged under outDir/repos on top of copies of the
// publications the release's own extended (from), as the release staged
// them on top of the live ones; its ledger is
// outDir/ledger.json and its log outDir.log. The user id is not varied:
// the image stage builds root filesystems as root.
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
	rq := rebuildRequest{Version: p.Version(), Release: p.Release(), Flavours: p.Flavours(), Epoch: p.Epoch().Unix(),
		LockPath: lockPath, OutDir: outDir, CacheDir: cache, WorkDir: absPath(v.WorkDir), Umask: v.Umask,
		RepoRoot: filepath.Join(outDir, "repos"), RepoURL: o.RepoURL, PGPKey: absKey(o.PGPKey), CosignKey: absCosignKey(o.CosignKey),
		MirrorDir: o.Sources.MirrorDir, MirrorMap: o.Sources.MirrorMap, Debs: o.Sources.DebArchives, AptRoot: o.Sources.AptRoot}
	b, err := json.Marshal(rq)
	if err != nil {
		return err
	}
	reqPath := outDir + ".request.json"
	if err := os.WriteFile(reqPath, b, 0o600); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the rebuild runs this program again: %w", err)
	}
	env := rebuildEnv(v, home, tmp, reqPath, o)
	logPath := outDir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{exe}
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

// rebuildEnv is the child's whole environment, in reverse order: a build
// that depended on environment order or on any variable not passed on
// explicitly would differ.
func rebuildEnv(v Variation, home, tmp, reqPath string, o Options) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home, "USER=" + v.User, "LOGNAME=" + v.User, "TMPDIR=" + tmp,
		rebuildRequestVar + "=" + reqPath,
	}
	if v.TZ != "" {
		env = append(env, "TZ="+v.TZ)
	}
	env = append(env, v.Env...)
	// Keys held in variables reach the child the same way.
	for _, k := range []string{o.PGPKey.Env, o.PGPKey.PassphraseEnv, o.CosignKey.KeyEnv, o.CosignKey.PasswordEnv, "COSIGN_PASSWORD"} {
		if val, ok := os.LookupEnv(k); k != "" && ok {
			env = append(env, k+"="+val)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(env)))
	return env
}

func absKey(k pgp.KeySource) pgp.KeySource {
	if k.File != "" {
		k.File = absPath(k.File)
	}
	if k.PassphraseFile != "" {
		k.PassphraseFile = absPath(k.PassphraseFile)
	}
	return k
}

func absCosignKey(k cosign.KeySource) cosign.KeySource {
	if k.KeyFile != "" {
		k.KeyFile = absPath(k.KeyFile)
	}
	if k.PasswordFile != "" {
		k.PasswordFile = absPath(k.PasswordFile)
	}
	return k
}

// rebuildChild is the rebuild process: it runs the build stages of the
// request and exits 0 only when every one passed.
func rebuildChild(reqPath string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "rebuild:", err)
		return 1
	}
	b, err := os.ReadFile(reqPath)
	if err != nil {
		return fail(err)
	}
	var rq rebuildRequest
	if err := json.Unmarshal(b, &rq); err != nil {
		return fail(fmt.Errorf("the request %s: %w", reqPath, err))
	}
	syscall.Umask(rq.Umask)
	lock, err := pins.LoadFile(rq.LockPath)
	if err != nil {
		return fail(err)
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
		return fail(fmt.Errorf("planning the rebuild: %w", err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "rebuild: pid %d, umask %04o, TZ=%s, HOME=%s, build root %s\n", os.Getpid(), rq.Umask, os.Getenv("TZ"), os.Getenv("HOME"), rq.WorkDir)
	_, err = Run(ctx, p, Options{Lock: lock, PGPKey: rq.PGPKey, CosignKey: rq.CosignKey, RepoRoot: rq.RepoRoot, RepoURL: rq.RepoURL,
		Sources: sources.Options{MirrorDir: rq.MirrorDir, MirrorMap: rq.MirrorMap, DebArchives: rq.Debs, AptRoot: rq.AptRoot}, Log: os.Stderr,
		skipRequired: true})
	if err != nil {
		return fail(err)
	}
	return 0
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
