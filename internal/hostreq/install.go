package hostreq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/run"
)

// EnsureOptions say whether and how Ensure may change the host.
type EnsureOptions struct {
	// Install allows installing the missing packages (and starting the
	// Docker daemon) when running as root on a Debian-family system.
	// Without it Ensure only reports, with the one command to run.
	Install bool
	// LogPath receives apt's whole output ("" discards it).
	LogPath string
	// Progress receives one line per step (nil is silent).
	Progress io.Writer

	host *Host                                                         // tests: the host (default System())
	apt  func(ctx context.Context, args []string, log io.Writer) error // tests: runs apt-get
	// startDocker starts the daemon (tests); default: the init system's way.
	startDocker func(ctx context.Context, log io.Writer) error
}

// Ensure checks s against the host and, when allowed, installs every
// missing package in one apt-get install, starts the Docker daemon, and
// checks again: it returns nil only when nothing is missing afterwards.
func Ensure(ctx context.Context, s Set, o EnsureOptions) error {
	h := System()
	if o.host != nil {
		h = *o.host
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := s.Check(ctx, h)
	if rep.OK() {
		return nil
	}
	if !o.Install || !h.Debian || h.UID != 0 || len(rep.Defects) > 0 {
		return rep.Err()
	}
	log := io.Discard
	if o.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(o.LogPath), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening the set-up log: %w", err)
		}
		defer f.Close()
		log = f
	}
	apt := o.apt
	if apt == nil {
		apt = runApt
	}
	if pkgs := rep.MissingPackages(); len(pkgs) > 0 {
		fmt.Fprintf(progress, "set-up: installing %d missing Debian package(s) (HALVM_INSTALL=no only reports them):\n", len(pkgs))
		for _, m := range rep.Missing {
			fmt.Fprintf(progress, "  %s (for %s) — needed by %s: %s\n", m.Package.Name, strings.Join(m.What, ", "), strings.Join(m.By, ", "), m.Package.Why)
		}
		where := ""
		if o.LogPath != "" {
			where = " (apt's output: " + o.LogPath + ")"
		}
		start := time.Now()
		fmt.Fprintf(progress, "set-up: apt-get update && apt-get install -y --no-install-recommends %s%s ...\n", strings.Join(pkgs, " "), where)
		if err := install(ctx, apt, pkgs, log); err != nil {
			return err
		}
		fmt.Fprintf(progress, "set-up: apt-get install of %d package(s) done in %s; checking again\n", len(pkgs), time.Since(start).Round(time.Second))
	}
	// A daemon that was only unreachable for want of the client may
	// answer now (DOCKER_HOST, a socket from outside a chroot): start one
	// only when it still does not.
	if rep.DockerDown != nil && h.LookPath("docker") && (h.DockerUp == nil || h.DockerUp(ctx) != nil) {
		start := o.startDocker
		if start == nil {
			start = startDocker
		}
		fmt.Fprintf(progress, "set-up: starting the Docker daemon (%v)\n", rep.DockerDown)
		if err := start(ctx, log); err != nil {
			fmt.Fprintf(progress, "set-up: starting the Docker daemon failed: %v\n", err)
		}
	}
	again := s.Check(ctx, h)
	if !again.OK() {
		return fmt.Errorf("after the set-up, still missing (a half-finished install is not success): %w", again.Err())
	}
	return nil
}

// install runs apt-get update, then one apt-get install of pkgs.
func install(ctx context.Context, apt func(context.Context, []string, io.Writer) error, pkgs []string, log io.Writer) error {
	var out bytes.Buffer
	w := io.MultiWriter(log, &out)
	if err := apt(ctx, []string{"update", "-q"}, w); err != nil {
		return fmt.Errorf("installing %s: apt-get update failed (is the Debian mirror reachable? check /etc/apt/sources.list*): %w%s", strings.Join(pkgs, " "), err, quoteApt(out.String()))
	}
	out.Reset()
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := apt(ctx, args, w); err != nil {
		if bad := unknownPackages(out.String()); len(bad) > 0 {
			return fmt.Errorf("installing %s: apt cannot find package(s) %s: %w%s", strings.Join(pkgs, " "), strings.Join(bad, ", "), err, quoteApt(out.String()))
		}
		return fmt.Errorf("installing %s: apt-get install failed: %w%s", strings.Join(pkgs, " "), err, quoteApt(out.String()))
	}
	return nil
}

var unknownPackage = regexp.MustCompile(`^E: (?:Unable to locate package |Package '?)([^\s']+)`)

// aptMessage finds an error or warning of apt in a line of its output:
// apt writes them to stderr, so with stdout on the same stream one can
// start in the middle of a progress line ("Building dependency tree...E: ").
var aptMessage = regexp.MustCompile(`(?:^|\.\.\.|\s)((?:E|W): .*|Err:.*)$`)

// aptMessages are apt's error and warning lines in its output, in order.
func aptMessages(out string) []string {
	var msgs []string
	for _, l := range strings.Split(out, "\n") {
		if m := aptMessage.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			msgs = append(msgs, strings.TrimSpace(m[1]))
		}
	}
	return msgs
}

// unknownPackages are the packages apt says it cannot find.
func unknownPackages(out string) []string {
	var bad []string
	for _, msg := range aptMessages(out) {
		if m := unknownPackage.FindStringSubmatch(msg); m != nil {
			bad = append(bad, m[1])
		}
	}
	return bad
}

// quoteApt quotes apt's error and warning lines (the last few of them).
func quoteApt(out string) string {
	lines := aptMessages(out)
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "; apt says:\n    " + strings.Join(lines, "\n    ")
}

func runApt(ctx context.Context, args []string, log io.Writer) error {
	env := run.BaseEnv("DEBIAN_FRONTEND=noninteractive", "PATH="+SystemPath)
	return run.Run(ctx, run.Cmd{Args: append([]string{"apt-get"}, args...), Env: env, Stdout: log, Stderr: log})
}

// startDocker starts the Docker daemon the way this host's init system
// does (systemd when it runs, else the docker.io init script), then waits
// for it to answer.
func startDocker(ctx context.Context, log io.Writer) error {
	env := run.BaseEnv("PATH=" + SystemPath)
	var args []string
	switch {
	case lookPath("systemctl") != "" && exists("/run/systemd/system"):
		args = []string{"systemctl", "start", "docker"}
	case exists("/etc/init.d/docker"):
		args = []string{"/etc/init.d/docker", "start"}
	default:
		return errors.New("no way to start it here (no systemd and no /etc/init.d/docker): run dockerd, or point DOCKER_HOST at a daemon")
	}
	if err := run.Run(ctx, run.Cmd{Args: args, Env: env, Stdout: log, Stderr: log}); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := dockerUp(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
