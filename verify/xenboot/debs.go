package xenboot

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
)

// kernelMeta is the Debian metapackage whose dependency names the current
// kernel image package (linux-image-6.1.0-N-amd64).
const kernelMeta = "linux-image-amd64"

// Packages are the Debian 12 packages a machine is assembled from
// (kernelMeta stands for the kernel package it depends on).
var Packages = []string{
	"xen-hypervisor-4.17-amd64",
	kernelMeta,
	"xen-utils-4.17",
	"libxenmisc4.17", "libxencall1", "libxenevtchn1", "libxenforeignmemory1", "libxengnttab1",
	"libxenstore4", "libxentoollog1", "libxendevicemodel1", "libxenhypfs1", "libxentoolcore1",
	"libyajl2", "libc6", "libgcc-s1", "libuuid1", "zlib1g", "liblzma5", "libzstd1",
	"busybox-static",
}

// Package is one resolved Debian binary package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256"`
}

// file is the cache file name of p, like apt's (an epoch colon as %3a).
func (p Package) file() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// aptEnv is the environment of apt-cache and apt-get.
func aptEnv() []string { return run.BaseEnv("DEBIAN_FRONTEND=noninteractive") }

// aptShow returns the candidate stanza of each package that apt knows.
func aptShow(ctx context.Context, names []string) (map[string]map[string]string, error) {
	out, err := run.Output(ctx, run.Cmd{
		Args: append([]string{"apt-cache", "show", "--no-all-versions"}, names...),
		Env:  aptEnv(),
	})
	stanzas := map[string]map[string]string{}
	for _, block := range strings.Split(string(out), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(block, "\n") {
			if line == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				fields[last] += "\n" + line
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
		if n := fields["Package"]; n != "" {
			if _, seen := stanzas[n]; !seen {
				stanzas[n] = fields
			}
		}
	}
	if len(stanzas) == 0 && err != nil {
		return nil, err
	}
	return stanzas, nil
}

// resolveOnline asks apt for the candidate versions of Packages, with the
// kernel metapackage replaced by the image package it depends on.
func resolveOnline(ctx context.Context) ([]Package, error) {
	show, err := aptShow(ctx, Packages)
	if err != nil {
		return nil, err
	}
	meta, ok := show[kernelMeta]
	if !ok {
		return nil, fmt.Errorf("apt knows no %s", kernelMeta)
	}
	kernel := ""
	for _, dep := range strings.Split(meta["Depends"], ",") {
		name := strings.Fields(strings.TrimSpace(dep))
		if len(name) > 0 && strings.HasPrefix(name[0], "linux-image-") {
			kernel = name[0]
			break
		}
	}
	if kernel == "" {
		return nil, fmt.Errorf("%s depends on no linux-image package (Depends: %q)", kernelMeta, meta["Depends"])
	}
	ks, err := aptShow(ctx, []string{kernel})
	if err != nil {
		return nil, err
	}
	show[kernel] = ks[kernel]
	var pkgs, missing []string
	var out []Package
	for _, n := range Packages {
		if n == kernelMeta {
			n = kernel
		}
		pkgs = append(pkgs, n)
		s, ok := show[n]
		if !ok || s["Version"] == "" || len(s["SHA256"]) != 64 {
			missing = append(missing, n)
			continue
		}
		out = append(out, Package{Name: n, Version: s["Version"], Arch: s["Architecture"], SHA256: s["SHA256"]})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("apt has no candidate for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// resolvedFile records the last online resolution, for offline runs.
const resolvedFile = "resolved.json"

// resolve decides the exact packages: apt's candidates when apt can tell,
// else the last resolution recorded in the cache.
func resolve(ctx context.Context, cacheDir string) ([]Package, error) {
	pkgs, onlineErr := resolveOnline(ctx)
	if onlineErr == nil {
		data, _ := json.MarshalIndent(pkgs, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(cacheDir, resolvedFile), append(data, '\n'), 0o644); err != nil {
			return nil, err
		}
		return pkgs, nil
	}
	data, err := os.ReadFile(filepath.Join(cacheDir, resolvedFile))
	if err != nil {
		return nil, fmt.Errorf("resolving Debian packages: apt cannot tell (%v) and the cache %s has no earlier resolution: "+
			"run apt-get update with access to the Debian mirror (packages needed: %s)", onlineErr, cacheDir, strings.Join(Packages, " "))
	}
	if err := json.Unmarshal(data, &pkgs); err != nil {
		return nil, fmt.Errorf("reading %s: %w (delete it and run with apt available)", filepath.Join(cacheDir, resolvedFile), err)
	}
	return pkgs, nil
}

// fetch makes sure every package is in cacheDir/debs with its sha256,
// downloading what is missing with one apt-get download.
func fetch(ctx context.Context, cacheDir string, pkgs []Package) error {
	debs := filepath.Join(cacheDir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	var want []Package
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(debs, p.file())); err != nil {
			want = append(want, p)
		}
	}
	if len(want) == 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(debs, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt drops privileges to _apt for downloads; let it write here.
	_ = os.Chmod(tmp, 0o777)
	args := []string{"apt-get", "download", "-q"}
	for _, p := range want {
		args = append(args, p.Name+":"+p.Arch+"="+p.Version)
	}
	dlErr := run.Run(ctx, run.Cmd{Args: args, Dir: tmp, Env: aptEnv()})
	var problems []string
	for _, p := range want {
		got := filepath.Join(tmp, p.file())
		_, sum, err := fsutil.HashFile(got)
		if err != nil {
			problems = append(problems, p.Name+"="+p.Version)
			continue
		}
		if sum != p.SHA256 {
			problems = append(problems, fmt.Sprintf("%s=%s (sha256 %s, apt says %s)", p.Name, p.Version, sum, p.SHA256))
			continue
		}
		if err := os.Rename(got, filepath.Join(debs, p.file())); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		msg := fmt.Sprintf("fetching Debian packages into %s: missing %s", debs, strings.Join(problems, ", "))
		if dlErr != nil {
			msg += fmt.Sprintf(" (apt-get download: %v)", dlErr)
		}
		return errors.New(msg + ": run apt-get update with access to the Debian mirror, or put the .deb files there")
	}
	return nil
}

// extractDeb writes the members of a .deb's data archive that keep selects
// (regular files and symlinks; paths like "usr/lib/x") under root, reading
// the archive through dpkg-deb --fsys-tarfile.
func extractDeb(ctx context.Context, deb, root string, keep func(name string) bool) ([]string, error) {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "--fsys-tarfile", deb}, Stdout: pw, Env: run.BaseEnv()})
		pw.CloseWithError(err)
		errc <- err
	}()
	var got []string
	tr := tar.NewReader(bufio.NewReaderSize(pr, 1<<20))
	var readErr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		name := strings.TrimPrefix(filepath.Clean("/"+h.Name), "/")
		if name == "" || !keep(name) {
			continue
		}
		target := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			readErr = err
			break
		}
		switch h.Typeflag {
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm()|0o200)
			if err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				readErr = err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			readErr = os.Symlink(h.Linkname, target)
		case tar.TypeLink:
			_ = os.Remove(target)
			readErr = os.Link(filepath.Join(root, strings.TrimPrefix(filepath.Clean("/"+h.Linkname), "/")), target)
		default:
			continue
		}
		if readErr != nil {
			break
		}
		got = append(got, name)
	}
	_, _ = io.Copy(io.Discard, pr)
	runErr := <-errc
	if runErr != nil {
		return nil, fmt.Errorf("extracting %s: %w", filepath.Base(deb), runErr)
	}
	if readErr != nil {
		return nil, fmt.Errorf("extracting %s: %w", filepath.Base(deb), readErr)
	}
	sort.Strings(got)
	return got, nil
}
