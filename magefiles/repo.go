package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/repos"
)

// Repo groups the repository targets.
type Repo mg.Namespace

// Serve serves the live apt (/apt) and dnf (/dnf) repositories over HTTP until interrupted.
//
// Serves HALVM_REPO_ROOT on HALVM_REPO_ADDR (default 127.0.0.1:8619).
func (Repo) Serve(ctx context.Context) error {
	root := config.Get(os.Getenv, "HALVM_REPO_ROOT")
	if !repos.Exists(root) {
		return fmt.Errorf("repo:serve: nothing is published under %s: run `go run mage.go release` (or demo) first", root)
	}
	s, err := repos.Serve(root, config.Get(os.Getenv, "HALVM_REPO_ADDR"))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("serving %s/apt and %s/dnf (Ctrl-C stops)\n", s.URL, s.URL)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return nil
}

// Rollback switches both repositories back to their previous publication.
//
// The publication returned to is verified with the archive public key
// (HALVM_PGP_PUBLIC_KEY_FILE) first. With the archive key
// (HALVM_PGP_KEY_FILE) its packages are published again as a new,
// newer-dated publication, which apt clients do return to.
func (Repo) Rollback() error {
	// With the archive key the previous packages are published again,
	// newer-dated (apt keeps lists newer than a Release it is given);
	// with only the public key `current` is switched back as it is.
	c, err := config.RepoConfig(os.Getenv, true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "repo:rollback: no archive key (%v): switching current back without re-signing; apt clients that saw the newer publication keep it\n", err)
		if c, err = config.RepoConfig(os.Getenv, false); err != nil {
			return err
		}
	}
	s, err := repos.Rollback(c)
	if err != nil {
		return err
	}
	fmt.Printf("repo:rollback: apt is now %s, dnf is now %s\n", s.Apt, s.Dnf)
	return nil
}

// Keys groups the key targets.
type Keys mg.Namespace

// Dev creates development signing keys (labelled DEVELOPMENT KEY everywhere) in HALVM_DEV_KEYS.
//
// Prints the environment to sign with them. A release refuses them.
func (Keys) Dev() error {
	_, l, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	f, err := devkeys.Ensure(config.Get(os.Getenv, "HALVM_DEV_KEYS"), l.Release.Epoch())
	if err != nil {
		return err
	}
	fmt.Printf("# development keys (NOT FOR RELEASES) in %s\nexport HALVM_PGP_KEY_FILE=%s HALVM_PGP_PASSPHRASE_FILE=%s HALVM_PGP_PUBLIC_KEY_FILE=%s\nexport HALVM_COSIGN_KEY_FILE=%s HALVM_COSIGN_PASSWORD_FILE=%s\n",
		f.Dir, f.PGPKey, f.PGPPassphrase, f.PGPPublic, f.CosignKey, f.CosignPassword)
	return nil
}
