package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/halvm/halvm-release/pins"
)

// CommitTimer reads a commit's committer time (pins.HostResolver does).
type CommitTimer interface {
	CommitTime(ctx context.Context, url, commit string) (int64, error)
}

// VerifyReport is what pins:verify compared.
type VerifyReport struct {
	From      string   // "upstream" or the mirror directory
	Sources   int      // git sources fetched at their pins, every gitlink and .gitmodules URL checked
	Files     []string // files and packages whose size and sha256 were compared
	Absent    []Gap    // inputs not there to compare (pending, or not in the mirror)
	Epoch     int64    // the lock's SOURCE_DATE_EPOCH
	Committed int64    // the superproject commit's committer time (0: not read)
}

// String is the report for people.
func (r *VerifyReport) String() string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "pins:verify against %s: %d git sources at their pins (every gitlink and .gitmodules URL checked), %d files and packages compared\n",
		r.From, r.Sources, len(r.Files))
	if r.Committed != 0 {
		fmt.Fprintf(b, "epoch: the lock says %d, superproject committed at %d", r.Epoch, r.Committed)
		if r.Epoch == r.Committed {
			b.WriteString(" (equal)\n")
		} else {
			b.WriteString(" (MISMATCH)\n")
		}
	}
	for _, g := range r.Absent {
		fmt.Fprintf(b, "not compared: %s: %s\n", g.Input, g.Reason)
	}
	return b.String()
}

// Verify re-fetches every input of the lock into a fresh, empty cache
// (nothing reused) from the mirror directory o.MirrorDir, or from upstream
// when it is empty, and compares it with the pins: every git source at its
// commit with every gitlink and .gitmodules URL, every file and package
// the source has by size and sha256. It compares the lock's
// SOURCE_DATE_EPOCH with the superproject commit's committer time, read
// from the fetched commit. Inputs that are absent (pending, or not in the
// mirror) are named in the report; against a mirror they do not fail the
// verification, against upstream they do. Everything wrong fails it, all
// at once.
func Verify(ctx context.Context, l *pins.Lock, o Options) (*VerifyReport, error) {
	tmp, err := os.MkdirTemp("", "halvm-pins-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	o.CacheDir = filepath.Join(tmp, "cache")
	o.Ledger, o.RefuseGaps = nil, false
	rep := &VerifyReport{From: "upstream", Epoch: l.Release.SourceDateEpoch}
	if o.MirrorDir != "" {
		rep.From = "the mirror " + o.MirrorDir
	}
	res, fetchErr := Fetch(ctx, l, filepath.Join(tmp, "src"), o)
	var errs []error
	var gaps *GapsError
	if fetchErr != nil {
		if errors.As(fetchErr, &gaps) {
			rep.Absent = gaps.Gaps
		}
		if o.MirrorDir == "" || !OnlyGaps(fetchErr) {
			errs = append(errs, fetchErr)
		}
	}
	if res != nil {
		rep.Sources = len(res.Sources)
		for _, f := range res.Files {
			rep.Files = append(rep.Files, LedgerName("file", f.Name))
		}
		for _, d := range res.Debs {
			rep.Files = append(rep.Files, LedgerName("deb", d.Name))
		}
	}
	root := l.Root()
	g := newGit(nil)
	if out, err := g.out(ctx, o.cache("git", root.Name+".git"), "log", "-1", "--format=%ct", root.Commit); err == nil {
		if rep.Committed, err = strconv.ParseInt(out, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("reading the committer time of %s: %q", root.Commit, out))
		}
	} else {
		errs = append(errs, fmt.Errorf("reading the committer time of the superproject commit %s: %w", root.Commit, err))
	}
	if rep.Committed != 0 && rep.Committed != rep.Epoch {
		errs = append(errs, fmt.Errorf("release.source_date_epoch is %d but the superproject commit %s was committed at %d: run `go run mage.go pins:update epoch`",
			rep.Epoch, root.Commit, rep.Committed))
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("pins:verify: %w", errors.Join(errs...))
	}
	return rep, nil
}

// OnlyGaps tells whether every error joined in err is a *GapsError.
func OnlyGaps(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !OnlyGaps(e) {
				return false
			}
		}
		return true
	}
	var g *GapsError
	return errors.As(err, &g)
}

// VerifyUpstream is Verify against upstream (no mirror): run it on a
// machine that reaches the upstream hosts. ct is kept for callers that
// read the commit time elsewhere; the time is read from the fetched commit.
func VerifyUpstream(ctx context.Context, l *pins.Lock, ct CommitTimer, o Options) error {
	o.MirrorDir, o.MirrorMap = "", nil
	_, err := Verify(ctx, l, o)
	return err
}
