// Package repos owns the release's two package repositories as users see
// them: the signed apt repository (package debian) under <root>/apt and the
// signed dnf repository (package rpm) under <root>/dnf, each published
// through package publish (staged, verified, switched atomically, rolled
// back on demand), and served together over HTTP.
package repos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/rpm"
)

// Config of the repositories.
type Config struct {
	Root string   // publish root: <Root>/apt and <Root>/dnf
	URL  string   // where <Root> is served: <URL>/apt and <URL>/dnf
	Key  *pgp.Key // the archive key (signs Release and repomd.xml)
	// PublicKey verifies publications (armored or binary); nil means the
	// public half of Key. Rollback and serving need only this.
	PublicKey []byte
	Epoch     time.Time // SOURCE_DATE_EPOCH
	Version   string    // the HaLVM version (apt Release Version)
	Keep      int       // publications kept per repository (0: publish's default)
	// RequireReleaseKey refuses a development key (a real release).
	RequireReleaseKey bool
	// AfterStep, when set, is called after every publisher step with the
	// repository ("apt", "dnf") and the step (see publish.Steps).
	AfterStep func(repo, step string)
}

func (c Config) options(repo string) publish.Options {
	o := publish.Options{Keep: c.Keep}
	if c.AfterStep != nil {
		o.AfterStep = func(step string) { c.AfterStep(repo, step) }
	}
	return o
}

func (c Config) check() error {
	var errs []string
	if c.Root == "" {
		errs = append(errs, "no repository root")
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		errs = append(errs, fmt.Sprintf("repository URL %q: want http:// or https://", c.URL))
	}
	if c.Key == nil {
		errs = append(errs, "no archive signing key: repositories are only published signed")
	}
	if c.Epoch.IsZero() {
		errs = append(errs, "no SOURCE_DATE_EPOCH")
	}
	if len(errs) > 0 {
		return fmt.Errorf("repositories: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c Config) pub() []byte {
	if c.PublicKey != nil || c.Key == nil {
		return c.PublicKey
	}
	// A rebuild's key (pgp.PublishedSignatures) signs what differs from
	// the release with a throwaway key: its publications verify, and differ.
	return c.Key.VerificationKeys()
}

// AptDir and DnfDir are the publish roots of the two repositories.
func (c Config) AptDir() string { return filepath.Join(c.Root, "apt") }
func (c Config) DnfDir() string { return filepath.Join(c.Root, "dnf") }

// AptRepo describes the apt repository (the URL users put in halvm.sources).
func (c Config) AptRepo() debian.Repo {
	return debian.Repo{URL: strings.TrimRight(c.URL, "/") + "/apt", Date: c.Epoch, Version: c.Version}
}

// DnfOptions describes the dnf repository (the baseurl of halvm.repo).
func (c Config) DnfOptions() rpm.Options {
	return rpm.Options{BaseURL: strings.TrimRight(c.URL, "/") + "/dnf", Epoch: c.Epoch}
}

// Apt is the apt repository as a publish.Format.
type Apt struct{ Config }

func (a Apt) Write(_ context.Context, dst, live string, debs []string) error {
	repo := a.AptRepo()
	repo.Date = nextDate(a.Epoch, dst, AptDate)
	_, err := debian.Write(dst, debian.Input{Repo: repo, Key: a.Key, Debs: debs, Previous: live, RequireReleaseKey: a.RequireReleaseKey})
	return err
}

func (a Apt) Verify(dir string) error {
	_, err := debian.Verify(dir, a.pub())
	return err
}

// Dnf is the dnf repository as a publish.Format.
type Dnf struct{ Config }

func (d Dnf) Write(_ context.Context, dst, live string, rpms []string) error {
	if live != "" {
		old, err := rpmFiles(live)
		if err != nil {
			return fmt.Errorf("listing the live dnf repository's packages: %w", err)
		}
		rpms = append(old, rpms...)
	}
	if d.RequireReleaseKey && d.Key.IsDevelopment() {
		return fmt.Errorf("key %s is a development key: use the release key", d.Key.Fingerprint())
	}
	o := d.DnfOptions()
	o.Epoch = nextDate(d.Epoch, dst, DnfDate)
	return rpm.Write(dst, rpms, d.Key, o)
}

func (d Dnf) Verify(dir string) error { return rpm.Verify(dir, d.pub()) }

func rpmFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "Packages"), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.HasSuffix(p, ".rpm") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Staged names the prepared, not yet live, publications.
type Staged struct{ Apt, Dnf string }

// Prepare writes and verifies new publications of both repositories (the
// live packages plus debs and rpms) without making them live.
func Prepare(ctx context.Context, c Config, debs, rpms []string) (Staged, error) {
	if err := c.check(); err != nil {
		return Staged{}, err
	}
	if err := publish.PublicDir(c.Root); err != nil {
		return Staged{}, fmt.Errorf("repositories: the publish root: %w", err)
	}
	var s Staged
	var err error
	if s.Apt, err = publish.Prepare(ctx, c.AptDir(), Apt{c}, debs, c.options("apt")); err != nil {
		return Staged{}, fmt.Errorf("apt repository: %w", err)
	}
	if s.Dnf, err = publish.Prepare(ctx, c.DnfDir(), Dnf{c}, rpms, c.options("dnf")); err != nil {
		// Nothing half-staged stays behind: the apt publication goes too.
		if rerr := publish.Remove(c.AptDir(), s.Apt); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Staged{}, fmt.Errorf("dnf repository: %w", err)
	}
	return s, nil
}

// StagedDirs are the directories of staged publications (for verification
// before they go live).
func (c Config) StagedDirs(s Staged) (apt, dnf string) {
	return filepath.Join(c.AptDir(), "publications", s.Apt), filepath.Join(c.DnfDir(), "publications", s.Dnf)
}

// StagedArtifacts are the ledger's records of staged publications, with
// paths relative to the publish root: a verification resolves them against
// the root it is given, never against the directory the release ran in.
func (c Config) StagedArtifacts(s Staged) ([]pipeline.Artifact, error) {
	apt, dnf := c.StagedDirs(s)
	var out []pipeline.Artifact
	for _, p := range []struct {
		kind      pipeline.Kind
		name, dir string
		pub       string
	}{{pipeline.KindAptRepo, "apt", apt, s.Apt}, {pipeline.KindDnfRepo, "dnf", dnf, s.Dnf}} {
		rel, err := filepath.Rel(c.Root, p.dir)
		if err != nil {
			return nil, fmt.Errorf("recording the %s publication: %w", p.name, err)
		}
		out = append(out, pipeline.Artifact{Kind: p.kind, Name: p.name, Path: filepath.ToSlash(rel), Commit: p.pub})
	}
	return out, nil
}

// Activate makes both staged publications live (apt first, then dnf; each
// switch is atomic); one already live stays as it is.
func Activate(c Config, s Staged) error {
	if err := c.check(); err != nil {
		return err
	}
	// A publication already live (a resumed publish whose apt switch
	// happened before it failed) is left as it is.
	if cur, _ := publish.Current(c.AptDir()); cur != s.Apt {
		if err := publish.Activate(c.AptDir(), Apt{c}, s.Apt, c.options("apt")); err != nil {
			return fmt.Errorf("apt repository: %w", err)
		}
	}
	if cur, _ := publish.Current(c.DnfDir()); cur == s.Dnf {
		return nil
	}
	if err := publish.Activate(c.DnfDir(), Dnf{c}, s.Dnf, c.options("dnf")); err != nil {
		return fmt.Errorf("dnf repository: %w (apt is already live with %s: run `go run mage.go repo:rollback` to return both)", err, s.Apt)
	}
	return nil
}

// Rollback returns both repositories to their previous publications
// (verified with c's public key first).
//
// With the archive key (c.Key), the previous publication's packages are
// published again as a new publication: its signed date is the newest,
// so apt, which keeps the lists it has when a Release is older than them
// (its replay protection), does return to them, and verify sees current
// as the newest. With only the public key, `current` is switched back to
// the previous publication as it is: clients that already read the newer
// one keep it, and verify reports current as older than a publication
// beside it.
func Rollback(c Config) (Staged, error) {
	if c.Key != nil {
		return republishPrevious(c)
	}
	var s Staged
	if c.pub() == nil {
		return s, fmt.Errorf("repositories: rollback verifies the publication it returns to: give the archive public key")
	}
	var err error
	if s.Apt, err = publish.Rollback(c.AptDir(), Apt{c}); err != nil {
		return s, fmt.Errorf("apt repository: %w", err)
	}
	if s.Dnf, err = publish.Rollback(c.DnfDir(), Dnf{c}); err != nil {
		return s, fmt.Errorf("dnf repository: %w", err)
	}
	return s, nil
}

// asOf is a format whose new publications extend a given publication
// instead of the live one.
type asOf struct {
	publish.Format
	base string
}

func (a asOf) Write(ctx context.Context, dst, _ string, pkgs []string) error {
	return a.Format.Write(ctx, dst, a.base, pkgs)
}

// republishPrevious publishes, in each repository, the packages of the
// publication before the live one as a new, newer-dated publication and
// makes it live.
func republishPrevious(c Config) (Staged, error) {
	if err := c.check(); err != nil {
		return Staged{}, err
	}
	var s Staged
	for _, r := range []struct {
		name string
		root string
		f    publish.Format
		out  *string
	}{{"apt", c.AptDir(), Apt{c}, &s.Apt}, {"dnf", c.DnfDir(), Dnf{c}, &s.Dnf}} {
		live, err := publish.Current(r.root)
		if err != nil {
			return s, fmt.Errorf("%s repository: %w", r.name, err)
		}
		// The publication before the live one among those that went
		// live: a staged one that never did is no release to return to.
		prev, err := publish.Previous(r.root, live)
		if err != nil {
			return s, fmt.Errorf("%s repository: %w", r.name, err)
		}
		if prev == "" {
			return s, fmt.Errorf("%s repository: %s is the oldest publication kept: there is nothing to roll back to", r.name, live)
		}
		base := filepath.Join(r.root, "publications", prev)
		if err := r.f.Verify(base); err != nil {
			return s, fmt.Errorf("%s repository: refusing to roll back to %s, it does not verify: %w", r.name, prev, err)
		}
		f := asOf{Format: r.f, base: base}
		name, err := publish.Publish(context.Background(), r.root, f, nil, c.options(r.name))
		if err != nil {
			return s, fmt.Errorf("%s repository: republishing %s: %w", r.name, prev, err)
		}
		*r.out = name
	}
	return s, nil
}

// Handler serves the live apt repository under /apt/, the live dnf
// repository under /dnf/ and the release files under /files/.
func Handler(root string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/apt/", http.StripPrefix("/apt", publish.Handler(filepath.Join(root, "apt"))))
	mux.Handle("/dnf/", http.StripPrefix("/dnf", publish.Handler(filepath.Join(root, "dnf"))))
	mux.Handle("/files/", http.StripPrefix("/files", publish.Handler(filepath.Join(root, "files"))))
	return mux
}

// Serve starts serving the repositories under root on addr (127.0.0.1:0
// picks a port).
func Serve(root, addr string) (*publish.Server, error) { return publish.Serve(Handler(root), addr) }

// Exists reports whether anything is published under root.
func Exists(root string) bool {
	_, err := os.Stat(filepath.Join(root, "apt", "current"))
	return err == nil
}

// roots are the publish roots of the apt, dnf and release-files
// publications, by name.
func (c Config) roots() [][2]string {
	return [][2]string{{"apt", c.AptDir()}, {"dnf", c.DnfDir()}, {"files", c.FilesDir()}}
}

// RemoveUnpublished removes every publication that never went live (left
// staged by a run that failed or was a snapshot) and returns them as
// "apt/<name>" (the release does this at the start of every run).
func RemoveUnpublished(c Config) ([]string, error) {
	return RemoveUnpublishedExcept(c, Staged{})
}

// RemoveUnpublishedExcept is RemoveUnpublished keeping the staged
// publications keep (those a run that failed at publish verified, for a
// resumed run to publish).
func RemoveUnpublishedExcept(c Config, keep Staged) ([]string, error) {
	var out []string
	for _, r := range c.roots() {
		names, err := publish.Unpublished(r[1])
		if err != nil {
			return out, fmt.Errorf("%s repository: %w", r[0], err)
		}
		for _, n := range names {
			if (r[0] == "apt" && n == keep.Apt) || (r[0] == "dnf" && n == keep.Dnf) {
				continue
			}
			if err := publish.Remove(r[1], n); err != nil {
				return out, fmt.Errorf("%s repository: %w", r[0], err)
			}
			out = append(out, r[0]+"/"+n)
		}
	}
	return out, nil
}

// Discard removes staged publications that are not going live (the run
// that staged them failed). A live one is never removed.
func Discard(c Config, s Staged) error {
	var errs []error
	if s.Apt != "" {
		if err := publish.Remove(c.AptDir(), s.Apt); err != nil {
			errs = append(errs, fmt.Errorf("apt repository: %w", err))
		}
	}
	if s.Dnf != "" {
		if err := publish.Remove(c.DnfDir(), s.Dnf); err != nil {
			errs = append(errs, fmt.Errorf("dnf repository: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Prune keeps the last keep live publications of each repository (and of
// the release files), never the live one nor the one a rollback returns
// to, removes publications that never went live, and returns what it
// removed as "apt/<name>".
func Prune(c Config, keep int) ([]string, error) {
	out, err := RemoveUnpublished(c)
	if err != nil {
		return out, err
	}
	for _, r := range c.roots() {
		if _, err := publish.Current(r[1]); errors.Is(err, publish.ErrNothingPublished) {
			continue
		}
		names, err := publish.Prune(r[1], keep)
		for _, n := range names {
			out = append(out, r[0]+"/"+n)
		}
		if err != nil {
			return out, fmt.Errorf("%s repository: %w", r[0], err)
		}
	}
	return out, nil
}

// Newest returns the newest staged (never live) publications of both
// repositories: a snapshot's, to look at.
func Newest(c Config) (Staged, error) {
	var s Staged
	for _, r := range []struct {
		dir string
		to  *string
	}{{c.AptDir(), &s.Apt}, {c.DnfDir(), &s.Dnf}} {
		names, err := publish.Unpublished(r.dir)
		if err != nil {
			return s, err
		}
		if len(names) == 0 {
			return s, fmt.Errorf("no staged publication under %s: stage one with a run (a snapshot stages and stops)", r.dir)
		}
		*r.to = names[len(names)-1]
	}
	return s, nil
}

// StagedHandler serves the staged publications s under /apt/ and /dnf/,
// as Handler serves the live ones.
func StagedHandler(c Config, s Staged) http.Handler {
	apt, dnf := c.StagedDirs(s)
	mux := http.NewServeMux()
	mux.Handle("/apt/", http.StripPrefix("/apt", http.FileServer(http.Dir(apt))))
	mux.Handle("/dnf/", http.StripPrefix("/dnf", http.FileServer(http.Dir(dnf))))
	return mux
}
