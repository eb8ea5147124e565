// Package baseimage owns the Debian root filesystems of the toolchain image:
// resolving a set of top-level packages into exact pins against the mirror
// (ImageResolver, the pins:update side), fetching exactly those .debs into a
// content-addressed cache with their sha256 checked (Fetch), and
// bootstrapping a root filesystem tarball from nothing but pinned .debs
// with mmdebstrap (Bootstrap), so maintainer scripts run as on any Debian.
//
// apt runs with an isolated configuration under the cache directory: the
// host's sources, preferences and dpkg status never leak in.
package baseimage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/sources"
)

// Pin is one exact Debian binary package: what the lock records and the
// build fetches.
type Pin struct {
	Name    string `json:"name" toml:"name"`
	Version string `json:"version" toml:"version"`
	Arch    string `json:"arch" toml:"arch"`
	SHA256  string `json:"sha256" toml:"sha256"`
}

func (p Pin) String() string { return p.Name + ":" + p.Arch + "=" + p.Version }

// Set is the pinned content of one image's Debian layers: the base root
// filesystem and the toolchain's runtime dependencies on top of it.
type Set struct {
	Base []Pin `json:"base" toml:"base"`
	Deps []Pin `json:"deps" toml:"deps"`
}

// Mirror says where packages come from.
type Mirror struct {
	// Sources are one-line apt sources without options, e.g.
	// "deb http://mirror.example/debian bookworm main". Empty means
	// SystemSources. A snapshot mirror URL keeps old pins fetchable.
	Sources []string
	// Keyring verifies the mirror's Release files; empty means the
	// debian-archive-keyring of the host.
	Keyring string
	// Arch is the Debian architecture; empty means amd64.
	Arch string
}

// SystemSources is Debian 12 with its updates and security suites, from
// the mirrors this machine's apt configuration names (the mirror is the
// builder's choice; the pins fix the bytes).
func SystemSources() ([]string, error) {
	a, err := systemArchives()
	if err != nil {
		return nil, err
	}
	return []string{
		"deb " + a["debian"] + " bookworm main",
		"deb " + a["debian"] + " bookworm-updates main",
		"deb " + a["debian-security"] + " bookworm-security main",
	}, nil
}

// SystemImageSources is the deb822 apt configuration an image ships, as
// Debian's own container images do, naming the same mirrors.
func SystemImageSources() (string, error) {
	a, err := systemArchives()
	if err != nil {
		return "", err
	}
	const stanza = "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
	return fmt.Sprintf(stanza, a["debian"], "bookworm bookworm-updates") + "\n" + fmt.Sprintf(stanza, a["debian-security"], "bookworm-security"), nil
}

func systemArchives() (map[string]string, error) {
	a, err := sources.AptArchives("/")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"debian", "debian-security"} {
		if a[name] == "" {
			return nil, fmt.Errorf("this machine's apt configuration names no %q archive: configure a Debian mirror in /etc/apt/sources.list.d or give the sources explicitly", name)
		}
	}
	return a, nil
}

// DefaultKeyring verifies Debian's mirrors.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

func (m Mirror) arch() string {
	if m.Arch == "" {
		return "amd64"
	}
	return m.Arch
}

// apt is an isolated apt configuration below dir.
type apt struct {
	dir    string
	mirror Mirror
	conf   string
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func newApt(cacheDir string, m Mirror) (*apt, error) {
	dir := filepath.Join(cacheDir, "apt", m.arch())
	for _, d := range []string{"lists/partial", "archives/partial", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("preparing apt state in %s: %w", dir, err)
		}
	}
	keyring := m.Keyring
	if keyring == "" {
		keyring = DefaultKeyring
	}
	sources := m.Sources
	if len(sources) == 0 {
		var err error
		if sources, err = SystemSources(); err != nil {
			return nil, err
		}
	}
	var sl strings.Builder
	for _, s := range sources {
		f := strings.Fields(s)
		if len(f) < 4 || f[0] != "deb" || strings.HasPrefix(f[1], "[") {
			return nil, fmt.Errorf("mirror source %q: want \"deb URI SUITE COMPONENT...\" without options", s)
		}
		fmt.Fprintf(&sl, "deb [signed-by=%s] %s\n", keyring, strings.Join(f[1:], " "))
	}
	files := map[string]string{
		"sources.list": sl.String(),
		"status":       "",
	}
	conf := fmt.Sprintf(`Dir "/";
Dir::State "%[1]s";
Dir::State::Lists "%[1]s/lists";
Dir::State::status "%[1]s/status";
Dir::Cache "%[1]s";
Dir::Cache::archives "%[1]s/archives";
Dir::Etc::SourceList "%[1]s/sources.list";
Dir::Etc::SourceParts "%[1]s/etc/sources.list.d";
Dir::Etc::Preferences "%[1]s/etc/preferences";
Dir::Etc::PreferencesParts "%[1]s/etc/preferences.d";
Dir::Etc::TrustedParts "%[1]s/etc/trusted.gpg.d";
APT::Architecture "%[2]s";
APT::Architectures { "%[2]s"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
`, dir, m.arch())
	files["apt.conf"] = conf
	for name, content := range files {
		if err := pipelineWrite(filepath.Join(dir, name), content); err != nil {
			return nil, err
		}
	}
	return &apt{dir: dir, mirror: m, conf: filepath.Join(dir, "apt.conf")}, nil
}

func pipelineWrite(path, content string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing apt configuration: %w", err)
	}
	return nil
}

func (a *apt) cmd(dir string, args ...string) run.Cmd {
	return run.Cmd{Args: args, Dir: dir, Env: run.BaseEnv("APT_CONFIG="+a.conf, "DEBIAN_FRONTEND=noninteractive")}
}

func (a *apt) update(ctx context.Context) error {
	if err := run.Run(ctx, a.cmd("", "apt-get", "update", "-q")); err != nil {
		return fmt.Errorf("updating package lists from the mirror: %w", err)
	}
	return nil
}

// essential lists the Essential: yes packages the mirror offers.
func (a *apt) essential(ctx context.Context) ([]string, error) {
	out, err := run.Output(ctx, a.cmd("", "apt-cache", "dumpavail"))
	if err != nil {
		return nil, fmt.Errorf("listing essential packages: %w", err)
	}
	paras, err := deb822.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("listing essential packages: apt-cache dumpavail: %w", err)
	}
	seen := map[string]bool{}
	for _, para := range paras {
		if strings.EqualFold(para.Get("Essential"), "yes") {
			seen[para.Get("Package")] = true
		}
	}
	if len(seen) == 0 {
		return nil, errors.New("listing essential packages: the mirror offers none: check the mirror sources")
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

var instRE = regexp.MustCompile(`^Inst (\S+) (?:\[\S+\] )?\((\S+) .*\[(\S+)\]\)`)

// simulate returns what apt would install on an empty system for the given
// arguments (package names or paths to local .debs).
func (a *apt) simulate(ctx context.Context, args []string) ([]Pin, error) {
	out, err := run.Output(ctx, a.cmd("", append([]string{"apt-get", "install", "--simulate", "-q", "-y"}, args...)...))
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", strings.Join(args, " "), err)
	}
	return parseSimulation(out), nil
}

// parseSimulation reads the packages `apt-get install --simulate` would
// install from its "Inst" lines, in apt's order.
func parseSimulation(out []byte) []Pin {
	var pins []Pin
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := instRE.FindStringSubmatch(sc.Text()); m != nil {
			pins = append(pins, Pin{Name: m[1], Version: m[2], Arch: m[3]})
		}
	}
	return pins
}

var uriRE = regexp.MustCompile(`^'([^']+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$`)

type remoteDeb struct {
	url, file string
	sha256    string
}

// locate asks the mirror where each pin is and what its sha256 is. Every
// pin the mirror lacks is reported at once.
func (a *apt) locate(ctx context.Context, pins []Pin) ([]remoteDeb, error) {
	var errs []error
	out := make([]remoteDeb, len(pins))
	// One apt call per pin would be slow; one call fails on the first
	// missing pin, so fall back to per-pin calls only to name them all.
	args := []string{"apt-get", "download", "--print-uris", "-q"}
	for _, p := range pins {
		args = append(args, p.String())
	}
	stdout, err := run.Output(ctx, a.cmd("", args...))
	if err != nil {
		for _, p := range pins {
			if _, err := run.Output(ctx, a.cmd("", "apt-get", "download", "--print-uris", "-q", p.String())); err != nil {
				errs = append(errs, fmt.Errorf("debian package %s is not on the mirror (%s): run \"go run mage.go pins:update\" to re-pin, or point the mirror at a snapshot.debian.org date that still has it", p, lastLine(err)))
			}
		}
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("locating pinned packages on the mirror: %w", err))
		}
		return nil, errors.Join(errs...)
	}
	byFile := parseURIs(stdout)
	// apt prints in its own order: match by the file name it derives
	// from name, version and architecture.
	for i, p := range pins {
		file := debFileName(p)
		d, ok := byFile[file]
		if !ok {
			errs = append(errs, fmt.Errorf("debian package %s: apt printed no location for %s", p, file))
			continue
		}
		out[i] = d
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parseURIs reads `apt-get download --print-uris` output, by file name.
func parseURIs(out []byte) map[string]remoteDeb {
	byFile := map[string]remoteDeb{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := uriRE.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			byFile[m[2]] = remoteDeb{url: m[1], file: m[2], sha256: m[4]}
		}
	}
	return byFile
}

// debFileName is the file name apt gives a pin's .deb: an epoch's colon is
// quoted as %3a.
func debFileName(p Pin) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

func lastLine(err error) string {
	var re *run.Error
	if errors.As(err, &re) {
		lines := strings.Split(strings.TrimSpace(re.Stderr), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return err.Error()
}

// ParseStatus reads a dpkg status file and returns the installed packages
// (without sha256: dpkg does not record it), sorted by name.
func ParseStatus(r io.Reader) ([]Pin, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	paras, err := deb822.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	var pins []Pin
	for _, p := range paras {
		if !strings.HasSuffix(p.Get("Status"), " installed") {
			continue
		}
		pins = append(pins, Pin{Name: p.Get("Package"), Version: p.Get("Version"), Arch: p.Get("Architecture")})
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].Name < pins[j].Name })
	return pins, nil
}

// CheckInstalled compares what dpkg installed with what was wanted
// (name, version, arch; sha256 ignored) and reports every difference.
func CheckInstalled(installed, want []Pin) error {
	key := func(p Pin) string { return p.Name + ":" + p.Arch }
	got := map[string]Pin{}
	for _, p := range installed {
		got[key(p)] = p
	}
	var errs []error
	for _, w := range want {
		g, ok := got[key(w)]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("pinned package %s is not installed", w))
		case g.Version != w.Version:
			errs = append(errs, fmt.Errorf("package %s: installed version %s, pinned %s", w.Name, g.Version, w.Version))
		}
		delete(got, key(w))
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		errs = append(errs, fmt.Errorf("package %s is installed but not pinned", got[k]))
	}
	if len(errs) > 0 {
		return fmt.Errorf("root filesystem does not match its pins: %w", errors.Join(errs...))
	}
	return nil
}

// Validate checks pins for well-formedness and reports every problem with
// its index.
func Validate(what string, pins []Pin) error {
	var errs []error
	seen := map[string]int{}
	for i, p := range pins {
		bad := func(field, msg string) {
			errs = append(errs, fmt.Errorf("%s[%d].%s: %s", what, i, field, msg))
		}
		if p.Name == "" {
			bad("name", "empty")
		}
		if p.Version == "" {
			bad("version", "empty")
		}
		if p.Arch == "" {
			bad("arch", "empty")
		}
		if !sha256RE.MatchString(p.SHA256) {
			bad("sha256", "want 64 lower-case hex characters")
		}
		if j, ok := seen[p.Name+":"+p.Arch]; ok {
			bad("name", fmt.Sprintf("%s is pinned twice (also %s[%d])", p.Name, what, j))
		}
		seen[p.Name+":"+p.Arch] = i
	}
	return errors.Join(errs...)
}
