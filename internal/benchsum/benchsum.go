// Package benchsum gathers what the project's benchmarks measure into one
// side-by-side summary: `go run mage.go bench` runs them one package at a
// time (timings are not shared with another benchmark) and prints each
// benchmark's summary block again at the end, together.
package benchsum

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/halvm/halvm-release/internal/run"
)

// Packages are the packages whose benchmarks `go run mage.go bench` runs:
// the demo's re-runs (cold, resumed, no-op), the Xen boots, the
// compression table and packaging against the stock tools, the repository
// writers.
var Packages = []string{"./release/", "./verify/xenboot/", "./packaging/", "./debian/", "./rpm/"}

const (
	begin = "=== summary: "
	end   = "=== end"
)

// Print writes a summary block: title, then body (lines), which Summary
// finds again in the benchmarks' output.
func Print(w io.Writer, title, body string) {
	fmt.Fprintf(w, "%s%s\n%s\n%s\n", begin, title, strings.TrimRight(body, "\n"), end)
}

// Summary is every summary block in out, in order, each under its title.
func Summary(out string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, begin):
			in = true
			b.WriteString("\n" + strings.TrimPrefix(l, begin) + ":\n")
		case in && l == end:
			in = false
		case in:
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// Run runs the benchmarks of pkgs (Packages when empty) once each, one
// package at a time, with their output going to w as it comes, then
// prints the summary blocks side by side. env is the benchmarks'
// environment (the HALVM_BENCH_* settings).
func Run(ctx context.Context, pkgs []string, env []string, w io.Writer) error {
	if len(pkgs) == 0 {
		pkgs = Packages
	}
	var out bytes.Buffer
	args := append([]string{"go", "test", "-p", "1", "-run", "^$", "-bench", ".", "-benchtime", "1x", "-timeout", "150m"}, pkgs...)
	err := run.Run(ctx, run.Cmd{Args: args, Env: env, Stdout: io.MultiWriter(w, &out), Stderr: w})
	fmt.Fprintf(w, "\n==== side by side ====\n%s", Summary(out.String()))
	if err != nil {
		return fmt.Errorf("benchmarks (%s): %w", strings.Join(args, " "), err)
	}
	return nil
}
