// The command line of halvm-release: every target is thin — it reads its
// arguments and the environment (internal/config), calls one library
// function and returns its error. `go run mage.go -l` lists the targets.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/pins"
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
// file:NAME, epoch. Example: go run mage.go pins:update "file:happy epoch".
// Needs network access to what is resolved.
func (Pins) Update(ctx context.Context, requests string) error {
	return pins.UpdateFile(ctx, config.LockPath(os.Getenv), pins.HostResolver{}, strings.Fields(requests), os.Stdout)
}

// Env lists every environment variable the pipeline reads, with defaults.
func Env() { config.PrintVars(os.Stdout) }
