package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/cilint"
	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/internal/testcmd"
	"github.com/halvm/halvm-release/release"
)

// CI groups the targets that keep CI's files in step with the code.
type CI mg.Namespace

// Packages writes .ci/packages.txt from the table of host prerequisites (internal/hostreq).
func (CI) Packages() error {
	if err := os.WriteFile(".ci/packages.txt", hostreq.CIPackages(), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote .ci/packages.txt")
	return nil
}

// Lint lints the GitHub Actions workflows (.github/workflows) with actionlint at its pinned version (internal/cilint).
//
// Run by .ci/run. The linter runs as `go run <module>@<version>`, so
// go.mod needs no tools entry and `go mod tidy` stays a no-op.
func (CI) Lint(ctx context.Context) error {
	return cilint.Lint(ctx, ".", os.Stdout)
}

// Rehearse runs the CI graph of .github/workflows/release.yml locally, twice: cells and rebuild at once, then one after another.
//
// On the sample upstream (like the demo; as root): one process per cell
// (HALVM_FLAVOURS x HALVM_LAYOUTS), each with its own local cache and its
// own view of the fixed build path, and the independent rebuild (no
// shared cache), then the release job (empty local cache), all sharing
// one docker-registry on 127.0.0.1 as HALVM_CACHE_REGISTRY. The release
// job must run no toolchain step and get the same trees as the cells and
// the rebuild. Prints the bytes pushed and pulled per cell and the wall
// time of each way. Work goes below a temporary directory in /var/tmp.
func (CI) Rehearse(ctx context.Context) error {
	o, err := rehearseOptions()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return release.RehearseBoth(ctx, o, os.Stdout)
}

func rehearseOptions() (release.RehearseOptions, error) {
	plan, real, err := config.Plan(os.Getenv)
	if err != nil {
		return release.RehearseOptions{}, err
	}
	layouts, err := config.Layouts(os.Getenv)
	if err != nil {
		return release.RehearseOptions{}, err
	}
	var cells []release.CellSpec
	for _, fl := range plan.Flavours() {
		for _, l := range layouts {
			cells = append(cells, release.CellSpec{Flavour: fl, Layout: l})
		}
	}
	return release.RehearseOptions{RealLock: real, DownloadCache: filepath.Join(plan.CacheDir(), "inputs"), Cells: cells, Log: os.Stderr}, nil
}

// Preflight sets the host up for the demo and stops: it checks everything the whole demo needs (every stage, every verify check) and, as root on Debian, installs what is missing in one apt-get install.
//
// HALVM_INSTALL=no only prints the one command that installs everything.
// `go run mage.go demo` does the same first.
func Preflight(ctx context.Context) error {
	o, err := demoOptions()
	if err != nil {
		return err
	}
	return release.DemoSetup(ctx, o)
}

// Test is the README's test command: it installs every host prerequisite of the tests and the pinned cosign CLI, then runs go test -count=1 -timeout 80m ./... with CI=true (a missing prerequisite fails, never skips).
//
// As root on Debian it runs apt-get update and one apt-get install of what
// is missing (HALVM_INSTALL=no only prints the command). The cosign CLI
// goes to $HALVM_TEST_CACHE/gobin.
func Test(ctx context.Context) error {
	o, err := testOptions()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	return testcmd.Run(ctx, o)
}

// TestSetup does the test command's set-up only (packages, Docker daemon, cosign CLI), running no test.
func TestSetup(ctx context.Context) error {
	o, err := testOptions()
	if err != nil {
		return err
	}
	return testcmd.Setup(ctx, o)
}

func testOptions() (testcmd.Options, error) {
	install, err := config.Install(os.Getenv)
	if err != nil {
		return testcmd.Options{}, err
	}
	cache, err := config.TestCache(os.Getenv)
	if err != nil {
		return testcmd.Options{}, err
	}
	dir, err := os.Getwd()
	if err != nil {
		return testcmd.Options{}, err
	}
	return testcmd.Options{Dir: dir, Cache: cache, Install: install, Env: os.Environ(), Progress: os.Stderr, Stdout: os.Stdout}, nil
}
