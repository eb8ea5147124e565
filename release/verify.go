package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // the rebuild's time zone without the host's tzdata

	"github.com/sigstore/sigstore/pkg/cryptoutils"

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
		Skipped:    map[string]string{},
		Rebuild: func(ctx context.Context, outDir string, v checks.Variation) error {
			return Rebuild(ctx, p, r.o, outDir, v)
		},
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
	env, err := verify.LoadEnv(p.OutDir(), VerifyCacheDir(p.CacheDir()))
	if err != nil {
		return err
	}
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

// VerifyCacheDir is where the verification keeps its downloads (the clean
// Debian rootfs template, the Xen machine): $HALVM_VERIFY_CACHE, else
// <cache>/verify.
func VerifyCacheDir(cacheDir string) string {
	if d := os.Getenv("HALVM_VERIFY_CACHE"); d != "" {
		return d
	}
	return filepath.Join(cacheDir, "verify")
}

// cosignPublic is the public half of the release's cosign key.
func (r *runner) cosignPublic() ([]byte, error) {
	if r.signer != nil {
		return r.signer.PublicKeyPEM()
	}
	sv, err := cosign.LoadSigner(r.o.CosignKey)
	if err != nil {
		return nil, err
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// rebuildStages are the stages a reproducibility rebuild runs; the others
// (images, signing, verification, publishing) are skipped: the rebuild
// compares bytes, it never publishes.
var rebuildStages = map[string]bool{"preflight": true, "sources": true, "toolchain": true, "packages": true, "image": true, "sbom": true, "repos": true}

// variationMu serializes rebuilds: umask and TZ are process-wide.
var variationMu sync.Mutex

// Rebuild runs the release's build stages again from the lock into outDir
// for the reproducibility check: fetched inputs come from the cache
// (<cache>/inputs, verified by their pins), the toolchain and the images are built again
// with an empty step cache, below another build root (v.WorkDir), with the
// process umask, local time zone and locale environment of v, into
// repositories under outDir/repos. Its ledger is outDir/ledger.json.
//
// The build's external programs get an explicit environment
// (internal/run), so v.Env set on this process proves no host setting
// leaks into them. Building as another user is not varied: the release
// runs in-process, as the user running it.
func Rebuild(ctx context.Context, p pipeline.Plan, o Options, outDir string, v Variation) error {
	cache := filepath.Join(outDir + ".cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join(absPath(p.CacheDir()), "inputs"), filepath.Join(cache, "inputs")); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sharing the fetched-input cache with the rebuild: %w", err)
	}
	skip := map[string]string{}
	for _, s := range Stages() {
		if !rebuildStages[s.Name] {
			skip[s.Name] = "a reproducibility rebuild only builds"
		}
	}
	rp, err := pipeline.NewPlan(pipeline.Config{Version: p.Version(), Release: p.Release(), Flavours: p.Flavours(), Epoch: p.Epoch(),
		LockPath: p.LockPath(), OutDir: outDir, CacheDir: cache, WorkDir: v.WorkDir, Skip: skip})
	if err != nil {
		return fmt.Errorf("planning the rebuild: %w", err)
	}
	ro := o
	ro.RepoRoot = filepath.Join(absPath(outDir), "repos")
	ro.Log = nil
	ro.Official = false
	// The registry name is part of the images' bytes (base.name, tags), so
	// the rebuild keeps it; the image stage then pushes the rebuilt images
	// by digest, untagged: a no-op when they are identical. (An image
	// stage option to build without pushing would avoid even that.)

	variationMu.Lock()
	defer variationMu.Unlock()
	restore, err := applyVariation(v)
	if err != nil {
		return err
	}
	defer restore()
	_, err = Run(ctx, rp, ro)
	return err
}

// Variation is how a rebuild's conditions differ (checks.Variation).
type Variation = checks.Variation

func applyVariation(v Variation) (restore func(), err error) {
	var undo []func()
	restore = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	old := syscall.Umask(v.Umask)
	undo = append(undo, func() { syscall.Umask(old) })
	if v.TZ != "" {
		loc, err := time.LoadLocation(v.TZ)
		if err != nil {
			restore()
			return nil, fmt.Errorf("the rebuild's time zone %s: %w", v.TZ, err)
		}
		oldLoc := time.Local
		time.Local = loc
		undo = append(undo, func() { time.Local = oldLoc })
		v.Env = append(v.Env, "TZ="+v.TZ)
	}
	// Reverse order: a build that depended on environment order would see
	// a different one.
	env := append([]string(nil), v.Env...)
	sort.Sort(sort.Reverse(sort.StringSlice(env)))
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		prev, had := os.LookupEnv(k)
		os.Setenv(k, val)
		undo = append(undo, func() {
			if had {
				os.Setenv(k, prev)
			} else {
				os.Unsetenv(k)
			}
		})
	}
	return restore, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
