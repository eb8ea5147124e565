package baseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
)

// Bootstrap describes one root filesystem built by mmdebstrap from a local
// repository holding exactly the given .debs: apt cannot pick anything
// that was not pinned, and nothing is downloaded.
type Bootstrap struct {
	Suite   string    // the suite name the repository claims; "" means bookworm
	Epoch   time.Time // SOURCE_DATE_EPOCH
	Debs    []string  // every .deb apt may install (pinned ones and local ones like the toolchain)
	Include []string  // packages to install besides the Essential: yes ones among Debs
	// ImageSources is the deb822 text written to
	// /etc/apt/sources.list.d/debian.sources in the result, so that apt in
	// the image talks to Debian; "" means SystemImageSources.
	ImageSources string
	WorkDir      string // scratch space (the local repository, the output before it is cached)
	// ChrootDir is where mmdebstrap unpacks the temporary chroot (its
	// TMPDIR). "" means /dev/shm when it has at least 4 GiB free (dpkg is
	// I/O bound: three times faster in memory), else WorkDir.
	ChrootDir string
	CacheDir  string // when set, results are cached under CacheDir/rootfs by a key over all inputs
}

const mmdebstrapHooks = "/usr/share/mmdebstrap/hooks"

// Run builds the root filesystem tarball and returns its path (in the
// cache when CacheDir is set, else in WorkDir).
func (b Bootstrap) Run(ctx context.Context) (string, error) {
	if b.Epoch.IsZero() {
		return "", errors.New("bootstrapping a root filesystem: no epoch: set SOURCE_DATE_EPOCH")
	}
	if len(b.Debs) == 0 {
		return "", errors.New("bootstrapping a root filesystem: no packages given")
	}
	if b.Suite == "" {
		b.Suite = "bookworm"
	}
	if b.ImageSources == "" {
		var err error
		if b.ImageSources, err = SystemImageSources(); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(b.WorkDir, 0o755); err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem: %w", err)
	}
	work, err := os.MkdirTemp(b.WorkDir, "rootfs-")
	if err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem: %w", err)
	}
	defer os.RemoveAll(work)

	repo := filepath.Join(work, "repo")
	index, err := writeRepo(ctx, repo, b.Suite, b.Debs)
	if err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem: %w", err)
	}
	include := append([]string(nil), b.Include...)
	sort.Strings(include)
	for _, name := range include {
		if !index.names[name] {
			return "", fmt.Errorf("bootstrapping a root filesystem: package %s is to be installed but none of the given .debs provides it", name)
		}
	}

	version, err := run.Output(ctx, run.Cmd{Args: []string{"mmdebstrap", "--version"}, Env: run.BaseEnv()})
	if err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem: mmdebstrap is missing (apt-get install mmdebstrap): %w", err)
	}
	key := b.key(strings.TrimSpace(string(version)), index.sums, include)
	out := filepath.Join(work, "rootfs.tar")
	var cached string
	if b.CacheDir != "" {
		cached = filepath.Join(b.CacheDir, "rootfs", key+".tar")
		if _, err := os.Stat(cached); err == nil {
			return cached, nil
		}
	}

	sources := filepath.Join(work, "debian.sources")
	if err := os.WriteFile(sources, []byte(b.ImageSources), 0o644); err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem: %w", err)
	}
	args := []string{
		"mmdebstrap", "--mode=root", "--variant=essential", "--format=tar", "--quiet",
		// The chroot is thrown away after packing: no fsync per file.
		"--dpkgopt=force-unsafe-io",
		"--hook-dir=" + mmdebstrapHooks + "/merged-usr",
		"--hook-dir=" + mmdebstrapHooks + "/file-mirror-automount",
		`--customize-hook=rm -f "$1/etc/apt/sources.list" "$1/etc/resolv.conf" "$1/etc/hostname"`,
		"--customize-hook=upload " + sources + " /etc/apt/sources.list.d/debian.sources",
	}
	if len(include) > 0 {
		args = append(args, "--include="+strings.Join(include, ","))
	}
	args = append(args, b.Suite, out, "deb [trusted=yes] file://"+repo+" ./")
	env := run.BaseEnv(
		"SOURCE_DATE_EPOCH="+strconv.FormatInt(b.Epoch.Unix(), 10),
		"TMPDIR="+chrootDir(b.ChrootDir, work),
	)
	if p, _ := run.Lookup(env, "PATH"); !strings.Contains(p, "/usr/sbin") {
		env = run.Merge(env, "PATH="+p+":/usr/sbin:/sbin")
	}
	if err := run.Run(ctx, run.Cmd{Args: args, Env: env, Dir: work}); err != nil {
		return "", fmt.Errorf("bootstrapping a root filesystem with mmdebstrap (needs root and the mmdebstrap package): %w", err)
	}
	if cached == "" {
		final := filepath.Join(b.WorkDir, "rootfs-"+key[:16]+".tar")
		if err := os.Rename(out, final); err != nil {
			return "", fmt.Errorf("bootstrapping a root filesystem: %w", err)
		}
		return final, nil
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", fmt.Errorf("caching the root filesystem: %w", err)
	}
	if err := os.Rename(out, cached); err != nil {
		return "", fmt.Errorf("caching the root filesystem: %w", err)
	}
	return cached, nil
}

// key names a bootstrap by everything that goes into it.
func (b Bootstrap) key(tool string, debSums, include []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "rootfs v1\ntool %s\nsuite %s\nepoch %d\nsources %q\n", tool, b.Suite, b.Epoch.Unix(), b.ImageSources)
	sums := append([]string(nil), debSums...)
	sort.Strings(sums)
	fmt.Fprintf(h, "debs %s\ninclude %s\n", strings.Join(sums, " "), strings.Join(include, ","))
	return hex.EncodeToString(h.Sum(nil))
}

type repoIndex struct {
	names map[string]bool // package names the repository offers
	sums  []string        // sha256 of every .deb
}

// writeRepo builds a flat, unsigned apt repository (Packages and Release)
// in dir from the given .debs.
func writeRepo(ctx context.Context, dir, suite string, debs []string) (repoIndex, error) {
	idx := repoIndex{names: map[string]bool{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return idx, err
	}
	type stanza struct{ name, text string }
	var stanzas []stanza
	var errs []error
	seenFile := map[string]string{}
	for _, deb := range debs {
		_, sum, err := fsutil.HashFile(deb)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", deb, err))
			continue
		}
		control, err := run.Output(ctx, run.Cmd{Args: []string{"dpkg-deb", "--field", deb}, Env: run.BaseEnv()})
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the control fields of %s: %w", deb, err))
			continue
		}
		paras, err := deb822.Parse(control)
		if err != nil || len(paras) != 1 || paras[0].Get("Package") == "" {
			errs = append(errs, fmt.Errorf("reading the control fields of %s: no Package field (%v)", deb, err))
			continue
		}
		name := paras[0].Get("Package")
		file := sum + ".deb"
		if prev, ok := seenFile[name]; ok {
			errs = append(errs, fmt.Errorf("package %s is given twice (%s and %s)", name, prev, deb))
			continue
		}
		seenFile[name] = deb
		if err := linkOrCopy(deb, filepath.Join(dir, file)); err != nil {
			errs = append(errs, fmt.Errorf("adding %s to the local repository: %w", deb, err))
			continue
		}
		var st strings.Builder
		for _, line := range strings.Split(strings.TrimRight(string(control), "\n"), "\n") {
			k, _, _ := strings.Cut(line, ":")
			switch k {
			case "Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512":
				continue
			}
			st.WriteString(line + "\n")
		}
		fi, err := os.Stat(deb)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(&st, "Filename: ./%s\nSize: %d\nSHA256: %s\n", file, fi.Size(), sum)
		stanzas = append(stanzas, stanza{name, st.String()})
		idx.names[name] = true
		idx.sums = append(idx.sums, sum)
	}
	if len(errs) > 0 {
		return idx, errors.Join(errs...)
	}
	sort.Slice(stanzas, func(i, j int) bool { return stanzas[i].name < stanzas[j].name })
	var pk strings.Builder
	for i, s := range stanzas {
		if i > 0 {
			pk.WriteString("\n")
		}
		pk.WriteString(s.text)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), []byte(pk.String()), 0o644); err != nil {
		return idx, err
	}
	ps := sha256.Sum256([]byte(pk.String()))
	release := fmt.Sprintf("Origin: halvm-release pins\nLabel: halvm-release pins\nSuite: %s\nCodename: %s\nArchitectures: amd64 all\nSHA256:\n %s %d Packages\n",
		suite, suite, hex.EncodeToString(ps[:]), pk.Len())
	return idx, os.WriteFile(filepath.Join(dir, "Release"), []byte(release), 0o644)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// debField reads one control field of a .deb.
func debField(ctx context.Context, deb, field string) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Args: []string{"dpkg-deb", "--field", deb, field}, Env: run.BaseEnv()})
	if err != nil {
		return "", fmt.Errorf("reading %s of %s: %w", field, deb, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("reading %s of %s: the field is empty", field, deb)
	}
	return v, nil
}

func chrootDir(configured, fallback string) string {
	if configured != "" {
		return configured
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && uint64(st.Bavail)*uint64(st.Bsize) >= 4<<30 {
		return "/dev/shm"
	}
	return fallback
}
