package main

import (
	"context"
	"os"

	"github.com/halvm/halvm-release/internal/run"
)

// Bench runs the benchmarks: packaging a ~1.5 GB GHC tree against dpkg-deb and rpmbuild, repository writers, one Xen boot and two at once, and the demo cold vs resumed vs no-op.
//
// The packaging benchmark needs its stand-in tree once: HALVM_BENCH_PREPARE=1
// (Debian's ghc and ghc-prof from the mirror). Figures and the command are in
// RELEASE.md.
func Bench(ctx context.Context) error {
	return run.Run(ctx, run.Cmd{
		Args:   []string{"go", "test", "-run", "^$", "-bench", ".", "-benchtime", "1x", "-timeout", "90m", "./packaging/", "./debian/", "./rpm/", "./verify/xenboot/", "./release/"},
		Env:    os.Environ(),
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
}
