// Package testcmd is the README's test command, `go run mage.go test`: it
// sets the machine up for the whole test suite — every Debian package of
// the table of host prerequisites (internal/hostreq), a Docker daemon that
// answers, the pinned stock cosign CLI — and then runs the suite in strict
// mode (CI=true: a test whose prerequisite is missing fails, never skips).
package testcmd

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/run"
)

// GoTest is the test run itself.
var GoTest = []string{"go", "test", "-count=1", "-timeout", "80m", "./..."}

// Options configure the set-up and the run.
type Options struct {
	Dir      string   // the module's root
	Cache    string   // HALVM_TEST_CACHE: the cosign CLI goes to <Cache>/gobin
	Install  bool     // HALVM_INSTALL: may install missing packages (as root on Debian)
	Env      []string // the environment the tests inherit (CI=true and HALVM_TEST_CACHE are set on it)
	Progress io.Writer
	Stdout   io.Writer // go test's output
}

// Needs is what the test suite needs from the host: the whole table, root
// (chroots, mounts) and a Docker daemon.
func Needs() hostreq.Set {
	var s hostreq.Set
	s.AddAll(hostreq.Tests)
	s.NeedRoot(hostreq.Tests + " (chroots, mounts, rpm --root)")
	s.NeedDocker(hostreq.Tests)
	return s
}

// Setup installs (when allowed) and checks everything the suite needs,
// and the pinned cosign CLI.
func Setup(ctx context.Context, o Options) error {
	start := time.Now()
	log := filepath.Join(o.Cache, "logs", "setup-apt.log")
	if err := hostreq.Ensure(ctx, Needs(), hostreq.EnsureOptions{Install: o.Install, LogPath: log, Progress: o.Progress}); err != nil {
		return fmt.Errorf("test set-up: %w", err)
	}
	bin, err := hostreq.EnsureCosign(ctx, filepath.Join(o.Cache, "gobin"), o.Progress)
	if err != nil {
		return fmt.Errorf("test set-up: %w", err)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "test set-up: every host prerequisite present (%d Debian packages, root, a Docker daemon, %s) in %s\n",
			len(Needs().Packages()), bin, time.Since(start).Round(time.Second))
	}
	return nil
}

// Run sets up and runs the suite in strict mode.
func Run(ctx context.Context, o Options) error {
	if err := Setup(ctx, o); err != nil {
		return err
	}
	env := run.Merge(o.Env, "CI=true", "HALVM_TEST_CACHE="+o.Cache)
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "+ CI=true HALVM_TEST_CACHE=%s %s\n", o.Cache, strings.Join(GoTest, " "))
	}
	if err := run.Run(ctx, run.Cmd{Args: GoTest, Dir: o.Dir, Env: env, Stdout: o.Stdout, Stderr: o.Stdout}); err != nil {
		return fmt.Errorf("the tests failed: %w", err)
	}
	return nil
}
