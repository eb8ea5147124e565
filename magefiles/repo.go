package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/publish"
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

// Staged serves the newest staged publications (a snapshot's, never live) as /apt and /dnf until interrupted.
//
// A run that skipped stages (a snapshot) stages its publications and stops
// before the switch: this is how to look at them. Serves HALVM_REPO_ROOT's
// staged publications on HALVM_REPO_ADDR.
func (Repo) Staged(ctx context.Context) error {
	c := repos.Config{Root: config.Get(os.Getenv, "HALVM_REPO_ROOT")}
	s, err := repos.Newest(c)
	if err != nil {
		return fmt.Errorf("repo:staged: %w", err)
	}
	srv, err := publish.Serve(repos.StagedHandler(c, s), config.Get(os.Getenv, "HALVM_REPO_ADDR"))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("serving the STAGED (not live) publications apt/%s and dnf/%s at %s/apt and %s/dnf (Ctrl-C stops)\n", s.Apt, s.Dnf, srv.URL, srv.URL)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return nil
}

// Prune keeps the last HALVM_KEEP (default 5) live publications of each repository and removes the rest.
//
// Never the live publication nor the one repo:rollback returns to;
// publications that never went live (a failed run's, a snapshot's) go too.
func (Repo) Prune() error {
	keep, err := config.Keep(os.Getenv)
	if err != nil {
		return err
	}
	removed, err := repos.Prune(repos.Config{Root: config.Get(os.Getenv, "HALVM_REPO_ROOT")}, keep)
	for _, n := range removed {
		fmt.Println("repo:prune: removed", n)
	}
	if err == nil {
		fmt.Printf("repo:prune: %d publication(s) removed, the last %d live ones kept per repository\n", len(removed), keep)
	}
	return err
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
