package toolchain

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/halvm/halvm-release/pins"
)

// Command is one program a step runs, in Dir, with the recipe's
// environment and umask 022. When Expect is set, the command's standard
// output must match it (version checks).
type Command struct {
	Args   []string
	Dir    string
	Expect string
}

// Action is a step's work done in Go (checks, mtime clamping); Doc says what
// it does in the plan.
type Action struct {
	Doc string
	Run func(ctx context.Context) error
}

// Input is a declared input of a step: a name and the value that pins it
// (a commit, a sha256, a flag list).
type Input struct{ Name, Value string }

// Step is one unit of the recipe. Its outputs are the changes it makes
// below Root (captured as a snapshot in the step cache); Outputs are the
// paths it must have produced.
type Step struct {
	Name string
	Doc  string
	Root string
	// Fresh: Root is emptied before the step runs (or is restored).
	Fresh bool
	// Recreate: the step is cheap and deterministic, so it is not cached
	// but re-run whenever a later step has to run.
	Recreate bool
	// RunsGHC: the step runs the bootstrap GHC (or installs it), beyond
	// configure's version probes; it cannot run without the real GHC 8.0.2.
	RunsGHC  bool
	Pre      []Action // run before Commands
	Commands []Command
	Post     []Action // run after Commands
	Inputs   []Input
	Deps     []string
	Outputs  []string
}

// Recipe is the ordered list of steps of one flavour's build.
type Recipe struct {
	Config  Config
	Lock    *pins.Lock
	Flavour pins.Flavour
	Layout  Layout
	Host    Host
	Env     []string
	Inputs  InputPaths
	Steps   []Step
	// fetchLate is set by Build when it skipped the fetch because every
	// step was in a cache: Run calls it if a shared entry is discarded.
	fetchLate func(context.Context) error
}

// Paths of the recipe that other stages need.
func (r *Recipe) SourceDir() string   { return r.Layout.Source(r.Flavour.Name) }
func (r *Recipe) StageDir() string    { return r.Layout.Stage(r.Flavour.Name) }
func (r *Recipe) HaLVMLibDir() string { return HaLVMLibDir(r.Config.LibDir, r.Lock.Release.Version) }

// Step returns the named step.
func (r *Recipe) Step(name string) (Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// sourceTools are tool files pinned as Hackage source, built with the
// bootstrap compiler through Cabal's Setup.hs; other tool files are binary
// tarballs whose executable is installed as is.
var sourceTools = map[string]bool{"happy": true}

// toolChecks are the version checks HaLVM's configure makes, run right
// after the tool prefix is built so a wrong tool fails early.
var toolChecks = []Command{
	{Args: []string{"alex", "--version"}, Expect: `Alex version 3\.`},
	{Args: []string{"happy", "--version"}, Expect: `Happy Version 1\.19\.`},
	{Args: []string{"cabal", "--version"}, Expect: `cabal-install version 1\.2[4-9]\.`},
	{Args: []string{"HsColour", "--version"}, Expect: `HsColour 1\.24`},
}

// NewRecipe lays out the steps of one flavour's build. It is pure: it runs
// nothing and fetches nothing, so the plan can be shown anywhere.
func NewRecipe(c Config, host Host) (*Recipe, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	fl, _ := c.Lock.Flavour(c.Flavour)
	r := &Recipe{Config: c, Lock: c.Lock, Flavour: fl, Layout: Layout{Root: c.BuildDir}, Host: host}
	r.Env = r.buildEnv()
	r.Inputs, err = inputPaths(c)
	if err != nil {
		return nil, err
	}
	add := func(s Step) { r.Steps = append(r.Steps, s) }

	l := r.Layout
	src := r.SourceDir()
	stage := r.StageDir()
	hl := r.HaLVMLibDir()
	ghc := filepath.Join(src, "halvm-ghc")
	gmp := fl.IntegerLibrary == "integer-gmp"

	// 1. The bootstrap compiler, in its private prefix.
	boot, err := r.bootstrapFile()
	if err != nil {
		return nil, err
	}
	unpack := filepath.Join(l.Bootstrap(), "unpack")
	bindistDir := filepath.Join(unpack, "ghc-"+boot.Version)
	add(Step{
		Name: "bootstrap-ghc", Root: l.Bootstrap(), Fresh: true, RunsGHC: true,
		Doc:    "unpack the pinned GHC " + boot.Version + " bindist and install it into a private prefix; check its version and its global terminfo",
		Inputs: []Input{{"file " + boot.Name, boot.SHA256}},
		Commands: []Command{
			{Args: []string{"mkdir", "-p", unpack}, Dir: l.Bootstrap()},
			{Args: []string{"tar", "--no-same-owner", "-xf", r.Inputs.Files[boot.Name], "-C", unpack}, Dir: l.Bootstrap()},
			{Args: []string{"./configure", "--prefix=" + l.BootstrapPrefix()}, Dir: bindistDir},
			{Args: []string{"make", "install"}, Dir: bindistDir},
			{Args: []string{"rm", "-rf", unpack}, Dir: l.Bootstrap()},
			{Args: []string{filepath.Join(l.BootstrapPrefix(), "bin", "ghc"), "--version"}, Dir: l.Bootstrap(), Expect: `version ` + regexp.QuoteMeta(boot.Version) + `\b`},
			{Args: []string{filepath.Join(l.BootstrapPrefix(), "bin", "ghc-pkg"), "list", "--global", "--simple-output", "terminfo"}, Dir: l.Bootstrap(), Expect: `\bterminfo-[0-9]`},
		},
		Outputs: []string{filepath.Join(l.BootstrapPrefix(), "bin", "ghc"), filepath.Join(l.BootstrapPrefix(), "bin", "ghc-pkg")},
	})

	// 2. The tool prefix: alex and HsColour from Debian packages, happy
	// built from source with the bootstrap compiler, cabal-install binary.
	tools := Step{
		Name: "tools", Root: l.Tools(), Fresh: true, Deps: []string{"bootstrap-ghc"}, RunsGHC: true,
		Doc: "install alex, happy, cabal-install and HsColour from their pins into their own prefix " + l.ToolPrefix() +
			" (upstream's make install copies dirname(dirname(alex))/{share,lib})",
	}
	build := filepath.Join(l.Tools(), "build")
	tools.Commands = append(tools.Commands, Command{Args: []string{"mkdir", "-p", build, filepath.Join(l.ToolPrefix(), "bin")}, Dir: l.Tools()})
	for _, d := range r.Lock.DebsWithRole(pins.RoleTool) {
		tools.Inputs = append(tools.Inputs, Input{"deb " + d.Name + " " + d.Version, d.SHA256})
		tools.Commands = append(tools.Commands, Command{Args: []string{"dpkg-deb", "-x", r.Inputs.Debs[d.Name], l.Tools()}, Dir: l.Tools()})
	}
	for _, f := range r.Lock.Files {
		if f.Role != pins.RoleTool {
			continue
		}
		sum := f.SHA256
		if f.Pending != "" {
			sum = "pending"
		}
		tools.Inputs = append(tools.Inputs, Input{"file " + f.Name + " " + f.Version, sum})
		p := r.Inputs.Files[f.Name]
		if sourceTools[f.Name] {
			dir := filepath.Join(build, f.Name+"-"+f.Version)
			tools.Commands = append(tools.Commands,
				Command{Args: []string{"tar", "--no-same-owner", "-xf", p, "-C", build}, Dir: l.Tools()},
				Command{Args: []string{"runghc", "Setup.hs", "configure", "--prefix=" + l.ToolPrefix(), "--with-compiler=" + filepath.Join(l.BootstrapPrefix(), "bin", "ghc")}, Dir: dir},
				Command{Args: []string{"runghc", "Setup.hs", "build"}, Dir: dir},
				Command{Args: []string{"runghc", "Setup.hs", "install"}, Dir: dir},
			)
			continue
		}
		exe := strings.TrimSuffix(f.Name, "-install") // cabal-install ships "cabal"
		dir := filepath.Join(build, f.Name)
		tools.Commands = append(tools.Commands,
			Command{Args: []string{"mkdir", "-p", dir}, Dir: l.Tools()},
			Command{Args: []string{"tar", "--no-same-owner", "-xf", p, "-C", dir}, Dir: l.Tools()},
			Command{Args: []string{"install", "-m", "0755", filepath.Join(dir, exe), filepath.Join(l.ToolPrefix(), "bin", exe)}, Dir: l.Tools()},
		)
	}
	tools.Commands = append(tools.Commands, Command{Args: []string{"rm", "-rf", build}, Dir: l.Tools()})
	for _, c := range toolChecks {
		c.Dir = l.Tools()
		tools.Commands = append(tools.Commands, c)
	}
	tools.Outputs = []string{filepath.Join(l.ToolPrefix(), "bin", "alex"), filepath.Join(l.ToolPrefix(), "bin", "happy"),
		filepath.Join(l.ToolPrefix(), "bin", "cabal"), filepath.Join(l.ToolPrefix(), "bin", "HsColour")}
	add(tools)

	// 3. The sources, every gitlink checked against the pins.
	add(r.prepareStep())

	// 4-5. autoconf and configure (which exits 0 on failed checks).
	add(Step{
		Name: "autoconf", Root: src, Deps: []string{"prepare-sources"},
		Doc:      "generate configure (it is not committed)",
		Commands: []Command{{Args: []string{"autoconf"}, Dir: src}},
		Outputs:  []string{filepath.Join(src, "configure")},
	})
	flags := append([]string{"--prefix=" + c.Prefix, "--libdir=" + c.LibDir}, fl.ConfigureFlags...)
	add(Step{
		Name: "configure", Root: src, Deps: []string{"autoconf", "bootstrap-ghc", "tools"},
		Doc:      "configure the " + fl.Name + " flavour (" + fl.IntegerLibrary + "); configure exits 0 on failed checks, so autoconf.mk must exist",
		Inputs:   []Input{{"flavour " + fl.Name, fl.IntegerLibrary + " " + strings.Join(fl.ConfigureFlags, " ")}},
		Commands: []Command{{Args: append([]string{"./configure"}, flags...), Dir: src}},
		Outputs:  []string{filepath.Join(src, "autoconf.mk")},
	})

	// 6. GMP before halvm-ghc's configure, which needs gmp.h.
	cdeps := []string{"configure"}
	if gmp {
		add(Step{
			Name: "gmp", Root: src, Deps: []string{"configure"},
			Doc:      "build the static GMP 6.1.2 the gmp flavour bundles",
			Commands: []Command{{Args: []string{"make", filepath.Join(src, "src/gmp/.libs/libgmp.a")}, Dir: src}},
			Outputs:  []string{filepath.Join(src, "src/gmp/.libs/libgmp.a")},
		})
		cdeps = append(cdeps, "gmp")
	}
	// 7-8. halvm-ghc's boot and configure, then the stage-1 compiler.
	add(Step{
		Name: "ghc-configure", Root: src, Deps: cdeps, RunsGHC: true,
		Doc: "link build.mk, run halvm-ghc's ./boot and configure it as the x86_64-unknown-HaLVM cross compiler",
		Commands: []Command{
			{Args: []string{"make", filepath.Join(ghc, "mk/config.mk")}, Dir: src},
		},
		Outputs: []string{filepath.Join(ghc, "mk/config.mk"), filepath.Join(ghc, "mk/build.mk")},
	})
	ghcMake := func(target string) []string {
		return []string{"make", "-C", "halvm-ghc", target, "ghclibdir=" + hl}
	}
	add(Step{
		Name: "stage1-compiler", Root: src, Deps: []string{"ghc-configure"}, RunsGHC: true,
		Doc:      "build the stage-1 compiler (Stage1Only: the cross compiler that is installed)",
		Commands: []Command{{Args: ghcMake("inplace/bin/ghc-stage1"), Dir: src}},
		Outputs:  []string{filepath.Join(ghc, "inplace/bin/ghc-stage1")},
	})
	// 9-13. Each RTS way on its own.
	for _, w := range Ways {
		a := "rts/dist/build/" + RTSArchive(w)
		add(Step{
			Name: "rts-" + w, Root: src, Deps: []string{"stage1-compiler"}, RunsGHC: true,
			Doc:      "build the RTS way " + w + " (" + RTSArchive(w) + ")",
			Commands: []Command{{Args: ghcMake(a), Dir: src}},
			Outputs:  []string{filepath.Join(ghc, a)},
		})
	}
	// 14-18. The C parts.
	for _, p := range []struct{ name, target, doc string }{
		{"openlibm", "src/openlibm/libopenlibm.a", "build the math library (libopenlibm.a)"},
		{"libIVC", "src/libIVC/libIVC.a", "build libIVC, the dom0 inter-VM communication library"},
		{"start.o", "src/bootloader/start.o", "assemble the kernel entry point start.o (Xen ELF notes)"},
		{"mkrenddir", "src/mkrenddir/mkrenddir", "build mkrenddir (links libxenstore)"},
		{"convert-profile", "src/profiling/convert-profile", "build convert-profile"},
	} {
		add(Step{
			Name: p.name, Root: src, Deps: []string{"configure"},
			Doc:      p.doc,
			Commands: []Command{{Args: []string{"make", filepath.Join(src, p.target)}, Dir: src}},
			Outputs:  []string{filepath.Join(src, p.target)},
		})
	}
	var before []string
	for _, s := range r.Steps {
		if s.Root == src && s.Name != "prepare-sources" {
			before = append(before, s.Name)
		}
	}
	// 19. Everything else of upstream's "make" (the libraries, ways v p).
	add(Step{
		Name: "libraries", Root: src, Deps: before, RunsGHC: true,
		Doc: "build halvm-ghc's remaining targets (the target libraries in ways v and p, HALVMCore, XenDevice; " +
			"upstream's top-level make skips them once ghc-stage1 exists), then finish the top-level make (libminlibc)",
		Commands: []Command{{Args: ghcMake("all"), Dir: src}, {Args: []string{"make"}, Dir: src}},
	})
	// 20. make install into the staging root at the final prefix.
	add(Step{
		Name: "install", Root: stage, Fresh: true, Deps: []string{"libraries", "tools", "bootstrap-ghc"}, RunsGHC: true,
		Doc:      "make install into the staging root " + stage + " (DESTDIR) at prefix " + c.Prefix,
		Commands: []Command{{Args: []string{"make", "install", "DESTDIR=" + stage}, Dir: src}},
		Outputs: []string{
			filepath.Join(stage, c.Prefix, "bin/halvm-ghc"),
			filepath.Join(stage, hl, "ldkernel"),
			filepath.Join(stage, hl, "kernel.lds"),
			filepath.Join(stage, hl, "rts-1.0/start.o"),
			filepath.Join(stage, hl, "rts-1.0/libopenlibm.a"),
			filepath.Join(stage, hl, "package.conf.d"),
		},
	})
	if gmp {
		r.Steps[len(r.Steps)-1].Outputs = append(r.Steps[len(r.Steps)-1].Outputs, filepath.Join(stage, hl, "rts-1.0/libgmp.a"))
	}
	// 21. halvm-ghc-pkg recache, on the staged package db.
	add(Step{
		Name: "recache", Root: stage, Deps: []string{"install"}, RunsGHC: true,
		Doc: "halvm-ghc-pkg recache: rebuild the staged package db's cache (the installed halvm-ghc-pkg names the final " +
			"paths, so the build tree's ghc-pkg runs on the staged db)",
		Commands: []Command{{Args: []string{filepath.Join(ghc, "inplace/bin/ghc-pkg"), "recache",
			"--global-package-db=" + filepath.Join(stage, hl, "package.conf.d"), "--no-user-package-db"}, Dir: src}},
		Outputs: []string{filepath.Join(stage, hl, "package.conf.d/package.cache")},
	})
	for i := range r.Steps {
		if r.Steps[i].Name == "install" {
			for _, w := range Ways {
				r.Steps[i].Outputs = append(r.Steps[i].Outputs, filepath.Join(stage, hl, "rts", RTSArchive(w)))
			}
		}
	}
	return r, nil
}

func (r *Recipe) bootstrapFile() (pins.File, error) {
	var found []pins.File
	for _, f := range r.Lock.Files {
		if f.Role == pins.RoleBootstrapGHC {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return pins.File{}, fmt.Errorf("toolchain recipe: the lock pins %d files of role %s, want exactly one", len(found), pins.RoleBootstrapGHC)
	}
	return found[0], nil
}

// prepareStep checks out the superproject and every pinned submodule from
// the cache (package sources verifies every gitlink and .gitmodules entry
// against the lock), configures the lock's URL rewrites in the checkout
// (GHC's ./boot looks at them), checks GHC's ./boot prerequisites and
// clamps every source mtime to the epoch (so make sees sources older than
// anything built).
func (r *Recipe) prepareStep() Step {
	src := r.SourceDir()
	s := Step{
		Name: "prepare-sources", Root: src, Fresh: true, Recreate: true,
		Doc: "check out the superproject and every pinned submodule from the verified cache, with the lock's URL rewrites",
	}
	for _, so := range r.Lock.Sources {
		s.Inputs = append(s.Inputs, Input{"source " + so.Name + " " + so.Path, so.Commit})
	}
	for _, rw := range r.Lock.Rewrites {
		s.Inputs = append(s.Inputs, Input{"rewrite " + rw.From, rw.To})
	}
	for _, e := range r.Lock.Excluded {
		s.Inputs = append(s.Inputs, Input{"excluded " + e.Path, e.Commit})
	}
	s.Inputs = append(s.Inputs, Input{"epoch", fmt.Sprint(r.Config.Epoch.Unix())})
	s.Pre = []Action{{
		Doc: "check out the pinned tree into " + src + " from the cache (sources.FetchSources: every gitlink and .gitmodules entry checked against the lock, excluded submodules left empty)",
		Run: r.checkout,
	}}
	for _, rw := range r.Lock.Rewrites {
		s.Commands = append(s.Commands, Command{Args: []string{"git", "config", "url." + rw.To + ".insteadOf", rw.From}, Dir: src})
	}
	s.Post = []Action{
		{Doc: "check GHC's ./boot prerequisites: a LICENSE file in every library halvm-ghc builds",
			Run: func(ctx context.Context) error { return checkBootPrereqs(r) }},
		{Doc: "clamp every source file's mtime to SOURCE_DATE_EPOCH",
			Run: func(ctx context.Context) error { return clampTree(src, r.Config.Epoch, false) }},
	}
	s.Outputs = []string{filepath.Join(src, "configure.ac"), filepath.Join(src, "halvm-ghc")}
	return s
}
