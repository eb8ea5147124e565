package hostreq

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/run"
)

// Cosign is the stock cosign CLI the interop tests check our signatures
// with, pinned: `go install Cosign@CosignVersion`.
const (
	Cosign        = "github.com/sigstore/cosign/v2/cmd/cosign"
	CosignVersion = "v2.6.5"
)

// EnsureCosign installs the pinned cosign CLI into gobin (the tests find
// it at $HALVM_TEST_CACHE/gobin/cosign) unless that version is there.
func EnsureCosign(ctx context.Context, gobin string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	bin := filepath.Join(gobin, "cosign")
	env := run.BaseEnv(run.Inherit("GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GONOSUMDB", "GOSUMDB", "GOTOOLCHAIN", "XDG_CACHE_HOME")...)
	if out, err := run.Output(ctx, run.Cmd{Args: []string{bin, "version"}, Env: env}); err == nil && strings.Contains(string(out), strings.TrimPrefix(CosignVersion, "v")) {
		return bin, nil
	}
	if err := os.MkdirAll(gobin, 0o755); err != nil {
		return "", fmt.Errorf("installing cosign: %w", err)
	}
	fmt.Fprintf(progress, "set-up: go install %s@%s (the stock cosign CLI of the interop tests) into %s\n", Cosign, CosignVersion, gobin)
	env = run.Merge(env, "GOBIN="+gobin, "GOFLAGS=")
	if err := run.Run(ctx, run.Cmd{Args: []string{"go", "install", Cosign + "@" + CosignVersion}, Env: env}); err != nil {
		return "", fmt.Errorf("installing the cosign CLI %s: %w (needs the Go module proxy)", CosignVersion, err)
	}
	if _, err := run.Output(ctx, run.Cmd{Args: []string{bin, "version"}, Env: env}); err != nil {
		return "", fmt.Errorf("the installed cosign CLI does not run: %w", err)
	}
	return bin, nil
}
