// Package config turns the environment of a `go run mage.go` invocation
// into a pipeline configuration. Every environment variable the pipeline
// reads is listed in Vars: that table is the one place they are documented
// (README.md and RELEASE.md print it via `go run mage.go env`).
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/halvm/halvm-release/internal/epoch"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
)

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Doc     string
}

// Vars is every environment variable the pipeline reads.
var Vars = []Var{
	{"HALVM_LOCK", "pins/halvm.lock", "the lock file pinning every input"},
	{"HALVM_RELEASE", "1", "package release number (the 1 of 2.4.3-1)"},
	{"HALVM_FLAVOURS", "halvm,halvm-gmp", "comma-separated flavours to build"},
	{"HALVM_OUT", "dist", "output directory (ledger.json, packages, repositories, reports)"},
	{"HALVM_CACHE", "$XDG_CACHE_HOME/halvm-release", "content-addressed cache of fetched inputs and build steps"},
	{"HALVM_WORK", "/var/tmp/halvm-build", "fixed build root (paths baked into the toolchain start here)"},
	{"HALVM_MIRROR", "", "air-gapped mirror: a directory of bare repositories and files, or a URL prefix"},
	{"HALVM_SKIP", "", "stages to skip, as stage=reason pairs separated by ';' (a run with skips is a snapshot: staged, never switched live)"},
	{"HALVM_FRESH", "", "stages that run even when an earlier run's outputs are unchanged, comma-separated (verify: no reused verdict), or all; unknown names are an error"},
	{"HALVM_OFFICIAL", "", "1/true/yes: an official release (refuses development keys, pending pins, skips); 0/false/no/unset: a trial; anything else is an error"},
	{epoch.Var, "from the lock", "overrides the lock's epoch (decimal seconds; malformed is an error)"},
	{"HALVM_PGP_KEY_FILE", "", "armored OpenPGP archive key (signs Release, repomd.xml, rpms, SHA256SUMS.asc)"},
	{"HALVM_PGP_KEY", "", "or the armored key itself (never logged)"},
	{"HALVM_PGP_PASSPHRASE_FILE", "", "file holding the archive key's passphrase"},
	{"HALVM_PGP_PASSPHRASE", "", "or the passphrase itself (never logged)"},
	{"HALVM_PGP_PUBLIC_KEY_FILE", "", "the archive public key (repo:rollback and verify need only this)"},
	{"HALVM_COSIGN_PUBLIC_KEY_FILE", "", "the cosign public key verify checks images, attestations and SHA256SUMS.sig against"},
	{"HALVM_VERIFY_CACHE", "$HALVM_CACHE/verify", "verify's cache: the clean Debian rootfs template and the Xen-in-QEMU machine"},
	{"HALVM_INSTALL", "yes", "1/true/yes: demo and test install missing Debian packages when run as root on Debian; 0/false/no: they only print the one command (release never installs); anything else is an error"},
	{"HALVM_TEST_CACHE", "$HOME/.cache/halvm-release-test", "the tests' download cache (rootfs templates, the stock cosign CLI in gobin/)"},
	{"HALVM_REAL_UPSTREAM", "$CHECKOUT/../shared/real-upstream", "the tests: directory holding the real HaLVM sources' air-gapped mirror (halvm-2.4.3-git.tar.xz and its .sha256)"},
	{"HALVM_BENCH_PREPARE", "", "1: the packaging benchmark (go run mage.go bench) prepares its stand-in tree (downloads ghc and ghc-prof)"},
	{"HALVM_BENCH_MODES", "ours-deb,ours-rpm,ours-both,ours-both-2x,dpkg-deb,rpmbuild", "the packaging benchmark's measurements, comma-separated"},
	{"HALVM_BENCH_TREE_MB", "0", "the compression benchmark measures on the first <n> MB of the stand-in tree (files in path order); 0 is the whole ~1.56 GB tree"},
	{"HALVM_BENCH_COMPRESSIONS", "deb/gzip:1,deb/gzip:9,deb/xz,deb/zstd:3,deb/zstd:19,rpm/gzip:9,rpm/xz,rpm/zstd:3,rpm/zstd:19", "the compression benchmark's candidates, <deb|rpm>/<compression>, comma-separated"},
	{"HALVM_BENCH_DEB_COMPRESSION", "", "the packaging benchmark's .deb compression for ours and dpkg-deb alike (e.g. gzip:9); \"\" is the release's"},
	{"HALVM_COSIGN_KEY_FILE", "", "encrypted cosign private key (signs images, attestations, SHA256SUMS.sig)"},
	{"HALVM_COSIGN_KEY", "", "or the key's PEM text itself (never logged)"},
	{"HALVM_COSIGN_PASSWORD_FILE", "", "file holding the cosign key's password"},
	{"COSIGN_PASSWORD", "", "or the password itself, as the cosign CLI reads it (never logged)"},
	{"HALVM_DEV_KEYS", ".dev-keys", "where keys:dev writes development keys (labelled DEVELOPMENT everywhere)"},
	{"HALVM_REPO_ROOT", "dist/repos", "publish root of the apt (apt/) and dnf (dnf/) repositories"},
	{"HALVM_REPO_URL", "http://127.0.0.1:8619", "the URL users fetch the repositories from (baked into halvm.sources and halvm.repo)"},
	{"HALVM_REPO_ADDR", "127.0.0.1:8619", "where repo:serve listens"},
	{"HALVM_KEEP", "5", "live publications repo:prune (and each publish) keeps per repository, at least 2"},
	{"HALVM_VSA_KEY_FILE", "", "the verifier's own encrypted cosign key: `go run mage.go verify` then writes HALVM_OUT/verify.vsa.json, a signed SLSA verification summary"},
	{"HALVM_VSA_PASSWORD_FILE", "", "file holding that key's password"},
	{"HALVM_VERIFIER_ID", "https://github.com/halvm/halvm-release/verify", "the verifier id the verification summary names (who verified, with what)"},
	{CacheRegistryVar, "", "shared build cache <registry>/<repository> (e.g. ghcr.io/halvm/cache) behind the local input and toolchain step caches; the reproducibility rebuild never reads it"},
	{RebuildFromVar, "", "a finished independent rebuild (`go run mage.go ci:rebuild`'s HALVM_OUT, e.g. another CI job's) that verify's reproducibility check compares with instead of rebuilding"},
	{"HALVM_PGP_FINGERPRINT", "", "the archive key fingerprint `rebuild <URL>` accepts the published keyring with (else the key in HALVM_PGP_PUBLIC_KEY_FILE, the pinned one)"},
	{"HALVM_REBUILD_REGISTRY", "", "image repository prefix `rebuild <URL>` looks the rebuilt images up in by digest, e.g. ghcr.io/halvm (\"\": they are judged by the published image layout tarballs)"},
	{"HALVM_LAYOUTS", "deb,rpm", "comma-separated package layouts `toolchain` builds (the CI cells: flavour x layout); release always builds both"},
	{"HALVM_REGISTRY", "", "image repository prefix the images are pushed to by digest, e.g. ghcr.io/halvm (\"\" keeps them in dist/oci only)"},
}

// Getenv is how config reads the environment (tests replace it).
type Getenv func(string) string

func get(env Getenv, name string) string {
	if v := env(name); v != "" {
		return v
	}
	for _, v := range Vars {
		if v.Name == name && !strings.Contains(v.Default, "$") && !strings.HasPrefix(v.Default, "from ") {
			return v.Default
		}
	}
	return ""
}

// LockPath is the lock file named by the environment.
func LockPath(env Getenv) string { return get(env, "HALVM_LOCK") }

// Load reads the lock named by the environment and builds the plan's
// configuration, reporting every problem at once.
func Load(env Getenv) (pipeline.Config, *pins.Lock, error) {
	if env == nil {
		env = os.Getenv
	}
	var errs []error
	lockPath := LockPath(env)
	lock, err := pins.LoadFile(lockPath)
	if err != nil {
		errs = append(errs, err)
	}
	cfg := pipeline.Config{LockPath: lockPath, OutDir: get(env, "HALVM_OUT"), WorkDir: get(env, "HALVM_WORK")}
	cfg.CacheDir = env("HALVM_CACHE")
	if cfg.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			errs = append(errs, fmt.Errorf("HALVM_CACHE is unset and there is no user cache directory: set HALVM_CACHE"))
		}
		cfg.CacheDir = filepath.Join(base, "halvm-release")
	}
	rel, err := strconv.Atoi(get(env, "HALVM_RELEASE"))
	if err != nil {
		errs = append(errs, fmt.Errorf("HALVM_RELEASE=%q: want a whole number", env("HALVM_RELEASE")))
	}
	cfg.Release = rel
	for _, f := range strings.Split(get(env, "HALVM_FLAVOURS"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			cfg.Flavours = append(cfg.Flavours, f)
		}
	}
	if s := env("HALVM_SKIP"); s != "" {
		cfg.Skip = map[string]string{}
		for _, item := range strings.Split(s, ";") {
			stage, why, ok := strings.Cut(item, "=")
			stage = strings.TrimSpace(stage)
			if !ok || stage == "" || strings.TrimSpace(why) == "" {
				errs = append(errs, fmt.Errorf("HALVM_SKIP: %q: want stage=reason", item))
				continue
			}
			cfg.Skip[stage] = strings.TrimSpace(why)
		}
	}
	fresh, err := Fresh(env)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Fresh = fresh
	if lock != nil {
		cfg.Version = lock.Release.Version
		cfg.Epoch = lock.Release.Epoch()
	}
	if v := env(epoch.Var); v != "" {
		t, err := epoch.Parse(v)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Epoch = t
	}
	if len(errs) > 0 {
		return cfg, lock, errors.Join(errs...)
	}
	return cfg, lock, nil
}

// CacheRegistryVar names the shared build cache; RebuildFromVar a finished
// independent rebuild.
const (
	CacheRegistryVar = "HALVM_CACHE_REGISTRY"
	RebuildFromVar   = "HALVM_REBUILD_FROM"
)

// CacheRegistry is the shared build cache HALVM_CACHE_REGISTRY names (nil
// when unset); its warnings go to warn.
func CacheRegistry(env Getenv, warn io.Writer) (*regcache.Cache, error) {
	v := strings.TrimSpace(env(CacheRegistryVar))
	if v == "" {
		return nil, nil
	}
	return regcache.New(v, warn)
}

// Layouts is HALVM_LAYOUTS: the package layouts (deb, rpm) whose toolchain
// builds `toolchain` runs, in build order.
func Layouts(env Getenv) ([]packaging.Format, error) {
	want := map[packaging.Format]bool{}
	for _, l := range strings.Split(get(env, "HALVM_LAYOUTS"), ",") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if _, ok := packaging.Layouts[packaging.Format(l)]; !ok {
			return nil, fmt.Errorf("HALVM_LAYOUTS: unknown layout %q (want a comma-separated list of %s)", l, strings.Join(formatNames(), ", "))
		}
		want[packaging.Format(l)] = true
	}
	var out []packaging.Format
	for _, f := range packaging.Formats {
		if want[f] {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("HALVM_LAYOUTS selects no layout (want a comma-separated list of %s)", strings.Join(formatNames(), ", "))
	}
	return out, nil
}

// Fresh parses HALVM_FRESH strictly: stage names separated by commas, or
// "all" alone. An empty item, a name listed twice, anything but lower-case
// letters, or "all" beside names is an error naming the value; the run
// then refuses a name that is not one of its stages before any stage runs.
func Fresh(env Getenv) ([]string, error) {
	v := env("HALVM_FRESH")
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		name := strings.TrimSpace(item)
		switch {
		case name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz") != "":
			return nil, fmt.Errorf("HALVM_FRESH=%q: %q is not a stage name: want stage names separated by commas (e.g. image,verify), or all", v, item)
		case seen[name]:
			return nil, fmt.Errorf("HALVM_FRESH=%q: %s is listed twice", v, name)
		}
		seen[name] = true
		out = append(out, name)
	}
	if seen[pipeline.FreshAll] && len(out) > 1 {
		return nil, fmt.Errorf("HALVM_FRESH=%q: all already forces every stage: list it alone", v)
	}
	return out, nil
}

func formatNames() []string {
	var n []string
	for _, f := range packaging.Formats {
		n = append(n, string(f))
	}
	return n
}

// PrintVars writes the table of environment variables.
func PrintVars(w io.Writer) {
	for _, v := range Vars {
		def := v.Default
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(w, "%-18s %-32s %s\n", v.Name, def, v.Doc)
	}
}

// Mirror is the air-gapped mirror named by HALVM_MIRROR: either a directory
// (Dir) or URL prefix mappings "from=to;from=to" (Map).
type Mirror struct {
	Dir string
	Map []pins.Rewrite
}

// MirrorFromEnv parses HALVM_MIRROR.
func MirrorFromEnv(env Getenv) (Mirror, error) {
	v := strings.TrimSpace(env("HALVM_MIRROR"))
	if v == "" {
		return Mirror{}, nil
	}
	if !strings.Contains(v, "=") {
		abs, err := filepath.Abs(v)
		if err != nil {
			return Mirror{}, err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return Mirror{}, fmt.Errorf("HALVM_MIRROR=%q: not a directory (want a mirror directory or from=to;from=to URL prefix mappings)", v)
		}
		return Mirror{Dir: abs}, nil
	}
	var m Mirror
	for _, pair := range strings.Split(v, ";") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || from == "" || to == "" {
			return Mirror{}, fmt.Errorf("HALVM_MIRROR: %q: want from=to", pair)
		}
		m.Map = append(m.Map, pins.Rewrite{From: from, To: to})
	}
	return m, nil
}

// lookup reads a variable holding key material through env: set means
// not empty.
func lookup(env Getenv) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v := env(name)
		return v, v != ""
	}
}

// PGPKey is the archive key's source.
func PGPKey(env Getenv) pgp.KeySource {
	ks := pgp.KeySource{File: env("HALVM_PGP_KEY_FILE"), PassphraseFile: env("HALVM_PGP_PASSPHRASE_FILE"), Lookup: lookup(env)}
	if env("HALVM_PGP_KEY") != "" {
		ks.Env = "HALVM_PGP_KEY"
	}
	if env("HALVM_PGP_PASSPHRASE") != "" {
		ks.PassphraseEnv = "HALVM_PGP_PASSPHRASE"
	}
	return ks
}

// CosignKey is the cosign key's source.
func CosignKey(env Getenv) cosign.KeySource {
	ks := cosign.KeySource{KeyFile: env("HALVM_COSIGN_KEY_FILE"), PasswordFile: env("HALVM_COSIGN_PASSWORD_FILE"), Lookup: lookup(env)}
	if env("HALVM_COSIGN_KEY") != "" {
		ks.KeyEnv = "HALVM_COSIGN_KEY"
	}
	return ks
}

// VSAKey is the verifier's cosign key (HALVM_VSA_KEY_FILE), which signs
// the verification summary; its zero value means no summary is written.
func VSAKey(env Getenv) cosign.KeySource {
	return cosign.KeySource{KeyFile: env("HALVM_VSA_KEY_FILE"), PasswordFile: env("HALVM_VSA_PASSWORD_FILE")}
}

// Install is HALVM_INSTALL: whether the demo and the test command may
// install missing host prerequisites ("yes", the default, or "no").
func Install(env Getenv) (bool, error) {
	return parseBool(env, "HALVM_INSTALL", true, "install what is missing", "only report it")
}

// TestCache is HALVM_TEST_CACHE, else $HOME/.cache/halvm-release-test.
func TestCache(env Getenv) (string, error) {
	if d := env("HALVM_TEST_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	home := env("HOME")
	if home == "" {
		return "", errors.New("HALVM_TEST_CACHE and HOME are unset: set HALVM_TEST_CACHE")
	}
	return filepath.Join(home, ".cache", "halvm-release-test"), nil
}

// Get returns a variable's value or its default.
func Get(env Getenv, name string) string { return get(env, name) }

// RepoConfig is the repositories' configuration. withKey loads the archive
// private key (publishing); without it only the public key is read
// (HALVM_PGP_PUBLIC_KEY_FILE, else the public half of the private key).
func RepoConfig(env Getenv, withKey bool) (repos.Config, error) {
	cfg, lock, err := Load(env)
	if err != nil {
		return repos.Config{}, err
	}
	c := repos.Config{Root: get(env, "HALVM_REPO_ROOT"), URL: get(env, "HALVM_REPO_URL"), Epoch: cfg.Epoch, Version: lock.Release.Version}
	if p := env("HALVM_PGP_PUBLIC_KEY_FILE"); p != "" && !withKey {
		b, err := os.ReadFile(p)
		if err != nil {
			return c, fmt.Errorf("reading the archive public key: %w", err)
		}
		c.PublicKey = b
		return c, nil
	}
	k, err := pgp.LoadKey(PGPKey(env))
	if err != nil {
		return c, fmt.Errorf("loading the archive key (set HALVM_PGP_KEY_FILE, or HALVM_PGP_PUBLIC_KEY_FILE where only verification is needed): %w", err)
	}
	c.Key = k
	return c, nil
}

// Build is what every target that builds reads: the plan and the lock,
// the air-gapped mirror and the shared build cache.
type Build struct {
	Plan     pipeline.Plan
	Lock     *pins.Lock
	Mirror   Mirror
	Registry *regcache.Cache // nil without HALVM_CACHE_REGISTRY
}

// LoadBuild reads Build from env, every problem at once; the shared
// cache warns on warn.
func LoadBuild(env Getenv, warn io.Writer) (Build, error) {
	var b Build
	var errs []error
	var err error
	if b.Plan, b.Lock, err = Plan(env); err != nil {
		errs = append(errs, err)
	}
	if b.Mirror, err = MirrorFromEnv(env); err != nil {
		errs = append(errs, err)
	}
	if b.Registry, err = CacheRegistry(env, warn); err != nil {
		errs = append(errs, err)
	}
	return b, errors.Join(errs...)
}

// Plan loads the configuration and validates it into the run's plan.
func Plan(env Getenv) (pipeline.Plan, *pins.Lock, error) {
	cfg, lock, err := Load(env)
	if err != nil {
		return pipeline.Plan{}, nil, err
	}
	plan, err := pipeline.NewPlan(cfg)
	return plan, lock, err
}
