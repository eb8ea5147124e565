// Package publish owns how a repository tree goes live: a new publication
// is written complete into a fresh directory beside the live one, verified,
// and only then made live by atomically renaming a symlink over `current`.
// Earlier publications stay available for rollback. Killing the publisher
// at any point leaves `current` pointing at a complete, verified tree.
//
// Layout under the publish root:
//
//	current -> publications/0003-1f2e3d4c   (symlink, relative)
//	history                                 every publication that went live, one name a line
//	publications/0001-.../                  complete trees, oldest first
//	publications/.staging-*/                unfinished work, removed by the next publish
//
// History is only what went live: a publication prepared but never
// switched to (its run failed, or was a snapshot) is never a rollback
// target, never "the previous release", never counted as kept, and the
// next Prepare (or RemoveUnpublished) removes it. Everything under the
// root is world-readable (FileMode, DirMode) whatever the umask.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Format is a repository format (apt, dnf) as the publisher sees it.
type Format interface {
	// Write writes into the empty directory dst a complete repository
	// holding the packages of the live publication (the directory live, ""
	// when nothing is published yet) plus pkgs. It must refuse a package
	// that replaces a live one of the same name, version and architecture
	// with different bytes.
	Write(ctx context.Context, dst, live string, pkgs []string) error
	// Verify checks a written repository: signatures and every checksum.
	Verify(dir string) error
}

// Options of a publish.
type Options struct {
	// Keep is how many publications to keep (at least 2: the live one and
	// the one a rollback returns to). 0 means 5.
	Keep int
	// AfterStep, when set, is called after every step with its name
	// (Steps lists them): progress reporting, and fault injection in tests.
	AfterStep func(step string)
	// clock, when set by tests, replaces time.Now.
	clock func() time.Time
}

func (o Options) now() time.Time {
	if o.clock != nil {
		return o.clock()
	}
	return time.Now()
}

const (
	currentLink = "current"
	historyFile = "history"
	pubDir      = "publications"
	stagingPfx  = ".staging-"
)

// Publish makes a new publication holding the live publication's packages
// plus pkgs, verifies it, switches `current` to it and prunes old ones. It
// returns the new publication's name. On any error the live repository is
// untouched.
func Publish(ctx context.Context, root string, f Format, pkgs []string, o Options) (string, error) {
	name, err := Prepare(ctx, root, f, pkgs, o)
	if err != nil {
		return "", err
	}
	return name, Activate(root, f, name, o)
}

// Steps are the publisher's steps in order, as AfterStep reports them:
// Prepare's, then Activate's.
var Steps = []string{"staging-created", "written", "verified", "synced", "renamed", "stamped", "symlink-created", "switched", "pruned"}

func (o Options) step(s string) {
	if o.AfterStep != nil {
		o.AfterStep(s)
	}
}

func (o Options) keep() (int, error) {
	keep := o.Keep
	if keep == 0 {
		keep = 5
	}
	if keep < 2 {
		return 0, fmt.Errorf("publish: keep %d publications: want at least 2 (the live one and a rollback target)", keep)
	}
	return keep, nil
}

// Prepare writes and verifies a new publication (the live publication's
// packages plus pkgs) under publications/ without making it live, and
// returns its name. The release stages repositories this way and activates
// them only after the whole release verified.
func Prepare(ctx context.Context, root string, f Format, pkgs []string, o Options) (string, error) {
	if _, err := o.keep(); err != nil {
		return "", err
	}
	pubs := filepath.Join(root, pubDir)
	if err := os.MkdirAll(pubs, DirMode); err != nil {
		return "", fmt.Errorf("publish: the publish root %s: %w (nothing was changed)", root, err)
	}
	if err := probe(root); err != nil {
		return "", err
	}
	if err := PublicDir(pubs); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := PublicDir(root); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := removeStaging(pubs); err != nil {
		return "", err
	}
	if err := repairHistory(root); err != nil {
		return "", err
	}
	if _, err := RemoveUnpublished(root); err != nil {
		return "", err
	}
	live, err := Current(root)
	if err != nil && !errors.Is(err, ErrNothingPublished) {
		return "", err
	}
	liveDir := ""
	if live != "" {
		liveDir = filepath.Join(pubs, live)
	}
	staging, err := os.MkdirTemp(pubs, stagingPfx)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	defer os.RemoveAll(staging) // a no-op once renamed
	o.step("staging-created")
	if err := f.Write(ctx, staging, liveDir, pkgs); err != nil {
		return "", fmt.Errorf("publish: writing the new publication: %w", err)
	}
	// Whatever the umask (the rebuild runs with 077) and whatever modes
	// the writer chose: a web server's unprivileged workers read it all.
	if err := makePublic(staging); err != nil {
		return "", fmt.Errorf("publish: making the new publication world-readable: %w", err)
	}
	o.step("written")
	if err := f.Verify(staging); err != nil {
		return "", fmt.Errorf("publish: the new publication does not verify, nothing was published: %w", err)
	}
	o.step("verified")
	if err := syncTree(staging); err != nil {
		return "", fmt.Errorf("publish: syncing the new publication: %w", err)
	}
	o.step("synced")
	digest, err := treeDigest(staging)
	if err != nil {
		return "", err
	}
	names, err := List(root)
	if err != nil {
		return "", err
	}
	seq := 1
	if len(names) > 0 {
		seq = seqOf(names[len(names)-1]) + 1
	}
	name := fmt.Sprintf("%04d-%s", seq, digest[:12])
	if err := os.Rename(staging, filepath.Join(pubs, name)); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := syncDir(pubs); err != nil {
		return "", err
	}
	o.step("renamed")
	return name, nil
}

// Activate verifies the prepared publication name once more, makes it live
// and prunes publications beyond Options.Keep.
func Activate(root string, f Format, name string, o Options) error {
	keep, err := o.keep()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, pubDir, name)
	if err := f.Verify(dir); err != nil {
		return fmt.Errorf("publish: refusing to activate %s, it does not verify: %w", name, err)
	}
	if err := switchTo(root, name, o); err != nil {
		return err
	}
	o.step("switched")
	if err := prune(root, keep); err != nil {
		return fmt.Errorf("publish: %s is live, but pruning old publications failed: %w", name, err)
	}
	o.step("pruned")
	return nil
}

// ErrNothingPublished means the root has no live publication yet.
var ErrNothingPublished = errors.New("nothing is published yet")

// Current returns the name of the live publication.
func Current(root string) (string, error) {
	target, err := os.Readlink(filepath.Join(root, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNothingPublished
	}
	if err != nil {
		return "", fmt.Errorf("publish: reading %s: %w", filepath.Join(root, currentLink), err)
	}
	return filepath.Base(target), nil
}

// List returns the complete publications, oldest first.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, pubDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && seqOf(e.Name()) > 0 {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool { return seqOf(names[i]) < seqOf(names[j]) })
	return names, nil
}

// Rollback makes the publication before the live one live again (after
// verifying it) and returns its name. The rolled-back-from publication
// stays on disk.
func Rollback(root string, f Format) (string, error) {
	return rollback(root, f, Options{})
}

func rollback(root string, f Format, o Options) (string, error) {
	live, err := Current(root)
	if err != nil {
		return "", err
	}
	prev, err := Previous(root, live)
	if err != nil {
		return "", err
	}
	if prev == "" {
		return "", fmt.Errorf("publish: %s is the oldest live publication kept: there is nothing to roll back to", live)
	}
	if err := f.Verify(filepath.Join(root, pubDir, prev)); err != nil {
		return "", fmt.Errorf("publish: refusing to roll back to %s, it does not verify: %w", prev, err)
	}
	return prev, switchTo(root, prev, o)
}

// switchTo stamps publications/name with the time of the switch (see
// stampTree) and atomically points `current` at it.
func switchTo(root, name string, o Options) error {
	// A publication made before modes were set explicitly (or changed
	// since) is made world-readable before it is served again.
	if err := makePublic(filepath.Join(root, pubDir, name)); err != nil {
		return fmt.Errorf("publish: making %s world-readable: %w", name, err)
	}
	if err := stampTree(filepath.Join(root, pubDir, name), switchTime(root, o.now())); err != nil {
		return fmt.Errorf("publish: stamping %s: %w", name, err)
	}
	o.step("stamped")
	if err := repairHistory(root); err != nil {
		return err
	}
	tmp := filepath.Join(root, ".current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join(pubDir, name), tmp); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	o.step("symlink-created")
	if err := os.Rename(tmp, filepath.Join(root, currentLink)); err != nil {
		return fmt.Errorf("publish: switching %s to %s: %w", currentLink, name, err)
	}
	if err := syncDir(root); err != nil {
		return err
	}
	// After the switch: a kill in between leaves name live but not in the
	// history, and the live publication always counts as having gone live.
	if err := appendHistory(root, name); err != nil {
		return fmt.Errorf("publish: %s is live, but recording it in %s failed: %w", name, historyFile, err)
	}
	return nil
}

// appendHistory adds name to the history file (written whole, atomically).
func appendHistory(root, name string) error {
	b, err := os.ReadFile(filepath.Join(root, historyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b = append(b, name+"\n"...)
	tmp := filepath.Join(root, ".history.tmp")
	if err := os.WriteFile(tmp, b, FileMode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, FileMode); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(root, historyFile)); err != nil {
		return err
	}
	return syncDir(root)
}

// repairHistory writes into the history file every publication Live
// counts but the file lacks: the live one after a kill between the switch
// and its recording, or a root published before the history file existed.
func repairHistory(root string) error {
	live, err := Live(root)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(root, historyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publish: %w", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, n := range live {
		if !have[n] {
			if err := appendHistory(root, n); err != nil {
				return fmt.Errorf("publish: recording %s in %s: %w", n, historyFile, err)
			}
		}
	}
	return nil
}

// Live returns the publications that went live (the live one included),
// oldest first. A root published before the history file existed counts
// every publication up to the live one.
func Live(root string) ([]string, error) {
	names, err := List(root)
	if err != nil {
		return nil, err
	}
	cur, err := Current(root)
	if err != nil && !errors.Is(err, ErrNothingPublished) {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, historyFile))
	legacy := errors.Is(err, fs.ErrNotExist)
	if err != nil && !legacy {
		return nil, fmt.Errorf("publish: %w", err)
	}
	went := map[string]bool{cur: cur != ""}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			went[l] = true
		}
	}
	var out []string
	for _, n := range names {
		if went[n] || (legacy && cur != "" && seqOf(n) <= seqOf(cur)) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Served returns the publications users may have been served, oldest
// first: those that went live when the root keeps a history, else every
// complete publication (a root without a history cannot tell a staged one
// from one that went live, so every one counts).
func Served(root string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(root, historyFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return List(root)
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	return Live(root)
}

// Unpublished returns the complete publications that never went live
// (staged by a run that failed or was a snapshot), oldest first.
func Unpublished(root string) ([]string, error) {
	names, err := List(root)
	if err != nil {
		return nil, err
	}
	live, err := Live(root)
	if err != nil {
		return nil, err
	}
	went := map[string]bool{}
	for _, n := range live {
		went[n] = true
	}
	var out []string
	for _, n := range names {
		if !went[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// RemoveUnpublished removes the publications that never went live and
// returns their names.
func RemoveUnpublished(root string) ([]string, error) {
	names, err := Unpublished(root)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if err := Remove(root, n); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// Remove removes the publication name, which must not be live.
func Remove(root, name string) error {
	if cur, _ := Current(root); cur == name {
		return fmt.Errorf("publish: refusing to remove %s: it is live", name)
	}
	if seqOf(name) == 0 || filepath.Base(name) != name {
		return fmt.Errorf("publish: %q is not a publication name", name)
	}
	// Rename first (atomic): a kill while deleting leaves trash that the
	// next publish removes, never a half-deleted publication that looks
	// complete.
	trash := filepath.Join(root, pubDir, stagingPfx+"removed-"+name)
	if err := os.Rename(filepath.Join(root, pubDir, name), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("publish: removing %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("publish: removing %s: %w", name, err)
	}
	return nil
}

// Previous is the publication users had before name: the newest
// publication older than name that went live; "" when there is none.
func Previous(root, name string) (string, error) {
	live, err := Live(root)
	if err != nil {
		return "", err
	}
	prev := ""
	for _, n := range live {
		if seqOf(n) < seqOf(name) {
			prev = n
		}
	}
	return prev, nil
}

// Prune removes the oldest live publications beyond keep (at least 2),
// never the live one nor the one a rollback returns to, and returns their
// names. Each publication is a complete tree holding the by-hash files its
// clients need (the apt writer carries the previous generation's), so
// removing whole publications never breaks a kept one. Publications that
// never went live are not counted; RemoveUnpublished removes them.
func Prune(root string, keep int) ([]string, error) {
	if keep < 2 {
		return nil, fmt.Errorf("publish: keep %d publications: want at least 2 (the live one and a rollback target)", keep)
	}
	live, err := Current(root)
	if err != nil {
		return nil, err
	}
	back, err := Previous(root, live)
	if err != nil {
		return nil, err
	}
	names, err := Live(root)
	if err != nil {
		return nil, err
	}
	var removed []string
	for len(names) > keep {
		if n := names[0]; n != live && n != back {
			if err := Remove(root, n); err != nil {
				return removed, err
			}
			removed = append(removed, n)
		}
		names = names[1:]
	}
	return removed, nil
}

func prune(root string, keep int) error {
	_, err := Prune(root, keep)
	return err
}

func removeStaging(pubs string) error {
	entries, err := os.ReadDir(pubs)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingPfx) {
			if err := os.RemoveAll(filepath.Join(pubs, e.Name())); err != nil {
				return fmt.Errorf("publish: removing unfinished %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func seqOf(name string) int {
	n, err := strconv.Atoi(strings.SplitN(name, "-", 2)[0])
	if err != nil || n <= 0 || !strings.Contains(name, "-") {
		return 0
	}
	return n
}

// treeDigest hashes the tree's paths, modes and contents (names a publication).
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%v\x00", rel, d.Type())
		if d.Type().IsRegular() {
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
		return "", fmt.Errorf("publish: hashing the new publication: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// switchTime is the stamp of a switch at now: now, or when the live
// publication's stamp falls in the same second or later (two switches
// within one second, a clock stepped back), the second after it. HTTP
// dates have one-second resolution: a stamp in the live one's second
// would be answered "304 Not Modified" to clients holding the live one.
func switchTime(root string, now time.Time) time.Time {
	live, err := Current(root)
	if err != nil {
		return now
	}
	fi, err := os.Stat(filepath.Join(root, pubDir, live))
	if err != nil {
		return now
	}
	if next := fi.ModTime().Truncate(time.Second).Add(time.Second); now.Before(next) {
		return next
	}
	return now
}

// stampTree sets every file's mtime to t, the time it goes live. The files'
// bytes (and every date inside them) come from SOURCE_DATE_EPOCH and are
// reproducible; their mtimes are what a web server sends as Last-Modified
// and compares with If-Modified-Since. Were they the epoch in every
// publication (or an older publication's time after a rollback), apt and
// dnf would be told "304 Not Modified" and never see the switch.
func stampTree(dir string, t time.Time) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() || d.IsDir() {
			return os.Chtimes(p, t, t)
		}
		return nil
	})
}

// probe checks, before anything is written, that root is writable and
// can hold the `current` symlink, naming the cause otherwise.
func probe(root string) error {
	p := filepath.Join(root, fmt.Sprintf(".probe-%d", os.Getpid()))
	_ = os.Remove(p)
	if err := os.WriteFile(p, nil, FileMode); err != nil {
		return fmt.Errorf("publish: the publish root %s is not writable: %w (nothing was changed: make it writable, or publish elsewhere)", root, err)
	}
	os.Remove(p)
	if err := os.Symlink(pubDir, p); err != nil {
		return fmt.Errorf("publish: the publish root %s cannot hold symlinks: %w (nothing was changed: the live publication is a symlink switched atomically; publish on a filesystem with symlinks, e.g. ext4, xfs, btrfs or tmpfs)", root, err)
	}
	return os.Remove(p)
}

// Modes of everything under a publish root, whatever the umask: a web
// server running as an unprivileged user (nginx's www-data workers) must
// read every file and traverse every directory.
const (
	FileMode fs.FileMode = 0o644
	DirMode  fs.FileMode = 0o755
)

// PublicDir creates dir (and its missing parents) and sets its mode to
// DirMode, whatever the umask.
func PublicDir(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	return os.Chmod(dir, DirMode)
}

// makePublic sets every directory under dir (dir included) to DirMode and
// every regular file to FileMode.
func makePublic(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return chmodIf(p, d, DirMode)
		case d.Type().IsRegular():
			return chmodIf(p, d, FileMode)
		}
		return nil
	})
}

func chmodIf(p string, d fs.DirEntry, mode fs.FileMode) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	if fi.Mode().Perm() == mode && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == 0 {
		return nil
	}
	return os.Chmod(p, mode)
}

func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() || d.IsDir() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		}
		return nil
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
