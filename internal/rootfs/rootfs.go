// Package rootfs owns the clean Debian 12 (bookworm) root filesystems that
// install tests run in: one template built with mmdebstrap from the Debian
// mirror this machine is configured with, cached under a key derived from
// every input, cloned afresh for each test, and a chroot runner that mounts
// /proc (and a private /dev/pts) for the command and always unmounts.
//
// Everything here needs root.
package rootfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/run"
)

// Suite is the Debian release of every rootfs.
const Suite = "bookworm"

// Spec says what to build. The zero Spec is the default: variant apt
// (essential + apt, gpgv), no extra packages.
type Spec struct {
	Variant string   // mmdebstrap variant: "apt" (default) or "minbase"
	Include []string // extra packages (sorted into the cache key)
	Mirror  string   // Debian mirror URL; "" reads it from /etc/apt/sources.list{,.d}
}

// format is bumped whenever the way a template is made changes.
const format = "rootfs-v1"

// Prepare returns the directory of a cached template for the default Spec,
// building it on first use (about 20 seconds and 50 MB of downloads).
func Prepare(ctx context.Context, cacheDir string) (string, error) {
	return PrepareSpec(ctx, cacheDir, Spec{})
}

// PrepareSpec is Prepare for a given Spec. Concurrent callers (test
// packages run in parallel) wait for one build through a lock file.
func PrepareSpec(ctx context.Context, cacheDir string, spec Spec) (string, error) {
	if spec.Variant == "" {
		spec.Variant = "apt"
	}
	if spec.Variant != "apt" && spec.Variant != "minbase" {
		return "", fmt.Errorf("preparing rootfs: variant %q: want apt or minbase", spec.Variant)
	}
	if spec.Mirror == "" {
		m, err := SystemMirror()
		if err != nil {
			return "", fmt.Errorf("preparing rootfs: %w: %w", ErrMirrorUnreachable, err)
		}
		spec.Mirror = m
	}
	env := run.BaseEnv()
	ver, err := run.Output(ctx, run.Cmd{Args: []string{"mmdebstrap", "--version"}, Env: env})
	if err != nil {
		return "", fmt.Errorf("preparing rootfs: %w (install it: apt-get install mmdebstrap)", err)
	}
	inc := append([]string(nil), spec.Include...)
	sort.Strings(inc)
	key := strings.Join([]string{format, Suite, "amd64", spec.Variant, spec.Mirror, strings.Join(inc, ","), strings.TrimSpace(string(ver))}, "\n")
	sum := sha256.Sum256([]byte(key))
	id := hex.EncodeToString(sum[:8])

	base := filepath.Join(cacheDir, "rootfs")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("preparing rootfs: %w", err)
	}
	template := filepath.Join(base, id)
	done := template + ".done"
	if _, err := os.Stat(done); err == nil {
		return template, nil
	}
	unlock, err := lock(ctx, template+".lock")
	if err != nil {
		return "", fmt.Errorf("preparing rootfs: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return template, nil // built while we waited
	}
	_ = os.RemoveAll(template) // a build that died half-way
	tmp := template + ".tmp"
	_ = os.RemoveAll(tmp)
	args := []string{"mmdebstrap", "--mode=root", "--variant=" + spec.Variant, "--architectures=amd64",
		// Documentation is dead weight in a test rootfs and slows clones.
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
	}
	if len(inc) > 0 {
		args = append(args, "--include="+strings.Join(inc, ","))
	}
	args = append(args, Suite, tmp, spec.Mirror)
	if err := run.Run(ctx, run.Cmd{Args: args, Env: env}); err != nil {
		_ = os.RemoveAll(tmp)
		if fetchFailed(err) {
			err = fmt.Errorf("%w: %w", ErrMirrorUnreachable, err)
		}
		return "", fmt.Errorf("preparing rootfs: building %s with mmdebstrap from %s: %w", Suite, spec.Mirror, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "etc", "halvm-rootfs-key"), []byte(key+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("preparing rootfs: %w", err)
	}
	if err := os.Rename(tmp, template); err != nil {
		return "", fmt.Errorf("preparing rootfs: %w", err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("preparing rootfs: %w", err)
	}
	return template, nil
}

// lock takes an exclusive flock on path, waiting until ctx ends.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Clone copies template into dst (absent or empty) with owners, modes,
// device nodes and links intact. It takes about a second.
func Clone(ctx context.Context, template, dst string) error {
	if _, err := os.Stat(filepath.Join(template, "etc", "halvm-rootfs-key")); err != nil {
		return fmt.Errorf("cloning rootfs: %s is not a prepared template (use Prepare)", template)
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return fmt.Errorf("cloning rootfs: %s is not empty", dst)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("cloning rootfs: %w", err)
	}
	if err := run.Run(ctx, run.Cmd{Args: []string{"cp", "-a", "--", template + "/.", dst + "/"}, Env: run.BaseEnv()}); err != nil {
		return fmt.Errorf("cloning rootfs %s: %w", template, err)
	}
	return nil
}

// Remove deletes a clone after unmounting anything still mounted under it;
// it refuses to delete through a mount.
func Remove(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	for _, m := range mountsUnder(abs) {
		if err := unmount(m); err != nil {
			return fmt.Errorf("removing rootfs %s: %w", root, err)
		}
	}
	if left := mountsUnder(abs); len(left) > 0 {
		return fmt.Errorf("removing rootfs %s: still mounted: %s", root, strings.Join(left, ", "))
	}
	return os.RemoveAll(abs)
}

// ChrootEnv is the environment a command in the rootfs gets by default.
func ChrootEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LC_ALL=C", "TZ=UTC", "DEBIAN_FRONTEND=noninteractive",
	}
}

// Run runs c.Args inside root with chroot, with /proc and a private
// /dev/pts mounted for the duration; they are unmounted on every path out,
// failure and cancellation included. c.Env is merged over ChrootEnv, c.Dir
// is ignored (the command starts in /). Do not Run in the same root
// concurrently.
func Run(ctx context.Context, root string, c run.Cmd) (err error) {
	if len(c.Args) == 0 {
		return errors.New("rootfs: no command")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(abs, "usr", "bin")); err != nil {
		return fmt.Errorf("rootfs %s: not a root filesystem", root)
	}
	var mounted []string
	defer func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			if uerr := unmount(mounted[i]); uerr != nil && err == nil {
				err = fmt.Errorf("rootfs: %w", uerr)
			}
		}
	}()
	type mnt struct{ src, dir, fstype, data string }
	for _, m := range []mnt{
		{"proc", "proc", "proc", ""},
		{"devpts", "dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620"},
	} {
		dir := filepath.Join(abs, m.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, dir, m.fstype, syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, m.data); err != nil {
			return fmt.Errorf("rootfs: mounting %s on %s: %w", m.fstype, dir, err)
		}
		mounted = append(mounted, dir)
	}
	c.Env = run.Merge(ChrootEnv(), c.Env...)
	c.Args = append([]string{"/usr/sbin/chroot", abs}, c.Args...)
	c.Dir = ""
	return run.Run(ctx, c)
}

// Output is Run returning the command's standard output.
func Output(ctx context.Context, root string, c run.Cmd) ([]byte, error) {
	var out strings.Builder
	if c.Stdout == nil {
		c.Stdout = &out
	}
	err := Run(ctx, root, c)
	return []byte(out.String()), err
}

func unmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
			return fmt.Errorf("unmounting %s: %v (lazy: %v)", dir, err, err2)
		}
	}
	return nil
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// ErrMirrorUnreachable marks a rootfs that could not be built for want of
// a Debian mirror: none configured, or apt could not fetch from it (name
// resolution, connection, missing index). It is a missing prerequisite of
// the machine, not a fault of the build.
var ErrMirrorUnreachable = errors.New("the Debian mirror is unreachable")

// fetchMessages are what apt and mmdebstrap say when they cannot fetch.
var fetchMessages = []string{"Failed to fetch", "Temporary failure resolving", "Could not resolve", "Could not connect", "Unable to connect", "Connection timed out", "Connection refused", "Network is unreachable", "Some index files failed to download"}

// fetchFailed reports whether a failed run says it could not fetch.
func fetchFailed(err error) bool {
	var re *run.Error
	if !errors.As(err, &re) {
		return false
	}
	for _, m := range fetchMessages {
		if strings.Contains(re.Stderr, m) {
			return true
		}
	}
	return false
}

// SystemMirror returns the Debian mirror this machine's apt uses for
// bookworm (from /etc/apt/sources.list and sources.list.d/*.{list,sources}).
func SystemMirror() (string, error) {
	return MirrorFrom(os.DirFS("/"))
}

// MirrorFrom finds the first enabled "deb" source for Suite with
// component main, in apt's reading order.
func MirrorFrom(root fs.FS) (string, error) {
	conf, err := fs.Sub(root, "etc/apt")
	if err != nil {
		return "", err
	}
	entries, err := deb822.ReadSources(conf)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Has("deb") && slices.Contains(e.Suites, Suite) && slices.Contains(e.Components, "main") && len(e.URIs) > 0 {
			return strings.TrimRight(e.URIs[0], "/"), nil
		}
	}
	return "", fmt.Errorf("no enabled \"deb\" source for %s main in /etc/apt/sources.list or sources.list.d: add the Debian mirror (e.g. a debian.sources with Suites: %s)", Suite, Suite)
}
