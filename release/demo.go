package release

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/registry"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sample/upstream"
)

// SampleNotice is said at the start and the end of every demo run.
const SampleNotice = "THIS IS THE SAMPLE UPSTREAM, NOT THE HaLVM: a generated stand-in with the HaLVM's shape whose build compiles real C; the real HaLVM sources are not reachable here"

// DemoOptions configure a demo run.
type DemoOptions struct {
	OutDir   string // dist/
	CacheDir string
	WorkDir  string
	RealLock *pins.Lock // its tool packages (alex, HsColour) and image packages are pinned into the sample lock
	// Skip are stages to leave out, with why (a run with skips is a
	// snapshot: staged, never published live). The demo itself skips none.
	Skip map[string]string
	// Fresh are the stages that run even when unchanged (HALVM_FRESH).
	Fresh []string
	Addr  string // where the repositories are served during the demo
	Log   io.Writer
	// Install lets the demo install missing host prerequisites (as root on
	// a Debian-family system; HALVM_INSTALL=no turns it off).
	Install bool

	breakStage    string           // tests: a stage that fails deliberately
	skipRequired  bool             // tests: Options.skipRequired
	sampleOverlay map[string]fs.FS // tests: files replacing the sample upstream's (upstream.Options.Extra)
}

// DemoVerifyEnv is the environment `go run mage.go verify` needs to verify
// a finished demo again: its output and cache, the development public
// keys, and the development archive key for the reproducibility rebuild.
func DemoVerifyEnv(o DemoOptions, keys devkeys.Files) []string {
	return []string{"HALVM_OUT=" + absPath(o.OutDir), "HALVM_CACHE=" + absPath(o.CacheDir),
		"HALVM_PGP_PUBLIC_KEY_FILE=" + absPath(keys.PGPPublic), "HALVM_COSIGN_PUBLIC_KEY_FILE=" + absPath(keys.CosignPublic),
		"HALVM_PGP_KEY_FILE=" + absPath(keys.PGPKey), "HALVM_PGP_PASSPHRASE_FILE=" + absPath(keys.PGPPassphrase)}
}

// Demo runs the release pipeline, unchanged, on a freshly generated sample
// upstream with development keys (labelled as such), serving the
// repositories on Addr while it runs.
func Demo(ctx context.Context, o DemoOptions) (*pipeline.Ledger, error) {
	fmt.Fprintln(o.Log, "demo:", SampleNotice)
	if err := DemoSetup(ctx, o); err != nil {
		return nil, err
	}
	upDir := filepath.Join(o.WorkDir, "sample-upstream")
	if err := os.RemoveAll(upDir); err != nil {
		return nil, err
	}
	up, err := upstream.Generate(ctx, upDir, upstream.Options{CacheDir: filepath.Join(o.CacheDir, "inputs"), ToolDebs: o.RealLock.DebsWithRole(pins.RoleTool), Log: io.Discard, Extra: o.sampleOverlay})
	if err != nil {
		return nil, fmt.Errorf("generating the sample upstream: %w", err)
	}
	// The image is built from the real lock's image pins (Debian packages,
	// not upstream sources): the same base and dependency layers.
	up.Lock.Debs = append(append(append([]pins.Deb(nil), up.Lock.Debs...), o.RealLock.DebsWithRole(pins.RoleImageBase)...), o.RealLock.DebsWithRole(pins.RoleImageDeps)...)
	lockPath := filepath.Join(o.OutDir, "sample.lock")
	if err := fsutil.WriteFileAtomic(lockPath, pins.Bytes(up.Lock), 0o644); err != nil {
		return nil, err
	}
	keys, err := devkeys.Ensure(filepath.Join(o.CacheDir, "dev-keys"), up.Lock.Release.Epoch())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "demo: signing with DEVELOPMENT keys in %s (never for releases)\n", keys.Dir)
	plan, err := pipeline.NewPlan(pipeline.Config{Version: up.Lock.Release.Version, Release: 1, Epoch: up.Lock.Release.Epoch(),
		LockPath: lockPath, OutDir: o.OutDir, CacheDir: o.CacheDir, WorkDir: filepath.Join(o.WorkDir, "build"), Skip: o.Skip, Fresh: o.Fresh})
	if err != nil {
		return nil, err
	}
	repoRoot := filepath.Join(o.OutDir, "repos")
	srv, err := repos.Serve(repoRoot, o.Addr)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	reg, err := registry.Start(filepath.Join(o.WorkDir, "registry"))
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	registry := reg.Addr + "/halvm"
	fmt.Fprintf(o.Log, "demo: images are pushed to a local registry at %s for the run's duration\n", registry)
	l, err := Run(ctx, plan, Options{Lock: up.Lock, PGPKey: keys.PGPSource(), CosignKey: keys.CosignSource(),
		RepoRoot: repoRoot, RepoURL: srv.URL, Registry: registry, ThrowawayRegistry: true, Log: o.Log, breakStage: o.breakStage, skipRequired: o.skipRequired})
	if err == nil && len(o.Skip) > 0 {
		fmt.Fprintf(o.Log, "demo: a snapshot (stages skipped): its repositories are staged under %s, not live\n", repoRoot)
	} else if err == nil {
		fmt.Fprintf(o.Log, "demo: repositories published under %s (served at %s/apt and %s/dnf during the run; `go run mage.go repo:serve` serves them again)\n", repoRoot, srv.URL, srv.URL)
		fmt.Fprintf(o.Log, "demo: verify this release again at any time (the images are re-served from %s/oci/cosign):\n  %s go run mage.go verify\n", o.OutDir, strings.Join(DemoVerifyEnv(o, keys), " "))
	}
	fmt.Fprintln(o.Log, "demo:", SampleNotice)
	return l, err
}
