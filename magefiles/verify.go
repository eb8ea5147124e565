package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/release"
)

// Verify runs the verification suite on a built release (HALVM_OUT) with only the public keys; exits non-zero on any failure.
//
// Trusts only the lock, the archive public key (HALVM_PGP_PUBLIC_KEY_FILE)
// and the cosign public key (HALVM_COSIGN_PUBLIC_KEY_FILE); HALVM_OUT's
// ledger.json is a hint of where to look. Checks the served tree under the
// publish root (HALVM_REPO_ROOT, else HALVM_OUT/repos): what apt/current
// and dnf/current point at and files/current. Writes HALVM_OUT/verify.json
// (status running at the start; absolute paths and the sha256 of every
// input). Downloads
// (the clean Debian rootfs template, the Xen machine) are cached in
// HALVM_VERIFY_CACHE (default <HALVM_CACHE>/verify); with that cache warm
// nothing but 127.0.0.1 is reached. The images are pulled by digest from
// the registry the ledger records, which must be up; a demo's throwaway
// registry is re-served from the signed images saved in dist/oci/cosign.
// The reproducibility rebuild needs the lock (HALVM_LOCK, or
// dist/sample.lock of a demo) and no private key: it reuses the release's
// signatures where they verify over the rebuilt bytes.
func Verify(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return release.VerifyBuilt(ctx, config.LoadVerification(os.Getenv), os.Stderr)
}
