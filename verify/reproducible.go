package verify

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/verify/diff"
)

// CompareBuilds is the evidence step of a reproducibility check: it
// compares two builds of the same artifacts (two files, or two directories
// such as dist/ and a rebuild's dist/) and passes only when they are the
// same bytes. On a mismatch the error says how many differences there are
// and the Evidence details list WHAT differs (members, entries, fields;
// bounded), plus diffoscope's report when withDiffoscope is set and it is
// installed.
func CompareBuilds(ctx context.Context, first, second string, o diff.Options, withDiffoscope bool) (Evidence, error) {
	n, err := countFiles(first)
	if err != nil {
		return Evidence{}, fmt.Errorf("comparing builds: %w", err)
	}
	l, err := diff.Paths(first, second, o)
	if err != nil {
		return Evidence{}, fmt.Errorf("comparing builds: %w", err)
	}
	if l.Identical() {
		return Checked(n, "%d files identical in both builds (%s)", n, l.Format), nil
	}
	ev := Evidence{Checked: n, Details: l.Lines()}
	if withDiffoscope && diff.DiffoscopeAvailable() {
		out, derr := diff.Diffoscope(ctx, first, second, 0)
		if derr != nil {
			ev.Details = append(ev.Details, "diffoscope: "+derr.Error())
		} else {
			ev.Details = append(ev.Details, "diffoscope:")
			ev.Details = append(ev.Details, strings.Split(strings.TrimRight(out, "\n"), "\n")...)
		}
	}
	what := "differences"
	if l.Total == 1 {
		what = "difference"
	}
	return ev, fmt.Errorf("the two builds differ: %d %s in %s", l.Total, what, filepath.Base(first))
}

func countFiles(p string) (int, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 1, nil
	}
	n := 0
	err = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	return n, err
}
