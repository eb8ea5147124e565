package toolchain

import (
	"context"
	"fmt"
	"strings"

	"github.com/halvm/halvm-release/internal/epoch"
	"github.com/halvm/halvm-release/internal/run"
)

// SystemPath is the host part of every step's PATH, after the pinned
// bootstrap and tool prefixes.
const SystemPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// Host is what the build learns about the build machine before it starts.
type Host struct {
	// FilePrefixMap: the C compiler accepts -ffile-prefix-map.
	FilePrefixMap bool
	// Fingerprint identifies the host tools that can change a step's output
	// (compiler, binutils, make, autoconf, perl, Xen headers): part of every
	// build step's cache key.
	Fingerprint string
}

// ProbeHost asks the host's tools for their versions.
func ProbeHost(ctx context.Context) Host {
	env := run.Merge(nil, "PATH="+SystemPath, "LC_ALL=C", "TZ=UTC")
	var fp []string
	for _, args := range [][]string{
		{"gcc", "--version"}, {"ld", "--version"}, {"make", "--version"}, {"autoconf", "--version"},
		{"perl", "-e", "print $^V"}, {"git", "--version"},
		{"dpkg-query", "-W", "-f", "${Package} ${Version}\n", "libxen-dev", "libc6-dev", "libgmp-dev", "libncurses-dev", "zlib1g-dev"},
	} {
		out, err := run.Output(ctx, run.Cmd{Args: args, Env: env})
		line := strings.TrimSpace(string(out))
		if args[0] != "dpkg-query" {
			line, _, _ = strings.Cut(line, "\n")
		}
		if err != nil && line == "" {
			line = "unavailable"
		}
		fp = append(fp, args[0]+": "+line)
	}
	h := Host{Fingerprint: strings.Join(fp, "\n")}
	err := run.Run(ctx, run.Cmd{Args: []string{"gcc", "-ffile-prefix-map=/a=/b", "-E", "-x", "c", "/dev/null"}, Env: env})
	h.FilePrefixMap = err == nil
	return h
}

// SourceMapPrefix is what -ffile-prefix-map turns the build dir into.
func SourceMapPrefix(version string) string { return "/usr/src/halvm-" + version }

// buildEnv is the complete environment of every build step (an allowlist:
// nothing of this process's environment is inherited): PATH with the
// pinned bootstrap compiler and tool prefix first, LC_ALL=C, TZ=UTC,
// SOURCE_DATE_EPOCH, a private HOME and TMPDIR below the build dir, git
// kept away from any user or system configuration, and CFLAGS mapping the
// build dir away when the compiler supports it.
func (r *Recipe) buildEnv() []string {
	l := r.Layout
	env := []string{
		"PATH=" + l.BootstrapPrefix() + "/bin:" + l.ToolPrefix() + "/bin:" + SystemPath,
		"HOME=" + l.Home(),
		"TMPDIR=" + l.Tmp(),
		"LC_ALL=C",
		"TZ=UTC",
		"SHELL=/bin/sh",
		epoch.Var + "=" + epoch.Format(r.Config.Epoch),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_DATE=" + fmt.Sprintf("%d +0000", r.Config.Epoch.Unix()),
		"GIT_COMMITTER_DATE=" + fmt.Sprintf("%d +0000", r.Config.Epoch.Unix()),
	}
	if r.Host.FilePrefixMap {
		env = append(env, "CFLAGS=-O2 -ffile-prefix-map="+l.Root+"="+SourceMapPrefix(r.Lock.Release.Version))
	}
	return run.Merge(nil, env...)
}

// umaskWrapper runs a command with umask 022 whatever this process's umask.
var umaskWrapper = []string{"/bin/sh", "-c", `umask 022 && exec "$@"`, "halvm-step"}
