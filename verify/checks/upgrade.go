package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/verify"
)

// CheckAptUpgrade is the name of the apt upgrade check of a flavour.
func CheckAptUpgrade(flavour string) string { return "apt-upgrade-" + flavour }

// PreviousPublication is the release users have before dir, a publication
// directory (<root>/publications/<name>, as publish keeps them side by
// side): the live publication while dir is only staged, and once dir is
// live, the live publication before it; "" when there is none (a first
// release). A publication that never went live (staged by a run that failed
// or was a snapshot) is never the previous release (publish.Previous).
func PreviousPublication(dir string) string {
	root := filepath.Dir(filepath.Dir(dir))
	if cur, err := publish.Current(root); err == nil && cur != filepath.Base(dir) {
		return filepath.Join(root, "publications", cur)
	}
	prev, err := publish.Previous(root, filepath.Base(dir))
	if err != nil || prev == "" {
		return ""
	}
	return filepath.Join(root, "publications", prev)
}

// AptPublication is the apt publication the ledger records.
func AptPublication(env *verify.Env) (string, error) {
	return repoDir(env, "", pipeline.KindAptRepo)
}

func upgradeChecks(c Config) []verify.Check {
	var out []verify.Check
	for _, fl := range c.Flavours {
		fl := fl
		needs := []verify.Prereq{verify.NeedRoot(), verify.NeedCommand("mmdebstrap", "mmdebstrap"), verify.NeedCommand("dpkg", "dpkg-deb"), needNginx}
		if c.PreviousAptDir == "" {
			needs = append(needs, verify.Prereq{What: "an earlier release", Remedy: "none needed: a first release has nothing to upgrade from",
				Check: func(context.Context) error {
					return errors.New("no earlier apt publication: this is the first release, nothing to upgrade from")
				}})
		}
		out = append(out, verify.Check{
			Name: CheckAptUpgrade(fl), Family: verify.Install, Required: c.PreviousAptDir != "",
			Doc: "in a clean Debian 12 rootfs set up as the README says, apt-get install " + fl + " from the previous release's publication, " +
				"then apt-get upgrade from this one: the release's version is installed and runs, and purge leaves no file behind",
			Needs:   needs,
			After:   []string{CheckAptInstall(fl)},
			Timeout: 10 * time.Minute,
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.AptDir, pipeline.KindAptRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return aptUpgrade(ctx, env, c.PreviousAptDir, dir, fl)
			},
		})
	}
	return out
}

// releasedVersion is the version of the flavour's .deb in the ledger.
func releasedVersion(ctx context.Context, env *verify.Env, flavour string) (string, error) {
	as, err := env.Artifacts(pipeline.KindDeb, flavour)
	if err != nil {
		return "", err
	}
	for _, a := range as {
		if a.Name != flavour {
			continue
		}
		out, err := run.Output(ctx, run.Cmd{Args: []string{"dpkg-deb", "-f", env.Path(a.Path), "Version"}, Env: run.BaseEnv()})
		if err != nil {
			return "", fmt.Errorf("reading the version of %s: %w", a.Path, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	return "", fmt.Errorf("the ledger records no .deb %s", flavour)
}

func aptUpgrade(ctx context.Context, env *verify.Env, prev, dir, flavour string) (ev verify.Evidence, err error) {
	want, err := releasedVersion(ctx, env, flavour)
	if err != nil {
		return ev, err
	}
	r, err := newInstalledRoot(ctx, env, prev, "upgrade-root")
	if err != nil {
		return ev, fmt.Errorf("setting up the previous release %s: %w", filepath.Base(prev), err)
	}
	defer func() {
		if cerr := r.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if _, err := r.install(flavour); err != nil {
		return ev, fmt.Errorf("installing the previous release %s: %w", filepath.Base(prev), err)
	}
	version := func() string {
		v, _ := r.in("dpkg-query", "-W", "-f", "${Version}", flavour)
		return strings.TrimSpace(v)
	}
	old := version()
	ev.Checked++
	// The user's apt now finds this release where the previous one was:
	// the same halvm.sources, pointing at this publication.
	url, stop, err := serveDir(ctx, env, dir)
	if err != nil {
		return ev, err
	}
	defer stop()
	src := filepath.Join(r.root, "etc/apt/sources.list.d/halvm.sources")
	b, err := os.ReadFile(src)
	if err != nil {
		return ev, err
	}
	if err := writeReadable(src, urisLine.ReplaceAll(b, []byte("URIs: "+url))); err != nil {
		return ev, err
	}
	if out, err := r.in("apt-get", "update", "-o", "APT::Update::Error-Mode=any"); err != nil {
		return ev, fmt.Errorf("apt-get update against this release: %w\n%s", err, out)
	}
	if out, err := r.in("apt-get", "upgrade", "-y"); err != nil {
		return ev, aptFailure("apt-get upgrade -y (from "+old+")", out, err)
	}
	if got := version(); got != want {
		return ev, fmt.Errorf("after apt-get upgrade %s is at %q, this release is %q (the previous one installed %q)", flavour, got, want, old)
	}
	if out, err := r.in("halvm-ghc", "--version"); err != nil {
		return ev, fmt.Errorf("halvm-ghc --version after the upgrade: %w\n%s", err, out)
	}
	ev.Checked++
	if err := r.purge(flavour, fmt.Sprintf("upgrading %s from %s to %s and purging it", flavour, old, want), &ev); err != nil {
		return ev, err
	}
	ev.Checked++
	ev.Summary = fmt.Sprintf("%s %s from the previous publication %s, apt-get upgrade to %s from this one, halvm-ghc runs; purge left nothing",
		flavour, old, filepath.Base(prev), want)
	return ev, nil
}
