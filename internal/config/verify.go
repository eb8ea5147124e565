package config

import (
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/pins"
)

// Verification is the configuration of verifying a release already built
// (`go run mage.go verify`): where it is, what it trusts and, for the
// reproducibility rebuild, the signing key and mirror. Problems are kept
// with what they concern (LockErr, MirrorErr): the verification reports
// them in order, after it has written its report's first state.
type Verification struct {
	OutDir   string // HALVM_OUT, absolute
	RepoRoot string // HALVM_REPO_ROOT, else OutDir/repos; absolute

	// Config and Lock are the lock's configuration: HALVM_LOCK, else the
	// sample.lock a demo leaves in OutDir. LockErr says why they are
	// incomplete.
	Config  pipeline.Config
	Lock    *pins.Lock
	LockErr error

	// ArchivePublicKeyFile and CosignPublicKeyFile are the pinned public
	// keys (HALVM_PGP_PUBLIC_KEY_FILE, HALVM_COSIGN_PUBLIC_KEY_FILE); ""
	// when unset: the verification names the variable then.
	ArchivePublicKeyFile, CosignPublicKeyFile string

	CacheDir string // HALVM_VERIFY_CACHE, else <HALVM_CACHE>/verify

	// The rebuild's inputs (no private key: it reuses the release's
	// signatures): the repositories' URL and the mirror.
	RepoURL   string
	Mirror    Mirror
	MirrorErr error
	// RebuildFrom is a finished independent rebuild (HALVM_REBUILD_FROM)
	// the check compares with instead of rebuilding.
	RebuildFrom string

	// VSAKey is the verifier's own cosign key (HALVM_VSA_KEY_FILE): when
	// set, a signed verification summary naming VerifierID is written.
	VSAKey     cosign.KeySource
	VerifierID string
}

// LoadVerification reads the configuration of `go run mage.go verify`
// from env.
func LoadVerification(env Getenv) Verification {
	v := Verification{OutDir: abs(get(env, "HALVM_OUT"))}
	v.RepoRoot = env("HALVM_REPO_ROOT")
	if v.RepoRoot == "" {
		v.RepoRoot = filepath.Join(v.OutDir, "repos")
	}
	v.RepoRoot = abs(v.RepoRoot)
	if env("HALVM_LOCK") == "" {
		demoLock := filepath.Join(v.OutDir, "sample.lock")
		if _, err := os.Stat(demoLock); err == nil {
			outer := env
			env = func(k string) string {
				if k == "HALVM_LOCK" {
					return demoLock
				}
				return outer(k)
			}
		}
	}
	v.Config, v.Lock, v.LockErr = Load(env)
	v.ArchivePublicKeyFile = env("HALVM_PGP_PUBLIC_KEY_FILE")
	v.CosignPublicKeyFile = env("HALVM_COSIGN_PUBLIC_KEY_FILE")
	v.CacheDir = VerifyCacheDir(env, v.Config.CacheDir)
	v.VSAKey, v.VerifierID = VSAKey(env), get(env, "HALVM_VERIFIER_ID")
	v.RebuildFrom = env(RebuildFromVar)
	v.RepoURL = get(env, "HALVM_REPO_URL")
	v.Mirror, v.MirrorErr = MirrorFromEnv(env)
	return v
}

// abs is p made absolute (p itself when that fails: the error shows when
// it is used).
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Remote is the configuration of a rebuild from a published release's
// URL (`go run mage.go rebuild <URL>`): public keys only.
type Remote struct {
	OutDir string // HALVM_OUT, absolute: the download, the rebuild, the report, the summary
	// Fingerprints are the archive key fingerprints the published keyring
	// must hold: HALVM_PGP_FINGERPRINT, else those of the pinned public key
	// HALVM_PGP_PUBLIC_KEY_FILE (read by the caller: ArchivePublicKeyFile).
	Fingerprint          string
	ArchivePublicKeyFile string
	CosignPublicKeyFile  string // HALVM_COSIGN_PUBLIC_KEY_FILE: checks SHA256SUMS.sig
	Registry             string // HALVM_REBUILD_REGISTRY
	RebuildFrom          string // HALVM_REBUILD_FROM: compare with a finished rebuild instead of building
	VSAKey               cosign.KeySource
	VerifierID           string
	Mirror               Mirror
	MirrorErr            error
	env                  Getenv
}

// LoadRemote reads the configuration of `go run mage.go rebuild <URL>`.
func LoadRemote(env Getenv) Remote {
	r := Remote{OutDir: abs(get(env, "HALVM_OUT")), Fingerprint: env("HALVM_PGP_FINGERPRINT"),
		ArchivePublicKeyFile: env("HALVM_PGP_PUBLIC_KEY_FILE"), CosignPublicKeyFile: env("HALVM_COSIGN_PUBLIC_KEY_FILE"),
		Registry: env("HALVM_REBUILD_REGISTRY"), RebuildFrom: env(RebuildFromVar), VerifierID: get(env, "HALVM_VERIFIER_ID"), env: env}
	r.VSAKey = VSAKey(env)
	r.Mirror, r.MirrorErr = MirrorFromEnv(env)
	return r
}

// Plan is the build configuration of the release the downloaded lock at
// lockPath makes, with package release number release (the rest, the
// cache and the build root among them, from the environment).
func (r Remote) Plan(lockPath, release string) (pipeline.Config, *pins.Lock, error) {
	env := r.env
	if env == nil {
		env = os.Getenv
	}
	return Load(func(k string) string {
		switch k {
		case "HALVM_LOCK":
			return lockPath
		case "HALVM_RELEASE":
			return release
		case "HALVM_OUT":
			return r.OutDir
		}
		return env(k)
	})
}
