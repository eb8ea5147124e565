package main

import (
	"context"
	"os"

	"github.com/halvm/halvm-release/internal/benchsum"
)

// Bench runs the benchmarks one package at a time and prints their figures side by side: the demo cold vs resumed after a failed publish vs no-op, seconds per booted Xen guest, the compression table, packaging against dpkg-deb and rpmbuild, the repository writers.
//
// The packaging benchmarks need their ~1.5 GB stand-in tree once:
// HALVM_BENCH_PREPARE=1 (Debian's ghc and ghc-prof from the mirror);
// HALVM_BENCH_TREE_MB and HALVM_BENCH_COMPRESSIONS narrow the compression
// table. Takes about an hour on 2 cores. Figures and the machine they were
// measured on are in RELEASE.md.
func Bench(ctx context.Context) error {
	return benchsum.Run(ctx, nil, os.Environ(), os.Stdout)
}
