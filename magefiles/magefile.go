// The command line of halvm-release: every target is thin — it reads its
// arguments and the environment (internal/config), calls one library
// function and returns its error. `go run mage.go -l` lists the targets.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/oci/baseimage"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sources"
)

// Pins groups the lock-file targets.
type Pins mg.Namespace

// Check validates the lock file offline, reporting every problem at once.
//
// The lock is HALVM_LOCK (default pins/halvm.lock). Pending pins (inputs
// without a published checksum) are listed as warnings.
func (Pins) Check() error {
	path := config.LockPath(os.Getenv)
	r, err := pins.Check(path)
	if err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	l := r.Lock
	fmt.Printf("%s: ok — %s %s, %d sources, %d excluded submodules, %d files, %d Debian packages, %d flavours, epoch %d\n",
		path, l.Release.Name, l.Release.Version, len(l.Sources), len(l.Excluded), len(l.Files), len(l.Debs), len(l.Flavours), l.Release.SourceDateEpoch)
	return nil
}

// Fmt rewrites the lock file in canonical form.
func (Pins) Fmt() error {
	path := config.LockPath(os.Getenv)
	changed, err := pins.Fmt(path)
	if err == nil && changed {
		fmt.Println("reformatted", path)
	}
	return err
}

// Update resolves new pins and rewrites the lock, printing the diff.
//
// requests is a space-separated list of: debs, deb:NAME, source:NAME@REF,
// file:NAME, epoch, image (the image's base and dependency layers).
// Example: go run mage.go pins:update "file:happy epoch".
// Needs network access to what is resolved.
func (Pins) Update(ctx context.Context, requests string) error {
	cfg, _, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("pins:update: %w", err)
	}
	r := updateResolver{ImageResolver: baseimage.ImageResolver{
		Config:  baseimage.Config{CacheDir: filepath.Join(cfg.CacheDir, "oci")},
		Depends: packaging.Depends[packaging.Deb],
	}}
	return pins.UpdateFile(ctx, config.LockPath(os.Getenv), r, strings.Fields(requests), os.Stdout)
}

// updateResolver answers pins:update: the host's git, apt and HTTP, and
// the image's package sets from oci/baseimage.
type updateResolver struct {
	pins.HostResolver
	baseimage.ImageResolver
}

// Env lists every environment variable the pipeline reads, with defaults.
func Env() { config.PrintVars(os.Stdout) }

// Verify re-fetches every pinned input into an empty cache and compares it with the lock.
//
// From upstream (a networked machine), or from HALVM_MIRROR: every git
// source at its pin with every gitlink and .gitmodules URL, every file and
// package the source has by size and sha256 (absent ones are named), and
// SOURCE_DATE_EPOCH against the superproject's committer time.
func (Pins) Verify(ctx context.Context) error {
	l, err := pins.LoadFile(config.LockPath(os.Getenv))
	if err != nil {
		return err
	}
	m, err := config.MirrorFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	rep, err := sources.Verify(ctx, l, sources.Options{MirrorDir: m.Dir, MirrorMap: m.Map})
	if rep != nil {
		fmt.Print(rep.String())
	}
	if err != nil {
		return err
	}
	fmt.Println("pins:verify: every input compared matches its pin")
	return nil
}

// Sources fetches and verifies every pinned input into the cache and checks out the tree.
//
// The tree goes to $HALVM_WORK/src (replaced only by a complete, verified
// tree), inputs to $HALVM_CACHE/inputs (as the release); HALVM_MIRROR makes the fetch air-gapped.
// Git sources come first, then files and packages smallest first; an
// input that is pending or absent blocks only itself and is reported with
// its remedy at the end (the target then fails). A file pinned by sha256
// alone gets its measured size recorded in the lock.
func Sources(ctx context.Context) error {
	cfg, l, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	m, err := config.MirrorFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	// The same input cache as the release (and the toolchain plan) use.
	res, fetchErr := sources.FetchFresh(ctx, l, filepath.Join(cfg.WorkDir, "src"), sources.Options{CacheDir: filepath.Join(cfg.CacheDir, "inputs"), MirrorDir: m.Dir, MirrorMap: m.Map})
	fmt.Print(sources.Summary(res, fetchErr))
	recorded, err := pins.RecordSizes(config.LockPath(os.Getenv), sources.UnsizedVerified(l, res))
	for _, r := range recorded {
		fmt.Println("recorded in the lock:", r)
	}
	return errors.Join(fetchErr, err)
}
