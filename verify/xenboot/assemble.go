package xenboot

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

//go:embed init.sh
var initScript []byte

// xenModules are the dom0 kernel modules the tools need, in insmod order
// (xenfs needs xen-privcmd).
var xenModules = []string{"xen-privcmd", "xen-evtchn", "xen-gntdev", "xen-gntalloc", "xenfs"}

// xenToolsDir is where xen-utils-4.17 keeps its programs; libxl runs
// xenconsole from there, so they keep that path in the initramfs.
const xenToolsDir = "usr/lib/xen-4.17/bin"

// dom0Tools go into the initramfs; hostTools are run on the host.
var (
	dom0Tools = []string{"xl", "xenstored", "xenconsoled", "xenconsole", "xen-init-dom0"}
	hostTools = []string{"readnotes"}
)

// libDirs are searched for shared libraries (DT_NEEDED), after DT_RUNPATH.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64"}

// alwaysLibs are loaded with dlopen, which DT_NEEDED does not show:
// without libgcc_s, xl create -c aborts in pthread_cancel.
var alwaysLibs = []string{"libgcc_s.so.1"}

// wanted selects what is extracted from the packages.
func wanted(name string) bool {
	dir, base := path.Dir(name), path.Base(name)
	switch {
	case dir == "boot":
		return strings.HasPrefix(base, "vmlinuz-") ||
			(strings.HasPrefix(base, "xen-") && strings.HasSuffix(base, "-amd64.gz"))
	case strings.HasPrefix(name, "lib/modules/") && strings.Contains(name, "/kernel/drivers/xen/"):
		return slices.Contains(xenModules, strings.TrimSuffix(base, ".ko"))
	case dir == xenToolsDir:
		return slices.Contains(dom0Tools, base) || slices.Contains(hostTools, base)
	case name == "bin/busybox":
		return true
	case slices.Contains(libDirs, dir):
		return strings.Contains(base, ".so")
	}
	return false
}

// assemble builds a machine's files into out from the cached packages:
// xen (gunzipped), vmlinux, dom0.cpio.gz and tools/ (readnotes).
func assemble(ctx context.Context, cacheDir string, pkgs []Package, out string) error {
	stage, err := os.MkdirTemp(cacheDir, ".stage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for _, p := range pkgs {
		if _, err := extractDeb(ctx, filepath.Join(cacheDir, "debs", p.file()), stage, wanted); err != nil {
			return err
		}
	}
	var problems []string
	one := func(pattern, what string) string {
		m, _ := filepath.Glob(filepath.Join(stage, pattern))
		if len(m) != 1 {
			problems = append(problems, fmt.Sprintf("want one %s (%s), found %d", what, pattern, len(m)))
			return ""
		}
		return m[0]
	}
	xenGz := one("boot/xen-*-amd64.gz", "Xen hypervisor")
	bz := one("boot/vmlinuz-*", "kernel image")
	modules := map[string]string{}
	for _, m := range xenModules {
		var found []string
		for _, pat := range []string{"lib/modules/*/kernel/drivers/xen/" + m + ".ko", "lib/modules/*/kernel/drivers/xen/*/" + m + ".ko"} {
			g, _ := filepath.Glob(filepath.Join(stage, pat))
			found = append(found, g...)
		}
		if len(found) != 1 {
			problems = append(problems, fmt.Sprintf("want one module %s.ko under lib/modules/*/kernel/drivers/xen, found %d", m, len(found)))
			continue
		}
		modules[m] = found[0]
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("assembling the Xen machine: %s", strings.Join(problems, "; "))
	}

	// Xen, gunzipped: QEMU's -kernel loads the multiboot ELF.
	if err := gunzipFile(xenGz, filepath.Join(out, "xen")); err != nil {
		return fmt.Errorf("assembling the Xen machine: %w", err)
	}
	img, err := os.ReadFile(bz)
	if err != nil {
		return err
	}
	var vmlinux bytes.Buffer
	if err := extractVmlinux(ctx, img, &vmlinux); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "vmlinux"), vmlinux.Bytes(), 0o644); err != nil {
		return err
	}

	// The base dom0 initramfs.
	entries := []cpioEntry{
		{Name: "init", Mode: 0o755, Data: initScript},
		{Name: "dev/console", Mode: fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "etc/xen/xl.conf", Mode: 0o644, Data: []byte("# xenboot: defaults\n")},
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root", "sbin", "usr/bin", "usr/sbin", "guest"} {
		entries = append(entries, cpioEntry{Name: d, Mode: fs.ModeDir | 0o755})
	}
	for _, m := range xenModules {
		data, err := os.ReadFile(modules[m])
		if err != nil {
			return err
		}
		entries = append(entries, cpioEntry{Name: "lib/modules/xen/" + m + ".ko", Mode: 0o644, Data: data})
	}
	bins := []string{"bin/busybox"}
	for _, t := range dom0Tools {
		bins = append(bins, xenToolsDir+"/"+t)
	}
	files, err := closure(stage, bins, alwaysLibs)
	if err != nil {
		return fmt.Errorf("assembling the dom0 initramfs: %w", err)
	}
	for _, f := range files {
		e, err := stagedEntry(stage, f)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	var initrd bytes.Buffer
	if err := writeCPIOGzip(&initrd, entries); err != nil {
		return fmt.Errorf("assembling the dom0 initramfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "dom0.cpio.gz"), initrd.Bytes(), 0o644); err != nil {
		return err
	}

	// Host tools, with the packaged C library to run them with.
	var hostBins []string
	for _, t := range hostTools {
		hostBins = append(hostBins, xenToolsDir+"/"+t)
	}
	files, err = closure(stage, hostBins, nil)
	if err != nil {
		return fmt.Errorf("assembling the host tools: %w", err)
	}
	for _, f := range files {
		if err := copyStaged(stage, f, filepath.Join(out, "tools")); err != nil {
			return err
		}
	}
	return nil
}

func gunzipFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("gunzipping %s: %w", filepath.Base(src), err)
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, zr); err != nil {
		return fmt.Errorf("gunzipping %s: %w", filepath.Base(src), err)
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// closure returns the files (root-relative, symlinks included) that the
// programs bins need to run: themselves, their ELF interpreter and the
// transitive DT_NEEDED libraries (plus extra), looked up in DT_RUNPATH and
// libDirs inside root. It reports every missing library at once.
func closure(root string, bins, extra []string) ([]string, error) {
	set := map[string]bool{}
	var missing []string
	var queue []string
	for _, b := range bins {
		real, err := follow(root, b, set)
		if err != nil {
			missing = append(missing, b)
			continue
		}
		queue = append(queue, real)
	}
	findLib := func(lib string, runpath []string) (string, bool) {
		for _, d := range append(runpath, libDirs...) {
			p := path.Join(d, lib)
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				real, err := follow(root, p, set)
				return real, err == nil
			}
		}
		return "", false
	}
	for _, lib := range extra {
		real, ok := findLib(lib, nil)
		if !ok {
			missing = append(missing, lib)
			continue
		}
		queue = append(queue, real)
	}
	done := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if done[p] {
			continue
		}
		done[p] = true
		f, err := elf.Open(filepath.Join(root, p))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		needed, _ := f.ImportedLibraries()
		var runpath []string
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			vals, _ := f.DynString(tag)
			for _, v := range vals {
				for _, d := range strings.Split(v, ":") {
					runpath = append(runpath, strings.TrimPrefix(d, "/"))
				}
			}
		}
		var interp string
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(prog.Open())
				interp = strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "/")
			}
		}
		f.Close()
		if interp != "" {
			real, err := follow(root, interp, set)
			if err != nil {
				missing = append(missing, interp+" (interpreter of "+p+")")
			} else {
				queue = append(queue, real)
			}
		}
		for _, lib := range needed {
			real, ok := findLib(lib, runpath)
			if !ok {
				missing = append(missing, lib+" (needed by "+p+")")
				continue
			}
			queue = append(queue, real)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("missing from the extracted packages: %s", strings.Join(slices.Compact(missing), ", "))
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// follow resolves p (root-relative) through symlinks inside root, adding
// every path on the way to set, and returns the final regular file.
func follow(root, p string, set map[string]bool) (string, error) {
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return "", err
		}
		set[p] = true
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("%s is not a regular file", p)
			}
			return p, nil
		}
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			p = strings.TrimPrefix(path.Clean(target), "/")
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

func stagedEntry(root, p string) (cpioEntry, error) {
	full := filepath.Join(root, p)
	fi, err := os.Lstat(full)
	if err != nil {
		return cpioEntry{}, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(full)
		return cpioEntry{Name: p, Mode: fs.ModeSymlink | 0o777, Data: []byte(t)}, err
	}
	data, err := os.ReadFile(full)
	mode := fs.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	return cpioEntry{Name: p, Mode: mode, Data: data}, err
}

func copyStaged(root, p, dst string) error {
	e, err := stagedEntry(root, p)
	if err != nil {
		return err
	}
	target := filepath.Join(dst, p)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if e.Mode&fs.ModeSymlink != 0 {
		err := os.Symlink(string(e.Data), target)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return os.WriteFile(target, e.Data, e.Mode.Perm())
}
