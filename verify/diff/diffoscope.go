package diff

import (
	"context"
	"errors"
	"fmt"

	"github.com/halvm/halvm-release/internal/run"
)

// DiffoscopeHint is what to tell a user who wants a deeper view than the
// listing.
const DiffoscopeHint = "for a byte-level view of every difference: apt-get install diffoscope; diffoscope A B"

// DiffoscopeAvailable reports whether diffoscope is on PATH.
func DiffoscopeAvailable() bool {
	_, err := run.LookPath("diffoscope", run.Inherit("PATH"))
	return err == nil
}

// Diffoscope runs diffoscope on two files or directories and returns its
// text report, cut to maxBytes (0 means 64 KiB). It is an optional deeper
// view; the listing of Paths never needs it. An identical pair gives "".
func Diffoscope(ctx context.Context, a, b string, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		maxBytes = 64 << 10
	}
	if !DiffoscopeAvailable() {
		return "", errors.New("diffoscope is not installed: apt-get install diffoscope")
	}
	out, err := run.Output(ctx, run.Cmd{
		Args: []string{"diffoscope", "--no-progress", "--text", "-", "--max-report-size", fmt.Sprint(maxBytes), a, b},
		Env:  run.BaseEnv(),
	})
	// Exit status 1 means "differences found".
	var ec interface{ ExitCode() int }
	if err != nil && !(errors.As(err, &ec) && ec.ExitCode() == 1) {
		return "", fmt.Errorf("running diffoscope on %s and %s: %w", a, b, err)
	}
	if len(out) > maxBytes {
		out = append(out[:maxBytes], []byte("\n... (cut)\n")...)
	}
	return string(out), nil
}
