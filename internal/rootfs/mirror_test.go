package rootfs

import (
	"context"
	"errors"
	"testing"

	"github.com/halvm/halvm-release/internal/run"
)

// TestFetchFailed: only apt's "cannot fetch" failures mark the mirror as
// unreachable (a test then skips locally); any other failure is a fault.
func TestFetchFailed(t *testing.T) {
	fail := func(stderr string) error {
		return run.Run(context.Background(), run.Cmd{Args: []string{"sh", "-c", "printf '%s\\n' \"$0\" >&2; exit 100", stderr}, Env: run.BaseEnv()})
	}
	for _, msg := range []string{
		"W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'",
		"E: Some index files failed to download. They have been ignored, or old ones used instead.",
		"Err:1 http://10.0.0.1/debian bookworm InRelease\n  Could not connect to 10.0.0.1:80 (10.0.0.1), connection timed out",
	} {
		if err := fail(msg); !fetchFailed(err) {
			t.Errorf("%q: not recognised as a fetch failure (%v)", msg, err)
		}
	}
	for _, msg := range []string{"E: Unable to locate package nosuchpackage", "mmdebstrap: error: cannot create directory"} {
		if err := fail(msg); fetchFailed(err) {
			t.Errorf("%q: taken for a fetch failure: a real fault would be skipped", msg)
		}
	}
	if fetchFailed(errors.New("Failed to fetch")) {
		t.Error("an error that is not a failed run taken for apt's output")
	}
}
