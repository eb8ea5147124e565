package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Here is whether a step can run on this machine, and if not, why.
type Here struct {
	Step string
	Can  bool
	Why  string // "" when it can
	// OwnCommandsNeedNoGHC: the step cannot run only because a step before
	// it cannot, and its own commands run no GHC (configure merely probes
	// the bootstrap tools' versions).
	OwnCommandsNeedNoGHC bool
}

// Here tells, for every step in recipe order, whether it can run on this
// machine with the inputs in the cache: a step that needs a pinned file or
// package needs it verified in the cache (a pending pin never is), the
// source checkout needs every git source in the cache or the mirror, and
// a step can run only after the steps it comes after.
func (r *Recipe) Here() []Here {
	byName := map[string]Here{}
	var out []Here
	for _, s := range r.Steps {
		h := Here{Step: s.Name, Can: true}
		var why, noGit []string
		for _, in := range s.Inputs {
			kind, rest, _ := strings.Cut(in.Name, " ")
			name, _, _ := strings.Cut(rest, " ")
			switch kind {
			case "file":
				f, _ := r.Lock.File(name)
				switch {
				case f.Pending != "":
					why = append(why, "file "+name+" is pending (no sha256 pinned)")
				case !exists(r.Inputs.Files[name]):
					why = append(why, "file "+name+" is not in the cache (`go run mage.go sources` fetches it where it is reachable)")
				}
			case "deb":
				if !exists(r.Inputs.Debs[name]) {
					why = append(why, "Debian package "+name+" is not in the cache")
				}
			case "source":
				if !r.gitAvailable(name) {
					noGit = append(noGit, name)
				}
			}
		}
		if len(noGit) > 0 {
			why = append(why, fmt.Sprintf("%d git source(s) neither in the cache nor in the mirror (%s): `go run mage.go sources` fetches them, or set HALVM_MIRROR",
				len(noGit), strings.Join(noGit, ", ")))
		}
		own := len(why) == 0
		for _, d := range s.Deps {
			if dh, ok := byName[d]; ok && !dh.Can {
				why = append(why, "after "+d+", which cannot run here")
			}
		}
		if len(why) > 0 {
			h.Can, h.Why = false, strings.Join(why, "; ")
			h.OwnCommandsNeedNoGHC = own && !s.RunsGHC
		}
		byName[s.Name] = h
		out = append(out, h)
	}
	return out
}

func exists(p string) bool {
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// gitAvailable: the source's cache repository or the mirror's exists (the
// checkout verifies the commit).
func (r *Recipe) gitAvailable(name string) bool {
	if exists(filepath.Join(r.Config.FileCacheDir, "git", name+".git")) {
		return true
	}
	return r.Config.Mirror != "" && exists(filepath.Join(r.Config.Mirror, "git", name+".git"))
}

// StepRun is one step run by RunSteps.
type StepRun struct {
	Step     string
	Duration time.Duration
}

// RunSteps runs the named steps, in recipe order, each through its recipe
// step (its real commands, environment, checks and declared outputs), and
// stops at the first failure. It does not look at the step cache and does
// not run the steps they come after: the caller provides what those would
// have produced.
func (r *Recipe) RunSteps(ctx context.Context, names ...string) ([]StepRun, error) {
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := r.Step(n); !ok {
			return nil, fmt.Errorf("toolchain %s: no step %q in the recipe", r.Flavour.Name, n)
		}
		want[n] = true
	}
	l := r.Layout
	for _, d := range []string{l.Home(), l.Tmp(), l.Logs(r.Flavour.Name)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	keys, comps := r.Keys()
	cache := r.stepCache()
	var out []StepRun
	for _, s := range r.Steps {
		if !want[s.Name] {
			continue
		}
		start := time.Now()
		r.logf("toolchain %s: step %s: running", r.Flavour.Name, s.Name)
		if err := r.runStep(ctx, s, keys[s.Name], comps[s.Name], cache); err != nil {
			return out, fmt.Errorf("toolchain %s: step %s: %w", r.Flavour.Name, s.Name, err)
		}
		out = append(out, StepRun{Step: s.Name, Duration: time.Since(start)})
	}
	return out, nil
}

// FirstStepNeedingGHC is the first step in recipe order, other than those
// in done, that runs the bootstrap GHC.
func (r *Recipe) FirstStepNeedingGHC(done ...string) (Step, bool) {
	skip := map[string]bool{}
	for _, d := range done {
		skip[d] = true
	}
	for _, s := range r.Steps {
		if s.RunsGHC && !skip[s.Name] {
			return s, true
		}
	}
	return Step{}, false
}
