package packaging

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Toolchain is one toolchain package (halvm or halvm-gmp) in one format.
type Toolchain struct {
	Flavour string    // "halvm" or "halvm-gmp"
	Version string    // upstream version, "2.4.3"
	Release int       // package release, the 1 of 2.4.3-1
	Epoch   time.Time // SOURCE_DATE_EPOCH: every mtime and signature time
	Tree    Tree      // installed with Layouts[format]
	// Examples is a directory installed as /usr/share/HaLVM-<ver>/examples
	// (upstream's examples/); optional.
	Examples string
	// Hello is a directory with the project's verification hello program,
	// installed as /usr/share/HaLVM-<ver>/examples/Verify/Hello; optional.
	Hello string
	// LicenseFile is upstream's license text for the copyright files;
	// empty uses the BSD-3-Clause text naming Galois and the contributors.
	LicenseFile string
	// Forbidden are strings no packaged file may contain: the build
	// directory and other host paths that leak into an install.
	Forbidden []string
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// BuildToolchain checks tc and writes its package in format f into outDir,
// returning the path. Every problem of the input is reported at once, and
// nothing is written unless the whole package is.
func BuildToolchain(ctx context.Context, f Format, tc Toolchain, o Options, outDir string) (string, error) {
	s, tmp, err := tc.spec(ctx, f)
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		return "", err
	}
	if o.Key == nil {
		return "", fmt.Errorf("building %s %s: no signing key: load one with pgp.LoadKey (or generate a development key)", f, tc.Flavour)
	}
	if o.Key.IsDevelopment() {
		s.description += "\n" + devNote
	}
	var size int64
	for _, e := range s.entries {
		size += e.Size
	}
	release, err := o.Memory.acquire(ctx, buildMemory(f, size))
	if err != nil {
		return "", fmt.Errorf("building %s %s: waiting for memory: %w", f, tc.Flavour, err)
	}
	defer release()
	return s.build(ctx, f, o, outDir)
}

// checkCommon validates what every package needs.
func checkCommon(f Format, version string, release int, epoch time.Time) []string {
	var p []string
	if f != Deb && f != RPM {
		p = append(p, fmt.Sprintf("format %q: want deb or rpm", f))
	}
	if !versionRE.MatchString(version) {
		p = append(p, fmt.Sprintf("version %q: want dotted decimal digits like 2.4.3", version))
	}
	if release < 1 {
		p = append(p, fmt.Sprintf("release %d: want a package release number of at least 1", release))
	}
	if epoch.IsZero() || epoch.Unix() < 0 {
		p = append(p, "epoch is not set: pass SOURCE_DATE_EPOCH")
	}
	return p
}

// spec validates tc for format f and lists its contents; tmp is a scratch
// directory with generated files that the caller removes.
func (tc Toolchain) spec(ctx context.Context, f Format) (_ *spec, tmp string, _ error) {
	fl, okFlavour := Flavours[tc.Flavour]
	problems := checkCommon(f, tc.Version, tc.Release, tc.Epoch)
	if !okFlavour {
		var names []string
		for n := range Flavours {
			names = append(names, n)
		}
		sort.Strings(names)
		problems = append(problems, fmt.Sprintf("unknown flavour %q: want one of %s", tc.Flavour, strings.Join(names, ", ")))
	}
	fail := func() error {
		return fmt.Errorf("building %s package %s: %s", f, tc.Flavour, strings.Join(problems, "; "))
	}
	want, okFormat := Layouts[f]
	t := tc.Tree
	treeOK := true
	switch st, err := os.Stat(t.Root); {
	case t.Root == "":
		problems = append(problems, "no toolchain tree given: set Tree.Root to the DESTDIR of `make install`")
		treeOK = false
	case err != nil:
		problems = append(problems, fmt.Sprintf("toolchain tree: %v: build the toolchain first", err))
		treeOK = false
	case !st.IsDir():
		problems = append(problems, fmt.Sprintf("toolchain tree %s is not a directory", t.Root))
		treeOK = false
	}
	if okFormat && (t.Prefix != want.Prefix || t.Libdir != want.Libdir) {
		problems = append(problems, fmt.Sprintf("toolchain tree was installed with prefix %q libdir %q but %s packages need prefix %q libdir %q: install the toolchain for %s with `make install DESTDIR=... libdir=%s` (its wrapper scripts bake the libdir in)",
			t.Prefix, t.Libdir, f, want.Prefix, want.Libdir, f, want.Libdir))
		treeOK = false
	}
	for _, d := range []struct{ what, dir string }{{"examples", tc.Examples}, {"hello program", tc.Hello}} {
		if d.dir == "" {
			continue
		}
		if st, err := os.Stat(d.dir); err != nil || !st.IsDir() {
			problems = append(problems, fmt.Sprintf("%s directory %s: not a directory", d.what, d.dir))
		}
	}
	licenseText := bsd3
	if tc.LicenseFile != "" {
		b, err := os.ReadFile(tc.LicenseFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("license file: %v", err))
		}
		licenseText = string(b)
	}
	if !treeOK || !okFlavour || len(problems) > 0 {
		return nil, "", fail()
	}

	libdir := want.HaLVMLibdir(tc.Version)
	share := want.ShareDir(tc.Version)
	skip := map[string]bool{}
	for _, g := range want.GeneratedFiles(tc.Version) {
		skip[g] = true // made by recache after install, never shipped
	}
	entries := walkTree(t.Root, "/", skip, &problems)
	byDest := map[string]entry{}
	for _, e := range entries {
		byDest[e.Dest] = e
		if e.Dest != t.Prefix && !strings.HasPrefix(e.Dest, t.Prefix+"/") && !systemDirs[e.Dest] {
			problems = append(problems, fmt.Sprintf("%s is outside the prefix %s: the toolchain tree holds only `make install` output", e.Dest, t.Prefix))
		}
	}
	for _, exe := range []string{"halvm-ghc", "halvm-ghc-pkg"} {
		p := t.Prefix + "/bin/" + exe
		if e, ok := byDest[p]; !ok || e.Mode.Perm()&0o111 == 0 {
			problems = append(problems, fmt.Sprintf("toolchain tree has no executable %s: is %s an installed HaLVM tree?", p, t.Root))
		}
	}
	if e, ok := byDest[libdir]; !ok || !e.isDir() {
		problems = append(problems, fmt.Sprintf("toolchain tree has no %s: was it installed for version %s with libdir %s?", libdir, tc.Version, want.Libdir))
	}
	if _, ok := byDest[share+"/examples"]; ok && (tc.Examples != "" || tc.Hello != "") {
		problems = append(problems, fmt.Sprintf("toolchain tree already has %s/examples: do not also pass Examples/Hello", share))
	}
	if tc.Examples != "" {
		entries = append(entries, walkTree(tc.Examples, share+"/examples", nil, &problems)...)
	}
	if tc.Hello != "" {
		hello := share + "/examples/Verify/Hello"
		if tc.Examples == "" {
			entries = append(entries, entry{Dest: share + "/examples", Mode: os.ModeDir | 0o755})
		}
		if _, err := os.Stat(filepath.Join(tc.Examples, "Verify")); tc.Examples == "" || err != nil {
			entries = append(entries, entry{Dest: share + "/examples/Verify", Mode: os.ModeDir | 0o755})
		}
		entries = append(entries, walkTree(tc.Hello, hello, nil, &problems)...)
	}
	if tc.Examples != "" || tc.Hello != "" {
		if _, ok := byDest[share]; !ok {
			entries = append(entries, entry{Dest: share, Mode: os.ModeDir | 0o755})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Dest < entries[j].Dest })
	for i := 1; i < len(entries); i++ {
		if entries[i].Dest == entries[i-1].Dest {
			problems = append(problems, fmt.Sprintf("%s comes twice (tree, examples or hello program)", entries[i].Dest))
		}
	}
	if len(problems) > 0 {
		return nil, "", fail()
	}

	// Build-path leaks and the other layout's libdir: a tree installed for
	// one format must not point into the other's.
	forbidden := append([]string(nil), tc.Forbidden...)
	for of, l := range Layouts {
		if of != f && l.Libdir != want.Libdir {
			forbidden = append(forbidden, l.HaLVMLibdir(tc.Version))
		}
	}
	leaks, err := scanLeaks(ctx, entries, forbidden)
	if err != nil {
		return nil, "", fmt.Errorf("building %s package %s: %w", f, tc.Flavour, err)
	}
	if len(leaks) > 0 {
		problems = append(problems, fmt.Sprintf("the tree leaks build paths or another layout's libdir (%d files): %s: build at the fixed build root, install with the %s layout and rebuild the tree",
			len(leaks), describeLeaks(leaks, 10), f))
		return nil, "", fail()
	}

	s := &spec{
		name:        fl.Name,
		version:     tc.Version,
		release:     tc.Release,
		epoch:       tc.Epoch,
		summary:     fl.Summary,
		section:     "devel",
		group:       "Development/Languages",
		depends:     append([]string(nil), Depends[f]...),
		conflicts:   []string{fl.Other},
		replaces:    []string{fl.Other},
		entries:     entries,
		only:        map[string]Format{},
		config:      map[string]bool{},
		scripts:     map[Format]scripts{f: toolchainScripts(f, want, tc.Version)},
		description: toolchainDescription(fl, want, tc.Version),
	}
	tmp, err = os.MkdirTemp("", "halvm-packaging-gen-")
	if err != nil {
		return nil, "", err
	}
	doc := "/usr/share/doc/" + fl.Name
	changelog, err := changelogGz(fl.Name, tc.Version, tc.Release, tc.Epoch)
	if err != nil {
		return nil, tmp, fmt.Errorf("building %s package %s: %w", f, tc.Flavour, err)
	}
	gens := []generated{
		{dest: doc + "/copyright", data: copyright(licenseText), only: Deb},
		{dest: doc + "/changelog.Debian.gz", data: changelog, only: Deb},
		{dest: "/usr/share/lintian/overrides/" + fl.Name, data: []byte(overrides(fl.Name, lintianOverrides)), only: Deb},
		{dest: "/usr/share/licenses/" + fl.Name + "/LICENSE", data: []byte(licenseText), only: RPM},
	}
	if err := s.addGenerated(tmp, gens); err != nil {
		return nil, tmp, fmt.Errorf("building %s package %s: %w", f, tc.Flavour, err)
	}
	return s, tmp, nil
}

func toolchainDescription(fl Flavour, l Layout, version string) string {
	return description(fl.Summary,
		"The Haskell Lightweight Virtual Machine (HaLVM) is a port of the Glasgow Haskell Compiler 8.0.2 "+
			"that compiles Haskell programs into unikernels: static kernels that boot directly as Xen "+
			"paravirtualized (PV) guests, without an operating system underneath.",
		fl.Detail+" It provides halvm-ghc, halvm-ghc-pkg and halvm-cabal, with the libraries in "+
			l.HaLVMLibdir(version)+" and examples in "+l.ShareDir(version)+"/examples.")
}

// toolchainScripts: the package database cache is regenerated after every
// install and upgrade and removed (with its lock) on removal, so that
// removal leaves nothing behind.
//
// deb: postinst configure runs recache; prerm remove deletes the cache
// before dpkg removes the files (so the directories empty and go too),
// which is also right when halvm-gmp replaces halvm (the new package's
// postinst runs after the old one's prerm); postrm purge deletes it again.
//
// rpm: recache runs in %posttrans, after the whole transaction, because on
// `dnf swap halvm halvm-gmp` the erased package's %preun runs after the
// installed one's %post and would delete the fresh cache.
func toolchainScripts(f Format, l Layout, version string) scripts {
	ghcPkg := l.Prefix + "/bin/halvm-ghc-pkg"
	rm := "rm -f " + strings.Join(l.GeneratedFiles(version), " ")
	if f == Deb {
		// Policy: maintainer scripts call programs by name (PATH has /usr/bin).
		return scripts{
			postinst: "#!/bin/sh\nset -e\ncase \"$1\" in\nconfigure|abort-upgrade|abort-remove|abort-deconfigure)\n\thalvm-ghc-pkg recache\n\t;;\nesac\nexit 0\n",
			prerm:    "#!/bin/sh\nset -e\ncase \"$1\" in\nremove)\n\t" + rm + "\n\t;;\nesac\nexit 0\n",
			postrm:   "#!/bin/sh\nset -e\ncase \"$1\" in\npurge|remove)\n\t" + rm + "\n\t;;\nesac\nexit 0\n",
		}
	}
	return scripts{
		posttrans: ghcPkg + " recache\n",
		prerm:     "if [ \"$1\" -eq 0 ]; then\n\t" + rm + "\nfi\n",
	}
}

// overrides renders a lintian overrides file, each tag with its reason.
func overrides(name string, list []override) string {
	var b strings.Builder
	for _, o := range list {
		fmt.Fprintf(&b, "# %s\n%s: %s\n", o.why, name, o.tag)
	}
	return b.String()
}

type override struct{ tag, why string }

// lintianOverrides for halvm and halvm-gmp; keyringOverrides for the keyring.
var lintianOverrides = []override{
	{"no-manual-page [usr/bin/*]", "upstream HaLVM ships no manual pages; `halvm-ghc --help` documents the tools"},
	{"hardening-no-pie [usr/lib/x86_64-linux-gnu/HaLVM-*/bin/alex]", "Debian's own alex binary (GHC links it non-PIE), copied unchanged by upstream's make install"},
	{"hardening-no-pie [usr/lib/x86_64-linux-gnu/HaLVM-*/bin/HsColour]", "Debian's own HsColour binary (GHC links it non-PIE), copied unchanged by upstream's make install"},
	noITP,
}

var keyringOverrides = []override{noITP}

var noITP = override{"initial-upload-closes-no-bugs", "built by the halvm-release pipeline for its own repository, never uploaded to Debian: there is no ITP bug to close"}
