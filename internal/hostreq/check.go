package hostreq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/run"
)

// Set is what a run needs from the host: Debian packages (each with who
// needs it), root, and a Docker daemon that answers.
type Set struct {
	pkgs   map[string]map[string]bool // package -> users
	root   map[string]bool            // users needing root
	docker map[string]bool            // users needing a Docker daemon
	errs   []error
}

func (s *Set) init() {
	if s.pkgs == nil {
		s.pkgs, s.root, s.docker = map[string]map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
}

// AddUsers adds every package the table says users need.
func (s *Set) AddUsers(users ...string) {
	s.init()
	for _, p := range Table {
		for _, u := range users {
			if p.neededBy(u) {
				s.addPackage(p.Name, u)
			}
		}
	}
}

// AddAll adds the whole table (the test suite's needs).
func (s *Set) AddAll(by string) {
	s.init()
	for _, p := range Table {
		s.addPackage(p.Name, by)
	}
}

func (s *Set) addPackage(name, by string) {
	if s.pkgs[name] == nil {
		s.pkgs[name] = map[string]bool{}
	}
	s.pkgs[name][by] = true
}

// AddCommand adds the package providing a program (or a file); a program
// that is not in the table is an error of the code, reported by Check.
func (s *Set) AddCommand(what, by string) {
	s.init()
	p, ok := ProviderOf(what)
	if !ok {
		s.errs = append(s.errs, fmt.Errorf("%s (needed by %s) is not in the table of host prerequisites (internal/hostreq): add it", what, by))
		return
	}
	s.addPackage(p.Name, by)
}

// NeedRoot records that by needs to run as root.
func (s *Set) NeedRoot(by string) { s.init(); s.root[by] = true }

// NeedDocker records that by needs a Docker daemon that answers (and the
// docker client, from docker.io).
func (s *Set) NeedDocker(by string) {
	s.init()
	s.docker[by] = true
	s.addPackage("docker.io", by)
}

// Packages returns the needed packages' names, sorted.
func (s Set) Packages() []string {
	out := make([]string, 0, len(s.pkgs))
	for p := range s.pkgs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Host is how a host is probed; System is the real one, tests build their own.
type Host struct {
	LookPath func(name string) bool // a program is on PATH
	Exists   func(path string) bool
	UID      int
	// Debian: apt-get is there and /etc/debian_version exists.
	Debian bool
	// DockerUp returns nil when a Docker daemon answers.
	DockerUp func(ctx context.Context) error
}

// SystemPath is where programs are looked up when PATH is unset, and the
// PATH apt-get runs with.
const SystemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// System is this machine.
func System() Host {
	h := Host{
		LookPath: func(name string) bool { return lookPath(name) != "" },
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		UID:      os.Geteuid(),
		DockerUp: dockerUp,
	}
	_, err := os.Stat("/etc/debian_version")
	h.Debian = err == nil && h.LookPath("apt-get")
	return h
}

// lookPath finds a program as the command runner will: in PATH (the
// environment every stage hands its programs).
func lookPath(name string) string {
	env := run.Inherit("PATH")
	if path, _ := run.Lookup(env, "PATH"); path == "" {
		env = []string{"PATH=" + SystemPath}
	}
	p, err := run.LookPath(name, env)
	if err != nil {
		return ""
	}
	return p
}

// dockerEnv is the environment of the docker client.
func dockerEnv() []string {
	return run.BaseEnv(run.Inherit("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")...)
}

func dockerUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := run.Output(ctx, run.Cmd{Args: []string{"docker", "version", "--format", "{{.Server.Version}}"}, Env: dockerEnv()})
	if err != nil {
		return fmt.Errorf("the Docker daemon does not answer: %w", err)
	}
	if strings.TrimSpace(string(out)) == "" {
		return errors.New("the Docker daemon reported no version")
	}
	return nil
}

// Missing is a needed package that is not (completely) installed.
type Missing struct {
	Package Package
	What    []string // its programs and files that are not there
	By      []string // who needs it
}

// Report is the outcome of checking a Set against a host.
type Report struct {
	Missing    []Missing
	RootBy     []string // users that need root, when not root
	DockerDown error    // the daemon does not answer (nil when it does or nobody needs it)
	DockerBy   []string
	Defects    []error // programs the code needs that the table lacks
	Host       Host
}

// OK reports whether nothing is missing.
func (r Report) OK() bool {
	return len(r.Missing) == 0 && len(r.RootBy) == 0 && r.DockerDown == nil && len(r.Defects) == 0
}

// Check compares s with h and reports everything missing at once.
func (s Set) Check(ctx context.Context, h Host) Report {
	r := Report{Host: h, Defects: s.errs}
	for _, name := range s.Packages() {
		p, _ := Find(name)
		var what []string
		for _, c := range p.Commands {
			if !h.LookPath(c) {
				what = append(what, c)
			}
		}
		for _, f := range p.Files {
			if !h.Exists(f) {
				what = append(what, f)
			}
		}
		if len(what) > 0 {
			r.Missing = append(r.Missing, Missing{Package: p, What: what, By: slices.Sorted(maps.Keys(s.pkgs[name]))})
		}
	}
	if h.UID != 0 {
		r.RootBy = slices.Sorted(maps.Keys(s.root))
	}
	if len(s.docker) > 0 {
		r.DockerBy = slices.Sorted(maps.Keys(s.docker))
		if h.LookPath("docker") && h.DockerUp != nil {
			r.DockerDown = h.DockerUp(ctx)
		} else if !h.LookPath("docker") {
			r.DockerDown = errors.New("the docker client is not installed")
		}
	}
	return r
}

// MissingPackages are the names of the missing packages, sorted.
func (r Report) MissingPackages() []string {
	var out []string
	for _, m := range r.Missing {
		out = append(out, m.Package.Name)
	}
	sort.Strings(out)
	return out
}

// InstallCommand is the one command that installs every missing package
// ("" when none is missing), with sudo when not run as root.
func (r Report) InstallCommand() string {
	pkgs := r.MissingPackages()
	if len(pkgs) == 0 {
		return ""
	}
	cmd := "apt-get install -y --no-install-recommends " + strings.Join(pkgs, " ")
	if r.Host.UID != 0 {
		cmd = "sudo " + cmd
	}
	return cmd
}

// Err is nil when nothing is missing, else one error that lists every
// missing thing with who needs it and why, and the one command that
// installs them all (or, off Debian, the programs and files by name).
func (r Report) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	for _, d := range r.Defects {
		fmt.Fprintf(&b, "\n  defect: %v", d)
	}
	if len(r.Missing) > 0 {
		if r.Host.Debian {
			fmt.Fprintf(&b, "\n  %d Debian package(s) missing:", len(r.Missing))
			for _, m := range r.Missing {
				fmt.Fprintf(&b, "\n    %s (for %s) — needed by %s: %s", m.Package.Name, strings.Join(m.What, ", "), strings.Join(m.By, ", "), m.Package.Why)
			}
			fmt.Fprintf(&b, "\n  install them all with:\n    %s", r.InstallCommand())
		} else {
			fmt.Fprintf(&b, "\n  this is not a Debian-family system (no apt-get or no /etc/debian_version): nothing was installed and no work was done; provide these programs and files with your system's packages (Debian names in brackets):")
			for _, m := range r.Missing {
				fmt.Fprintf(&b, "\n    %s [%s] — needed by %s: %s", strings.Join(m.What, ", "), m.Package.Name, strings.Join(m.By, ", "), m.Package.Why)
			}
		}
	}
	if r.DockerDown != nil {
		fmt.Fprintf(&b, "\n  a Docker daemon that answers — needed by %s: %v; %s", strings.Join(r.DockerBy, ", "), r.DockerDown, dockerRemedy(r.Host))
	}
	if len(r.RootBy) > 0 {
		fmt.Fprintf(&b, "\n  root — needed by %s: run as root (sudo)", strings.Join(r.RootBy, ", "))
	}
	return fmt.Errorf("host prerequisites missing:%s", b.String())
}

func dockerRemedy(h Host) string {
	prefix := ""
	if h.UID != 0 {
		prefix = "sudo "
	}
	return "start it with `" + prefix + "service docker start` (or `" + prefix + "systemctl start docker`), or point DOCKER_HOST at a daemon"
}
