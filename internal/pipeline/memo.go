package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// MemoFormat changes whenever what a memo means changes: a ledger written
// with another format is never reused.
const MemoFormat = "memo-1"

// Memo is what the ledger keeps of a stage that ran (or was reused) so that
// a later run can tell whether it may skip it: the digests of everything
// the stage read (Inputs, summarized by Key) and of what it produced (its
// ledger artifacts, and Outputs for what the ledger does not hash, such as
// directories).
type Memo struct {
	// Run is the run that produced the outputs: the run that ran the
	// stage, kept by every later run that reused them.
	Run string `json:"run"`
	// Key is the sha256 over Inputs (MemoKey).
	Key    string            `json:"key"`
	Inputs map[string]string `json:"inputs"`
	// Outputs are digests of outputs the artifacts do not cover
	// (directories, publications), re-computed before any reuse.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Artifacts are the ledger entries the stage made.
	Artifacts []Artifact `json:"artifacts,omitempty"`
	// State is what the stage hands to later stages beyond the ledger
	// (paths of trees, names of staged publications), for Reuse.Restore.
	State json.RawMessage `json:"state,omitempty"`
	// Items are the parts of a stage memoized one by one (each image,
	// each verdict), recorded by the stage itself (Ledger.SetItems).
	Items map[string]Item `json:"items,omitempty"`
}

// Item is one part of a stage memoized on its own: its key, the run that
// produced it, and what the stage needs to reuse it.
type Item struct {
	Key  string          `json:"key"`
	Run  string          `json:"run"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Reuse lets a re-run skip a stage whose inputs are unchanged and whose
// recorded outputs are still on disk with the same digests. Anything not
// provably unchanged runs: an error computing the inputs, a missing or
// changed output, a failed Restore.
type Reuse struct {
	// Inputs returns the digest of everything the stage reads, by name
	// (the plan, the lock, the tools, the keys, the artifacts it uses).
	Inputs func(ctx context.Context, p Plan, l *Ledger) (map[string]string, error)
	// Outputs, when set, returns digests of the stage's outputs that its
	// ledger artifacts do not cover, given its State; after a run they are
	// recorded, before a reuse they are computed again (from the recorded
	// State) and must be equal.
	Outputs func(ctx context.Context, p Plan, state json.RawMessage) (map[string]string, error)
	// State, when set, returns after a run what the stage hands to later
	// stages beyond the ledger.
	State func() (json.RawMessage, error)
	// Restore, when set, re-establishes a reused stage's hand-offs from the
	// memo (its State); its error makes the stage run after all.
	Restore func(ctx context.Context, p Plan, l *Ledger, prev Memo) error
}

// MemoKey is the sha256 over the inputs, in name order.
func MemoKey(inputs map[string]string) string {
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", MemoFormat)
	for _, k := range names {
		fmt.Fprintf(h, "%q=%q\n", k, inputs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DiffNames lists the names whose values differ between two digest maps
// (added, removed or changed), sorted: what a re-run says changed.
func DiffNames(old, cur map[string]string) []string {
	var d []string
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			d = append(d, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			d = append(d, k)
		}
	}
	sort.Strings(d)
	return d
}

// NewRunID names a run: its UTC start time and a random suffix.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// LedgerInputs are the digests of everything the stages before produced:
// every artifact in the ledger ("artifact <kind> <name> <flavour>") and
// every output digest their memos recorded ("output <stage> <name>"). Where
// an image was pushed (Ref) is not an input, its digest is; nor are reports,
// which describe a run and which no stage reads.
func LedgerInputs(l *Ledger) map[string]string {
	m := map[string]string{}
	for _, a := range l.Artifacts() {
		if a.Kind == KindReport {
			continue
		}
		m[fmt.Sprintf("artifact %s %s %s", a.Kind, a.Name, a.Flavour)] = fmt.Sprintf("%s %d %s %s", a.Path, a.Size, a.SHA256, a.Commit)
	}
	for _, s := range l.Stages() {
		if s.Memo == nil {
			continue
		}
		for k, v := range s.Memo.Outputs {
			m[fmt.Sprintf("output %s %s", s.Name, k)] = v
		}
	}
	return m
}

var program struct {
	once sync.Once
	sum  string
	err  error
}

// ProgramDigest is the sha256 of the running program: the code of every
// stage, so any change to it makes every memo stale.
func ProgramDigest() (string, error) {
	program.once.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			program.err = fmt.Errorf("finding the running program: %w", err)
			return
		}
		_, program.sum, program.err = fsutil.HashFile(exe)
	})
	return program.sum, program.err
}

// TreeDigest hashes a directory tree: every path, its type and mode, a
// symbolic link's target and a regular file's contents, in walk (sorted)
// order.
func TreeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%v\x00", filepath.ToSlash(rel), info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00", t)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing the tree %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkArtifacts re-hashes every recorded artifact that is a file below
// the output directory (it has a path and a sha256) and returns what
// differs.
func checkArtifacts(outDir string, as []Artifact) []string {
	var bad []string
	for _, a := range as {
		if a.Path == "" || a.SHA256 == "" {
			continue
		}
		size, sum, err := fsutil.HashFile(filepath.Join(outDir, filepath.FromSlash(a.Path)))
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s %s: %v", a.Kind, a.Path, err))
		case size != a.Size || sum != a.SHA256:
			bad = append(bad, fmt.Sprintf("%s %s changed (sha256 %s, recorded %s)", a.Kind, a.Path, short(sum), short(a.SHA256)))
		}
	}
	return bad
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// reusable decides whether a stage may be skipped: it returns the
// previous memo and "" when it may, or why it runs.
func reusable(ctx context.Context, p Plan, l *Ledger, s Stage, inputs map[string]string) (Memo, string) {
	prev, ok := l.PreviousStage(s.Name)
	switch {
	case p.Fresh(s.Name):
		return Memo{}, "forced by HALVM_FRESH"
	case !ok:
		return Memo{}, "no earlier run recorded"
	case prev.Status != Passed:
		return Memo{}, fmt.Sprintf("it did not pass in the run before (%s)", prev.Status)
	case prev.Memo == nil:
		return Memo{}, "the run before recorded nothing to reuse"
	}
	m := *prev.Memo
	if m.Key != MemoKey(inputs) {
		return Memo{}, "inputs changed since run " + m.Run + ": " + strings.Join(DiffNames(m.Inputs, inputs), ", ")
	}
	if bad := checkArtifacts(p.OutDir(), m.Artifacts); len(bad) > 0 {
		return Memo{}, "outputs changed on disk: " + strings.Join(bad, "; ")
	}
	if s.Reuse.Outputs != nil {
		out, err := s.Reuse.Outputs(ctx, p, m.State)
		if err != nil {
			return Memo{}, "outputs cannot be checked: " + err.Error()
		}
		if d := DiffNames(m.Outputs, out); len(d) > 0 {
			return Memo{}, "outputs changed on disk: " + strings.Join(d, ", ")
		}
	}
	return m, ""
}
