package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/nginx"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/verify"
)

// CheckAptInstall is the name of the apt install check of a flavour.
func CheckAptInstall(flavour string) string { return "apt-install-" + flavour }

// RootfsSpec is the clean Debian 12 rootfs the install checks start from:
// the packages' Debian dependencies are preinstalled (cached template), so
// installing needs nothing but the HaLVM repository: no network.
var RootfsSpec = rootfs.Spec{Include: packaging.Depends[packaging.Deb]}

func installChecks(c Config) []verify.Check {
	var out []verify.Check
	for _, fl := range c.Flavours {
		fl := fl
		out = append(out, verify.Check{
			Name: CheckAptInstall(fl), Family: verify.Install, Required: true,
			Doc: "in a clean Debian 12 rootfs, the README's key and halvm.sources setup against the served publication, apt-get install " + fl +
				", halvm-ghc --version, and purge leaves no file behind",
			Needs:   []verify.Prereq{verify.NeedRoot(), verify.NeedCommand("mmdebstrap", "mmdebstrap"), needNginx},
			After:   []string{CheckAptSignatures},
			Timeout: 10 * time.Minute,
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.AptDir, pipeline.KindAptRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return aptInstall(ctx, env, dir, fl)
			},
		})
		out = append(out, dnfInstallCheck(c, fl))
	}
	return out
}

// serveDir serves dir (a publication) over HTTP on 127.0.0.1 until the
// returned stop, as users' hosts serve it: Debian's nginx with its workers
// as the unprivileged www-data (package internal/nginx), so a file or
// directory of the publication that only root can read fails the check.
func serveDir(ctx context.Context, env *verify.Env, dir string) (url string, stop func(), err error) {
	runDir, err := os.MkdirTemp(env.Scratch, "nginx-")
	if err != nil {
		return "", nil, fmt.Errorf("serving %s: %w", dir, err)
	}
	srv, err := nginx.ServeDir(ctx, dir, runDir)
	if err != nil {
		return "", nil, fmt.Errorf("serving %s with nginx (workers as %s): %w", dir, nginx.User, err)
	}
	return srv.URL, func() { srv.Close() }, nil
}

// needNginx is the install checks' web server.
var needNginx = verify.NeedCommand("nginx", "nginx")

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

var urisLine = regexp.MustCompile(`(?m)^URIs: .*$`)

// installedRoot is a clone of the clean Debian 12 rootfs set up as the
// README says (the key at /etc/apt/keyrings/halvm.gpg, halvm.sources)
// against repo served on 127.0.0.1, after apt-get update.
type installedRoot struct {
	root   string
	before []string // the paths after the setup, before installing
	in     func(args ...string) (string, error)
	close  func() error
}

func newInstalledRoot(ctx context.Context, env *verify.Env, repo, name string) (*installedRoot, error) {
	cache := env.CacheDir
	if cache == "" {
		cache = filepath.Join(env.Scratch, "cache")
	}
	tmpl, err := rootfs.PrepareSpec(ctx, filepath.Join(cache, "rootfs"), RootfsSpec)
	if err != nil {
		return nil, fmt.Errorf("preparing the clean Debian 12 rootfs: %w", err)
	}
	root := filepath.Join(env.Scratch, name)
	if err := rootfs.Clone(ctx, tmpl, root); err != nil {
		return nil, err
	}
	url, stop, err := serveDir(ctx, env, repo)
	if err != nil {
		rootfs.Remove(root)
		return nil, err
	}
	r := &installedRoot{root: root}
	r.close = func() error { stop(); return rootfs.Remove(root) }
	r.in = func(args ...string) (string, error) {
		out, err := rootfs.Output(ctx, root, run.Cmd{Args: args})
		if err != nil {
			return string(out), fmt.Errorf("in the rootfs: %w", err)
		}
		return string(out), nil
	}
	if err := r.setup(ctx, url); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *installedRoot) setup(ctx context.Context, url string) error {
	root := r.root
	// Only the HaLVM repository: the Debian sources of the template are
	// set aside (the dependencies are preinstalled), so nothing reaches
	// the network.
	for _, p := range []string{"etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources"} {
		if err := os.Rename(filepath.Join(root, p), filepath.Join(root, p+".offline")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// The README's setup: the key from the repository root to
	// /etc/apt/keyrings/halvm.gpg, halvm.sources to sources.list.d. The
	// one change: URIs names where this check serves the staged
	// publication (it is not live at the published URL yet).
	key, err := httpGet(ctx, url+"/halvm-archive-keyring.gpg")
	if err != nil {
		return fmt.Errorf("fetching the key as users do: %w", err)
	}
	src, err := httpGet(ctx, url+"/halvm.sources")
	if err != nil {
		return fmt.Errorf("fetching halvm.sources as users do: %w", err)
	}
	if !urisLine.Match(src) {
		return fmt.Errorf("halvm.sources has no URIs line:\n%s", src)
	}
	src = urisLine.ReplaceAll(src, []byte("URIs: "+url))
	if err := writeReadable(filepath.Join(root, "etc/apt/keyrings/halvm.gpg"), key); err != nil {
		return err
	}
	if err := writeReadable(filepath.Join(root, "etc/apt/sources.list.d/halvm.sources"), src); err != nil {
		return err
	}
	if r.before, err = rootfs.Paths(root); err != nil {
		return err
	}
	if out, err := r.in("apt-get", "update", "-o", "APT::Update::Error-Mode=any"); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, out)
	}
	return nil
}

func (r *installedRoot) install(flavour string) (version string, err error) {
	if out, err := r.in("apt-get", "install", "-y", "--no-install-recommends", flavour); err != nil {
		return "", aptFailure("apt-get install -y "+flavour, out, err)
	}
	ver, err := r.in("halvm-ghc", "--version")
	if err != nil {
		return "", fmt.Errorf("halvm-ghc --version after apt-get install %s: %w", flavour, err)
	}
	ver = strings.TrimSpace(ver)
	if !strings.Contains(ver, "version 8.0.2") {
		return ver, fmt.Errorf("halvm-ghc --version says %q, want GHC version 8.0.2", ver)
	}
	return ver, nil
}

// maxAptLines bounds how much of a failed apt-get's output a report keeps.
const maxAptLines = 40

// aptFailure is the error of a failed apt-get: its first line (the
// check's Reason) carries apt's own explanation when it gave one (the
// indented lines under "The following packages have unmet dependencies:",
// e.g. "halvm : Depends: x (>= 1) but it is not installable"), the
// following lines the command's error and the end of its output.
func aptFailure(what, out string, err error) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var why []string
	in := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "The following packages have unmet dependencies:"):
			in = true
		case in && strings.HasPrefix(l, " ") && strings.TrimSpace(l) != "":
			if len(why) < 10 {
				why = append(why, strings.Join(strings.Fields(l), " "))
			}
		default:
			in = false
		}
	}
	if len(lines) > maxAptLines {
		lines = append([]string{fmt.Sprintf("(the first %d lines of its output left out)", len(lines)-maxAptLines)}, lines[len(lines)-maxAptLines:]...)
	}
	tail := strings.Join(lines, "\n")
	if len(why) > 0 {
		return fmt.Errorf("%s: unmet dependencies: %s\n%w\n%s", what, strings.Join(why, "; "), err, tail)
	}
	return fmt.Errorf("%s: %w\n%s", what, err, tail)
}

func aptInstall(ctx context.Context, env *verify.Env, repo, flavour string) (ev verify.Evidence, err error) {
	r, err := newInstalledRoot(ctx, env, repo, "root")
	if err != nil {
		return ev, err
	}
	defer func() {
		if cerr := r.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ver, err := r.install(flavour)
	if err != nil {
		return ev, err
	}
	// The evidence: the halvm packages apt installed and every path the
	// flavour installed, all of which the purge then removed.
	installed, err := r.in("dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n")
	if err != nil {
		return ev, fmt.Errorf("dpkg-query -W after apt-get install %s: %w\n%s", flavour, err, installed)
	}
	var pkgs int
	for _, l := range strings.Split(installed, "\n") {
		if strings.HasPrefix(l, "halvm") {
			ev.Details = append(ev.Details, "installed: "+l)
			pkgs++
		}
	}
	files, err := r.in("dpkg", "-L", flavour)
	if err != nil {
		return ev, fmt.Errorf("dpkg -L %s after apt-get install: %w\n%s", flavour, err, files)
	}
	var nfiles int
	for _, l := range strings.Split(files, "\n") {
		if strings.TrimSpace(l) != "" {
			nfiles++
		}
	}
	if pkgs == 0 || nfiles == 0 {
		return ev, fmt.Errorf("after apt-get install %s dpkg lists %d halvm package(s) and %d installed path(s): want both", flavour, pkgs, nfiles)
	}
	if err := r.purge(flavour, "apt-get purge "+flavour, &ev); err != nil {
		return ev, err
	}
	ev.Checked = pkgs + nfiles
	ev.Summary = fmt.Sprintf("apt-get install %s from the publication served by nginx as www-data (signed InRelease, key at /etc/apt/keyrings/halvm.gpg): %d package(s), %d paths; %q; purge left nothing", flavour, pkgs, nfiles, firstLineOf(ver))
	return ev, nil
}

// purge runs apt-get purge of the flavour and requires the rootfs to hold
// exactly the paths it held before installing: what differs goes to ev's
// details, and the error says after what (after).
func (r *installedRoot) purge(flavour, after string, ev *verify.Evidence) error {
	if out, err := r.in("apt-get", "purge", "-y", flavour); err != nil {
		return fmt.Errorf("apt-get purge -y %s: %w\n%s", flavour, err, out)
	}
	now, err := rootfs.Paths(r.root)
	if err != nil {
		return err
	}
	added, removed := rootfs.DiffPaths(r.before, now)
	if len(added)+len(removed) > 0 {
		ev.Details = append(ev.Details, prefixed("left behind: ", added)...)
		ev.Details = append(ev.Details, prefixed("removed: ", removed)...)
		return fmt.Errorf("after %s the rootfs differs: %d path(s) left behind, %d removed", after, len(added), len(removed))
	}
	return nil
}

func prefixed(prefix string, list []string) []string {
	var out []string
	for _, s := range list {
		out = append(out, prefix+s)
	}
	return out
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// CheckDnfInstall is the name of the dnf install check of a flavour.
func CheckDnfInstall(flavour string) string { return "dnf-install-" + flavour }

func dnfInstallCheck(c Config, fl string) verify.Check {
	return verify.Check{
		Name: CheckDnfInstall(fl), Family: verify.Install, Required: true,
		Doc: "dnf with the published halvm.repo (gpgcheck=1, repo_gpgcheck=1) resolves " + fl + " from the served publication; " +
			"the rpm, checked against the imported key, installs with rpm --nodeps into a clean root, runs, and erases without leftovers",
		Needs: []verify.Prereq{verify.NeedRoot(), verify.NeedCommand("mmdebstrap", "mmdebstrap"),
			verify.NeedCommand("dnf", "dnf"), verify.NeedCommand("rpm", "rpm", "rpmkeys"), needNginx},
		After:   []string{CheckRPMSignatures, CheckDnfRepomdSig},
		Timeout: 10 * time.Minute,
		Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
			dir, err := repoDir(env, c.DnfDir, pipeline.KindDnfRepo)
			if err != nil {
				return verify.Evidence{}, err
			}
			return dnfInstall(ctx, env, dir, fl)
		},
	}
}

var baseurlLine = regexp.MustCompile(`(?m)^baseurl=.*$`)
var gpgkeyLine = regexp.MustCompile(`(?m)^gpgkey=.*$`)

// dnfInstall: dnf's part is what it can do on a Debian host offline:
// verify repomd.xml.asc (repo_gpgcheck=1) with the key from gpgkey= and
// resolve the package's location. The packages Require Fedora packages
// (gcc, xen-devel, ...) that no Debian root has, so the install itself is
// rpm -i --nodeps of the rpm dnf resolved, after rpm -K against the root's
// rpmdb holding only the imported key: the narrowest workaround.
func dnfInstall(ctx context.Context, env *verify.Env, repo, flavour string) (ev verify.Evidence, err error) {
	cache := env.CacheDir
	if cache == "" {
		cache = filepath.Join(env.Scratch, "cache")
	}
	tmpl, err := rootfs.PrepareSpec(ctx, filepath.Join(cache, "rootfs"), RootfsSpec)
	if err != nil {
		return ev, fmt.Errorf("preparing the clean Debian 12 rootfs: %w", err)
	}
	root := filepath.Join(env.Scratch, "root")
	if err := rootfs.Clone(ctx, tmpl, root); err != nil {
		return ev, err
	}
	defer func() {
		if rerr := rootfs.Remove(root); rerr != nil && err == nil {
			err = rerr
		}
	}()
	url, stop, err := serveDir(ctx, env, repo)
	if err != nil {
		return ev, err
	}
	defer stop()
	repoFile, err := httpGet(ctx, url+"/halvm.repo")
	if err != nil {
		return ev, fmt.Errorf("fetching halvm.repo as users do: %w", err)
	}
	for _, want := range []string{"gpgcheck=1", "repo_gpgcheck=1"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).Match(repoFile) {
			return ev, fmt.Errorf("halvm.repo does not set %s:\n%s", want, repoFile)
		}
	}
	if !baseurlLine.Match(repoFile) || !gpgkeyLine.Match(repoFile) {
		return ev, fmt.Errorf("halvm.repo lacks baseurl= or gpgkey=:\n%s", repoFile)
	}
	// The one change: where this check serves the staged publication.
	repoFile = baseurlLine.ReplaceAll(repoFile, []byte("baseurl="+url+"/"))
	repoFile = gpgkeyLine.ReplaceAll(repoFile, []byte("gpgkey="+url+"/RPM-GPG-KEY-halvm"))
	reposd := filepath.Join(env.Scratch, "yum.repos.d")
	if err := os.MkdirAll(reposd, 0o755); err != nil {
		return ev, err
	}
	if err := os.WriteFile(filepath.Join(reposd, "halvm.repo"), repoFile, 0o644); err != nil {
		return ev, err
	}
	renv := run.BaseEnv()
	out, err := run.Output(ctx, run.Cmd{Args: []string{"dnf", "-y", "-q", "--installroot", root, "--setopt=reposdir=" + reposd,
		"--releasever", "40", "--disablerepo=*", "--enablerepo=halvm", "repoquery", "--location", flavour}, Env: renv})
	if err != nil {
		return ev, fmt.Errorf("dnf (repo_gpgcheck=1) resolving %s: %w", flavour, err)
	}
	var loc string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, url+"/") && strings.HasSuffix(l, ".rpm") {
			loc = l
		}
	}
	if loc == "" {
		return ev, fmt.Errorf("dnf found no %s in the repository (repoquery --location printed %q)", flavour, strings.TrimSpace(string(out)))
	}
	ev.Checked++
	pkg, err := httpGet(ctx, loc)
	if err != nil {
		return ev, err
	}
	rpmFile := filepath.Join(env.Scratch, filepath.Base(loc))
	if err := os.WriteFile(rpmFile, pkg, 0o644); err != nil {
		return ev, err
	}
	key, err := httpGet(ctx, url+"/RPM-GPG-KEY-halvm")
	if err != nil {
		return ev, err
	}
	keyFile := filepath.Join(env.Scratch, "RPM-GPG-KEY-halvm")
	if err := os.WriteFile(keyFile, key, 0o644); err != nil {
		return ev, err
	}
	rpmCmd := func(args ...string) (string, error) {
		out, err := run.Output(ctx, run.Cmd{Args: args, Env: renv})
		if err != nil {
			return string(out), fmt.Errorf("%s: %w", strings.Join(args[:2], " "), err)
		}
		return string(out), nil
	}
	if _, err := rpmCmd("rpm", "--root", root, "--initdb"); err != nil {
		return ev, err
	}
	if _, err := rpmCmd("rpmkeys", "--root", root, "--import", keyFile); err != nil {
		return ev, err
	}
	k, err := rpmCmd("rpm", "--root", root, "-K", rpmFile)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(k), "digests signatures OK") {
		return ev, fmt.Errorf("rpm -K %s against the imported key: %q %v", filepath.Base(loc), strings.TrimSpace(k), err)
	}
	ev.Checked++
	// Fedora's filesystem package owns these; the packages rightly do not.
	for _, d := range []string{"etc/pki/rpm-gpg", "usr/share/licenses"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return ev, err
		}
	}
	before, err := rootfs.Paths(root)
	if err != nil {
		return ev, err
	}
	if out, err := rpmCmd("rpm", "--root", root, "-i", "--nodeps", rpmFile); err != nil {
		return ev, fmt.Errorf("%w\n%s", err, out)
	}
	ver, err := rootfs.Output(ctx, root, run.Cmd{Args: []string{"halvm-ghc", "--version"}})
	if err != nil || !strings.Contains(string(ver), "version 8.0.2") {
		return ev, fmt.Errorf("halvm-ghc --version after rpm -i %s: %q %v", filepath.Base(loc), strings.TrimSpace(string(ver)), err)
	}
	ev.Checked++
	if out, err := rpmCmd("rpm", "--root", root, "-e", flavour); err != nil {
		return ev, fmt.Errorf("%w\n%s", err, out)
	}
	after, err := rootfs.Paths(root)
	if err != nil {
		return ev, err
	}
	added, removed := rootfs.DiffPaths(before, after)
	if len(added)+len(removed) > 0 {
		ev.Details = append(ev.Details, prefixed("left behind: ", added)...)
		ev.Details = append(ev.Details, prefixed("removed: ", removed)...)
		return ev, fmt.Errorf("after rpm -e %s the root differs: %d path(s) left behind, %d removed", flavour, len(added), len(removed))
	}
	ev.Checked++
	ev.Summary = fmt.Sprintf("dnf (repo_gpgcheck=1) resolved %s from the publication served by nginx as www-data; rpm -K OK against the imported key; rpm -i --nodeps (Fedora dependencies do not exist on Debian), %q, rpm -e left nothing",
		filepath.Base(loc), firstLineOf(strings.TrimSpace(string(ver))))
	return ev, nil
}

// writeReadable writes a world-readable file (apt reads keys and sources
// as the unprivileged _apt user) in a world-readable directory, whatever
// the process umask: the reproducibility rebuild, running at the same
// time, sets umask 077 for the whole process.
func writeReadable(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}
