// Command halvm-rebuild is the reproducibility rebuild's child process:
// the verification (release.Rebuild) builds it from this source tree and
// starts it, in an environment and under conditions of its own, with the
// request file it wrote. It runs the release's build stages again into
// the request's output directory and exits non-zero unless all passed.
//
//	halvm-rebuild REQUEST.json
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the rebuild's time zone (TZ) without the host's tzdata

	"github.com/halvm/halvm-release/release"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: halvm-rebuild REQUEST.json (started by the verification's reproducibility check)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := release.RebuildChild(ctx, os.Args[1], os.LookupEnv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rebuild:", err)
		os.Exit(1)
	}
}
