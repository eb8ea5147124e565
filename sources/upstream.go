package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/pins"
)

// CommitTimer reads a commit's committer time (pins.HostResolver does).
type CommitTimer interface {
	CommitTime(ctx context.Context, url, commit string) (int64, error)
}

// VerifyUpstream re-fetches every input of the lock from its upstream
// location into a fresh, empty cache (no mirror, nothing reused) and checks
// it against the pins, and that the lock's SOURCE_DATE_EPOCH is the
// superproject's commit time. It is `pins:verify`: run it on a machine that
// reaches the upstream hosts.
func VerifyUpstream(ctx context.Context, l *pins.Lock, ct CommitTimer, o Options) error {
	tmp, err := os.MkdirTemp("", "halvm-pins-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.CacheDir = filepath.Join(tmp, "cache")
	o.MirrorDir, o.MirrorMap = "", nil
	if _, err := Fetch(ctx, l, filepath.Join(tmp, "src"), o); err != nil {
		return fmt.Errorf("pins:verify: %w", err)
	}
	root := l.Root()
	t, err := ct.CommitTime(ctx, root.URL, root.Commit)
	if err != nil {
		return fmt.Errorf("pins:verify: %w", err)
	}
	if t != l.Release.SourceDateEpoch {
		return fmt.Errorf("pins:verify: release.source_date_epoch is %d but superproject commit %s was committed at %d: run `go run mage.go pins:update epoch`",
			l.Release.SourceDateEpoch, root.Commit, t)
	}
	return nil
}
