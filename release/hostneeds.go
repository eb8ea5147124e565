package release

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/hostreq"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// HostNeeds is everything a run needs from the host, computed before any
// stage runs: the table's packages of every stage that is not skipped,
// root for the image's root filesystems, and, when verify runs, the
// programs, root and Docker daemon of every check this run will execute
// (a check that will not run — its stage skipped, no earlier release to
// upgrade from — adds nothing).
func HostNeeds(flavours []string, skipped map[string]string) hostreq.Set {
	var s hostreq.Set
	for _, st := range Stages() {
		if _, skip := skipped[st.Name]; !skip && st.Name != "verify" {
			s.AddUsers(st.Name)
		}
	}
	if _, skip := skipped["image"]; !skip {
		s.NeedRoot("image (mmdebstrap --mode=root)")
	}
	if _, skip := skipped["verify"]; skip {
		return s
	}
	if len(flavours) == 0 {
		flavours = []string{"halvm"} // every flavour's checks need the same
	}
	cfg := checks.Config{Flavours: flavours, Skipped: skipped,
		// What the verify stage will find is unknown yet: count the
		// upgrade checks in (they need what the install checks need).
		PreviousAptDir: "(the live publication)",
		Rebuild:        func(context.Context, string, checks.Variation, checks.Publications) error { return nil },
	}
	suite := checks.Suite(cfg)
	// The table's packages of the verify stage that no check names (the
	// rebuild's unshare and cp, the Xen machine's apt-get and xz); those a
	// check names are needed only when that check runs.
	byCheck := map[string]bool{}
	for _, c := range suite {
		for _, pr := range c.Needs {
			for _, cmd := range pr.Commands {
				if p, ok := hostreq.ProviderOf(cmd); ok {
					byCheck[p.Name] = true
				}
			}
			if pr.Docker {
				byCheck["docker.io"] = true
			}
		}
	}
	for _, p := range hostreq.NeededBy("verify") {
		if !byCheck[p.Name] {
			for _, x := range append(append([]string(nil), p.Commands...), p.Files...) {
				s.AddCommand(x, "verify")
			}
		}
	}
	for _, c := range suite {
		if !willRun(c.Needs) {
			continue
		}
		by := "verify: " + c.Name
		for _, pr := range c.Needs {
			for _, cmd := range pr.Commands {
				s.AddCommand(cmd, by)
			}
			if pr.Root {
				s.NeedRoot(by)
			}
			if pr.Docker {
				s.NeedDocker(by)
			}
		}
		if c.Name == checks.CheckRebuild { // the rebuild runs the build stages again
			s.AddUsers("sources", "toolchain", "packages", "image")
		}
	}
	return s
}

// willRun evaluates a check's prerequisites that are not about the host
// (a stage of this run, an earlier release): cheap and known up front.
func willRun(needs []verify.Prereq) bool {
	for _, pr := range needs {
		if len(pr.Commands) > 0 || pr.Root || pr.Docker || pr.Check == nil {
			continue
		}
		if pr.Check(context.Background()) != nil {
			return false
		}
	}
	return true
}

// DemoNeeds is HostNeeds of the demo: the whole run plus generating the
// sample upstream.
func DemoNeeds(skipped map[string]string) hostreq.Set {
	s := HostNeeds(nil, skipped)
	s.AddUsers(hostreq.Demo)
	return s
}

// DemoSetup checks, before any work, that the host has everything the
// whole demo needs; with install (root, a Debian-family system) it
// installs what is missing in one apt-get install (apt's output in
// <out>/logs/setup-apt.log), starts the Docker daemon, and checks again.
// Otherwise it stops with the one command that installs everything.
func DemoSetup(ctx context.Context, o DemoOptions) error {
	s := DemoNeeds(o.Skip)
	err := hostreq.Ensure(ctx, s, hostreq.EnsureOptions{Install: o.Install,
		LogPath: filepath.Join(o.OutDir, "logs", "setup-apt.log"), Progress: o.Log})
	if err != nil {
		return fmt.Errorf("demo preflight: %w", err)
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "demo: preflight: the host has every prerequisite of the whole run (%d Debian packages, root, a Docker daemon)\n", len(s.Packages()))
	return nil
}
