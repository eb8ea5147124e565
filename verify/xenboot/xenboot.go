// Package xenboot owns booting a Xen PV kernel for real, offline: Xen 4.17
// and a Linux dom0 from Debian 12 packages, run under QEMU (TCG) with hard
// deadlines, the guest started by xl with its PV console relayed to the
// serial port, and a verdict that passes only when QEMU exits with the
// dom0's "pass" status, the guest powered off cleanly and its console
// showed the expected text.
//
// Prepare downloads the packages once (apt-get download, cached by name,
// version and sha256) and assembles the machine (gunzipped Xen, the dom0
// vmlinux, a base initramfs); Boot appends a small per-boot archive with
// the guest kernel and its xl config and runs QEMU.
package xenboot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
)

// assemblyVersion changes whenever assemble produces different files from
// the same packages, so that cached machines are rebuilt.
const assemblyVersion = "xenboot-machine-1"

// Machine is an assembled Xen + dom0, ready to boot guests. It is read-only:
// several Boot calls may run at once.
type Machine struct {
	Dir      string    // the machine's cache directory
	Xen      string    // the hypervisor (multiboot ELF), for QEMU -kernel
	Kernel   string    // the dom0 Linux kernel (vmlinux ELF)
	Initrd   string    // the base dom0 initramfs (cpio newc, gzip)
	Packages []Package // the Debian packages it was assembled from
	Key      string    // sha256 over the packages and the assembly recipe
}

// manifest is what a machine directory records about itself.
type manifest struct {
	Key      string    `json:"key"`
	Recipe   string    `json:"recipe"`
	Packages []Package `json:"packages"`
}

// Prepare returns the machine for the current Debian package versions,
// assembling it under cacheDir if needed. It needs apt-get and dpkg-deb
// the first time and works offline once the cache holds the machine.
// Concurrent calls (also from other processes) take turns.
func Prepare(ctx context.Context, cacheDir string) (*Machine, error) {
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	unlock, err := lockDir(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	defer unlock()

	pkgs, err := resolve(ctx, cacheDir)
	if err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	key := machineKey(pkgs)
	dir := filepath.Join(cacheDir, "machines", key[:24])
	m := &Machine{
		Dir:      dir,
		Xen:      filepath.Join(dir, "xen"),
		Kernel:   filepath.Join(dir, "vmlinux"),
		Initrd:   filepath.Join(dir, "dom0.cpio.gz"),
		Packages: pkgs,
		Key:      key,
	}
	if data, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil {
		var man manifest
		if json.Unmarshal(data, &man) == nil && man.Key == key {
			return m, nil
		}
	}
	if err := fetch(ctx, cacheDir, pkgs); err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".assemble-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := assemble(ctx, cacheDir, pkgs, tmp); err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	data, _ := json.MarshalIndent(manifest{Key: key, Recipe: assemblyVersion, Packages: pkgs}, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(tmp, "manifest.json"), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	return m, nil
}

func machineKey(pkgs []Package) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", assemblyVersion)
	h.Write(initScript)
	for _, p := range pkgs {
		fmt.Fprintf(h, "%s %s %s %s\n", p.Name, p.Version, p.Arch, p.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lockDir takes an exclusive flock on dir/.lock; the returned func releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ReadNotes runs Xen's own readnotes (from xen-utils-4.17, with the
// packaged C library) on a kernel and returns its output.
func (m *Machine) ReadNotes(ctx context.Context, kernel string) (string, error) {
	tools := filepath.Join(m.Dir, "tools")
	ld := filepath.Join(tools, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	libPath := strings.Join([]string{
		filepath.Join(tools, "lib/x86_64-linux-gnu"),
		filepath.Join(tools, "usr/lib/x86_64-linux-gnu"),
	}, ":")
	out, err := run.Output(ctx, run.Cmd{
		Args: []string{ld, "--library-path", libPath, filepath.Join(tools, xenToolsDir, "readnotes"), kernel},
		Env:  run.BaseEnv(),
	})
	if err != nil {
		return string(out), fmt.Errorf("reading the Xen notes of %s: %w", kernel, err)
	}
	return string(out), nil
}
