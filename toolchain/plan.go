package toolchain

import (
	"fmt"
	"io"
	"strings"
)

// PlanOptions shape the plan listing.
type PlanOptions struct {
	// Cache adds every step's cache status (hit, or miss and why).
	Cache bool
	// Here adds whether each step can run on this machine, and why not.
	Here bool
}

// WritePlan prints the recipe as a reviewer reads it: the paths, the
// complete environment, the inputs, then every step with its directory,
// commands, checks, declared outputs and (with Cache) its cache status.
func (r *Recipe) WritePlan(w io.Writer, o PlanOptions) error {
	b := &strings.Builder{}
	l := r.Layout
	fmt.Fprintf(b, "# toolchain plan: %s %s, flavour %s (%s)\n", r.Lock.Release.Name, r.Lock.Release.Version, r.Flavour.Name, r.Flavour.IntegerLibrary)
	fmt.Fprintf(b, "build dir:      %s (fixed: paths baked into the toolchain stay stable)\n", l.Root)
	fmt.Fprintf(b, "bootstrap ghc:  %s\n", l.BootstrapPrefix())
	fmt.Fprintf(b, "tool prefix:    %s\n", l.ToolPrefix())
	fmt.Fprintf(b, "source tree:    %s\n", r.SourceDir())
	fmt.Fprintf(b, "staging root:   %s (DESTDIR)\n", r.StageDir())
	fmt.Fprintf(b, "prefix:         %s\n", r.Config.Prefix)
	fmt.Fprintf(b, "halvmlibdir:    %s\n", r.HaLVMLibDir())
	fmt.Fprintf(b, "SOURCE_DATE_EPOCH: %d (%s)\n", r.Config.Epoch.Unix(), r.Config.Epoch.Format("2006-01-02T15:04:05Z"))
	fmt.Fprintf(b, "\nenvironment of every command (nothing else is inherited), umask 022, serial make:\n")
	for _, e := range r.Env {
		fmt.Fprintf(b, "  %s\n", e)
	}
	fmt.Fprintf(b, "\ninputs (fetched and verified before the first step):\n")
	for _, s := range r.Lock.Sources {
		fmt.Fprintf(b, "  source %-16s %s at %s from %s\n", s.Name, s.Path, s.Commit, s.URL)
	}
	for _, f := range r.Lock.Files {
		sum := "sha256 " + f.SHA256
		if f.Pending == "" && !f.SizeKnown() {
			sum += " (size recorded at the first verified fetch)"
		}
		if f.Pending != "" {
			sum = "PENDING (no sha256 pinned yet: the lock says how to record it)"
		}
		fmt.Fprintf(b, "  file   %s %s (%s) %s from %s\n", f.Name, f.Version, f.Role, sum, f.URL)
	}
	for _, d := range r.Lock.Debs {
		if d.Role == "tool" {
			fmt.Fprintf(b, "  deb    %s %s sha256 %s\n", d.Name, d.Version, d.SHA256)
		}
	}
	var statuses map[string]Status
	if o.Cache {
		statuses = map[string]Status{}
		for _, s := range r.Statuses() {
			statuses[s.Step] = s
		}
	}
	var here map[string]Here
	if o.Here {
		here = map[string]Here{}
		n := 0
		for _, h := range r.Here() {
			here[h.Step] = h
			if h.Can {
				n++
			}
		}
		fmt.Fprintf(b, "\non this machine: %d of %d steps can run (each step says why not)\n", n, len(r.Steps))
	}
	for i, s := range r.Steps {
		fmt.Fprintf(b, "\n[%d/%d] %s: %s\n", i+1, len(r.Steps), s.Name, s.Doc)
		if h, ok := here[s.Name]; ok {
			switch {
			case h.Can:
				fmt.Fprintf(b, "  here:    can run\n")
			case h.OwnCommandsNeedNoGHC:
				fmt.Fprintf(b, "  here:    CANNOT run: %s (its own commands need no GHC: they run here once the steps before have)\n", h.Why)
			default:
				fmt.Fprintf(b, "  here:    CANNOT run: %s\n", h.Why)
			}
		}
		root := s.Root
		if s.Fresh {
			root += " (emptied first)"
		}
		fmt.Fprintf(b, "  outputs below: %s\n", root)
		if len(s.Deps) > 0 {
			fmt.Fprintf(b, "  after:   %s\n", strings.Join(s.Deps, ", "))
		}
		for _, in := range s.Inputs {
			v := in.Value
			if v == "" {
				v = "(any)"
			}
			fmt.Fprintf(b, "  input:   %s = %s\n", in.Name, v)
		}
		for _, a := range s.Pre {
			fmt.Fprintf(b, "  go:      %s\n", a.Doc)
		}
		for _, c := range s.Commands {
			fmt.Fprintf(b, "  $ cd %s && %s\n", c.Dir, shellQuote(c.Args))
			if c.Expect != "" {
				fmt.Fprintf(b, "      stdout must match /%s/\n", c.Expect)
			}
		}
		for _, a := range s.Post {
			fmt.Fprintf(b, "  go:      %s\n", a.Doc)
		}
		for _, out := range s.Outputs {
			fmt.Fprintf(b, "  must produce: %s\n", out)
		}
		if st, ok := statuses[s.Name]; ok {
			switch {
			case s.Recreate:
				fmt.Fprintf(b, "  cache:   %s\n", st.Reason)
			case st.Hit && st.Shared:
				fmt.Fprintf(b, "  cache:   hit %s (in the shared cache registry)\n", st.Key[:16])
			case st.Hit:
				fmt.Fprintf(b, "  cache:   hit %s\n", st.Key[:16])
			default:
				fmt.Fprintf(b, "  cache:   MISS %s: %s\n", st.Key[:16], st.Reason)
			}
		}
	}
	fmt.Fprintf(b, "\nthen: strip ELF executables and shared objects in %s (strip --strip-unneeded; objects and archives untouched),\n", r.StageDir())
	fmt.Fprintf(b, "      clamp every mtime to SOURCE_DATE_EPOCH, set modes to 0755 (dirs, executables) or 0644,\n")
	fmt.Fprintf(b, "      fail listing every file that still contains %s, and write the tree manifest (mode, size, sha256, path)\n", l.Root)
	_, err := io.WriteString(w, b.String())
	return err
}
