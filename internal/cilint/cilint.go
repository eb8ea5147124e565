// Package cilint lints the project's GitHub Actions workflows with
// actionlint at a fixed version, run as `go run <module>@<version>`: no
// tools module, so go.mod stays as `go mod tidy` leaves it.
package cilint

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/halvm/halvm-release/internal/run"
)

// Actionlint is the linter, pinned.
const Actionlint = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

// Workflows lists root/.github/workflows/*.yml, sorted.
func Workflows(root string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(m)
	return m, nil
}

// Lint runs actionlint on every workflow below root; its findings go to
// out and make the error.
func Lint(ctx context.Context, root string, out io.Writer) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	files, err := Workflows(root)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no workflow in %s", filepath.Join(root, ".github", "workflows"))
	}
	var buf bytes.Buffer
	args := append([]string{"go", "run", Actionlint, "-color=false"}, files...)
	// The go command's own settings (module proxy, caches) pass through.
	env := run.Merge(run.BaseEnv(), run.Inherit("GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE",
		"GOINSECURE", "GOFLAGS", "GOTOOLCHAIN", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")...)
	err = run.Run(ctx, run.Cmd{Args: args, Dir: root, Env: env, Stdout: io.MultiWriter(out, &buf), Stderr: io.MultiWriter(out, &buf)})
	if err != nil {
		return fmt.Errorf("actionlint (%s) found problems in %v: %w\n%s", Actionlint, files, err, buf.String())
	}
	fmt.Fprintf(out, "actionlint %s: %d workflow(s) clean\n", Actionlint, len(files))
	return nil
}
