package xenboot

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/halvm/halvm-release/internal/run"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/sample/pvrt"
)

type cpioMember struct {
	name         string
	mode         uint32
	mtime, nlink uint32
	rmaj, rmin   uint32
	data         []byte
}

// readCPIO parses a newc archive strictly (magic, alignment, trailer).
func readCPIO(t *testing.T, b []byte) []cpioMember {
	t.Helper()
	var out []cpioMember
	off := 0
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad cpio header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(v)
		}
		size, namesize := int(field(6)), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := (off + 110 + namesize + 3) &^ 3
		m := cpioMember{name: name, mode: field(1), nlink: field(4), mtime: field(5), rmaj: field(9), rmin: field(10), data: b[dataOff : dataOff+size]}
		off = (dataOff + size + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, m)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	d, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCPIODeterministicAndWellFormed(t *testing.T) {
	entries := []cpioEntry{
		{Name: "usr/lib/x/libfoo.so.1", Mode: fs.ModeSymlink | 0o777, Data: []byte("libfoo.so.1.2")},
		{Name: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "dev/console", Mode: fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Name: "/usr/lib/x/libfoo.so.1.2", Mode: 0o644, Data: []byte("odd-sized data")},
		{Name: "tmp", Mode: fs.ModeDir | 0o755},
	}
	var a, b bytes.Buffer
	if err := writeCPIOGzip(&a, entries); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(entries)
	if err := writeCPIOGzip(&b, entries); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same entries in another order gave other bytes")
	}
	members := readCPIO(t, gunzip(t, a.Bytes()))
	var names []string
	for _, m := range members {
		names = append(names, m.name)
		if m.mtime != 0 {
			t.Errorf("%s: mtime %d", m.name, m.mtime)
		}
	}
	want := []string{"dev", "dev/console", "init", "tmp", "usr", "usr/lib", "usr/lib/x", "usr/lib/x/libfoo.so.1", "usr/lib/x/libfoo.so.1.2"}
	if !slices.Equal(names, want) {
		t.Errorf("members %v, want %v", names, want)
	}
	byName := map[string]cpioMember{}
	for _, m := range members {
		byName[m.name] = m
	}
	if m := byName["dev/console"]; m.mode != 0o020600 || m.rmaj != 5 || m.rmin != 1 {
		t.Errorf("dev/console: mode %o rdev %d:%d", m.mode, m.rmaj, m.rmin)
	}
	if m := byName["usr/lib/x/libfoo.so.1"]; m.mode != 0o120777 || string(m.data) != "libfoo.so.1.2" {
		t.Errorf("symlink: mode %o target %q", m.mode, m.data)
	}
	if m := byName["usr/lib/x/libfoo.so.1.2"]; m.mode != 0o100644 || string(m.data) != "odd-sized data" {
		t.Errorf("file: mode %o data %q", m.mode, m.data)
	}
	if m := byName["usr"]; m.mode != 0o040755 || m.nlink != 2 {
		t.Errorf("implied dir: mode %o nlink %d", m.mode, m.nlink)
	}
	if err := writeCPIO(io.Discard, []cpioEntry{{Name: "a", Mode: 0o644}, {Name: "a", Mode: 0o644}}); err == nil {
		t.Error("a duplicate entry was accepted")
	}
}

// replay feeds a log to a monitor.
func replay(m *monitor, log string) {
	for i, l := range strings.Split(log, "\n") {
		m.line(l, time.Duration(i)*time.Second)
	}
}

func TestMonitorFollowsStages(t *testing.T) {
	out := "Hello, World!\r\n"
	b64 := base64.StdEncoding.EncodeToString([]byte(out))
	log := strings.Join([]string{
		"(XEN) Xen version 4.17.7 (Debian 4.17.7) debug=n",
		"(XEN) Built a PV dom0",
		"[    0.000000] Linux version 6.1.0",
		"XENBOOT-n1: dom0 init",
		"XENBOOT-other: dom0 ready", // another nonce: a forgery, ignored
		"XENBOOT-n1: dom0 ready",
		"XENBOOT-n1: guest begin hello",
		"Hello, World!",
		"(XEN) d1v0 something",
		"no newline yetXENBOOT-n1: guest end rc=0",
		"XENBOOT-n1: guest shutdown poweroff",
		"XENBOOT-n1: xl: Domain 1 has shut down, reason code 0 0x0",
		"XENBOOT-n1: guest log begin",
		"XENBOOT-n1: b64 " + b64[:8],
		"XENBOOT-n1: b64 " + b64[8:],
		"XENBOOT-n1: guest log end",
		"XENBOOT-n1: verdict pass guest powered off",
	}, "\n")
	m := newMonitor("n1")
	replay(m, log)
	if m.stage != StageVerdict || m.verdict != "pass" || m.verdictReason != "guest powered off" || m.shutdown != "poweroff" || m.xlExit != "0" {
		t.Errorf("monitor: %+v", m)
	}
	if m.reached[StageXen] != 0 || m.reached[StageDom0] != 5*time.Second || m.reached[StageGuestDone] != 9*time.Second {
		t.Errorf("stage times %v", m.reached)
	}
	if got, ok := m.guestOutput(); !ok || got != "Hello, World!\n" {
		t.Errorf("guest output %q, %v", got, ok)
	}
	if !slices.Equal(m.live, []string{"Hello, World!", "no newline yet"}) {
		t.Errorf("live output %q", m.live)
	}
	if len(m.xlLog) != 1 {
		t.Errorf("xl log %q", m.xlLog)
	}

	// A Xen panic is fatal and its reason follows.
	m = newMonitor("n2")
	replay(m, "(XEN) Xen version 4.17\n(XEN) ****************************************\n(XEN) Panic on CPU 0:\n(XEN) DOM0 crashed\n(XEN) ****")
	if m.fatal != "(XEN) Panic on CPU 0:" || fatalContext(m) != ": DOM0 crashed" {
		t.Errorf("fatal %q context %q", m.fatal, fatalContext(m))
	}
	// A log section cut short is not an output.
	m = newMonitor("n3")
	replay(m, "XENBOOT-n3: guest log begin\nXENBOOT-n3: b64 aGk=")
	if _, ok := m.guestOutput(); ok {
		t.Error("an unfinished log counted as output")
	}
}

func TestJudge(t *testing.T) {
	good := &monitor{verdict: "pass", shutdown: "poweroff"}
	for _, c := range []struct {
		spec  BootSpec
		mon   *monitor
		out   string
		logOK bool
		want  Verdict
		says  string
	}{
		{BootSpec{Expect: "Hello"}, good, "Hello, World!\n", true, VerdictPass, "printed"},
		{BootSpec{Expect: "Hello"}, good, "Bye\n", true, VerdictFail, `expected "Hello"`},
		{BootSpec{ExpectEmpty: true}, good, " \n", true, VerdictPass, "nothing"},
		{BootSpec{ExpectEmpty: true}, good, "x", true, VerdictFail, "no guest output"},
		{BootSpec{Expect: "Hello"}, &monitor{verdict: "pass", shutdown: "crash"}, "Hello", true, VerdictFail, `"crash"`},
		{BootSpec{Expect: "Hello"}, &monitor{verdict: "fail", shutdown: "poweroff"}, "Hello", true, VerdictFail, "dom0's verdict"},
		{BootSpec{Expect: "Hello"}, good, "", false, VerdictFail, "console log"},
	} {
		v, reason := judge(c.spec, c.mon, c.out, c.logOK)
		if v != c.want || !strings.Contains(reason, c.says) {
			t.Errorf("judge(%+v, %q) = %s %q, want %s containing %q", c.spec, c.out, v, reason, c.want, c.says)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                      0,
		&run.Error{Exit: 3}:                      3,
		fmt.Errorf("x: %w", &run.Error{Exit: 5}): 5,
		&run.Error{Exit: -1}:                     -1,
		errors.New("qemu-system-x86_64 not found"): -1,
	} {
		if got := exitStatus(err); got != want {
			t.Errorf("exitStatus(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestBzImagePayloadRejects(t *testing.T) {
	if _, _, err := bzImagePayload(make([]byte, 100)); err == nil {
		t.Error("a short file was accepted")
	}
	img := make([]byte, 0x1000)
	copy(img[0x202:], "HdrS")
	img[0x206], img[0x207] = 0x0f, 0x02
	img[0x1f1] = 1
	img[0x248], img[0x24c] = 0x10, 0x10 // payload at 1024+16, 16 bytes
	copy(img[1024+16:], "not compressed!!")
	if _, _, err := bzImagePayload(img); err == nil || !strings.Contains(err.Error(), "not xz") {
		t.Errorf("err = %v, want a format error", err)
	}
	copy(img[1024+16:], "\xfd7zXZ\x00")
	if p, f, err := bzImagePayload(img); err != nil || f != "xz" || len(p) != 16 {
		t.Errorf("payload %d bytes, %q, %v", len(p), f, err)
	}
}

func TestWanted(t *testing.T) {
	for name, want := range map[string]bool{
		"boot/xen-4.17-amd64.gz":                                       true,
		"boot/xen-4.17-amd64.efi":                                      false,
		"boot/vmlinuz-6.1.0-56-amd64":                                  true,
		"lib/modules/6.1.0-56-amd64/kernel/drivers/xen/xenfs/xenfs.ko": true,
		"lib/modules/6.1.0-56-amd64/kernel/drivers/xen/xen-evtchn.ko":  true,
		"lib/modules/6.1.0-56-amd64/kernel/drivers/xen/xen-pciback.ko": false,
		"usr/lib/xen-4.17/bin/xl":                                      true,
		"usr/lib/xen-4.17/bin/xentop":                                  false,
		"lib/x86_64-linux-gnu/libc.so.6":                               true,
		"usr/lib/x86_64-linux-gnu/gconv/libJIS.so":                     false,
		"usr/share/doc/libc6/copyright":                                false,
		"bin/busybox":                                                  true,
	} {
		if wanted(name) != want {
			t.Errorf("wanted(%s) = %v", name, !want)
		}
	}
}

// TestMachineInitramfs checks the cached base initramfs: sorted, fixed
// mtimes, and holding what /init needs.
func TestMachineInitramfs(t *testing.T) {
	m := needMachine(t)
	data, err := os.ReadFile(m.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	members := readCPIO(t, gunzip(t, data))
	var names []string
	for _, mem := range members {
		names = append(names, mem.name)
		if mem.mtime != 0 {
			t.Errorf("%s has mtime %d", mem.name, mem.mtime)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("initramfs members are not sorted")
	}
	for _, want := range []string{"init", "bin/busybox", "bin/sh", "dev/console", "etc/xen/xl.conf",
		"usr/lib/xen-4.17/bin/xl", "usr/lib/xen-4.17/bin/xenconsole", "usr/lib/xen-4.17/bin/xen-init-dom0",
		"lib/x86_64-linux-gnu/libgcc_s.so.1", "lib64/ld-linux-x86-64.so.2", "lib/modules/xen/xenfs.ko"} {
		if !slices.Contains(names, want) {
			t.Errorf("initramfs lacks %s", want)
		}
	}
	st, _ := os.Stat(m.Initrd)
	t.Logf("base initramfs: %d members, %d bytes gzipped", len(names), st.Size())
	for _, f := range []string{m.Xen, m.Kernel} {
		if st, err := os.Stat(f); err != nil || st.Size() < 1<<20 {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// TestPrepareOffline: with no apt (an empty PATH), Prepare finds the
// cached machine through the last recorded resolution; with an empty
// cache it says which packages it needs.
func TestPrepareOffline(t *testing.T) {
	m := needMachine(t)
	cacheDir := filepath.Dir(filepath.Dir(m.Dir))
	t.Setenv("PATH", t.TempDir())
	again, err := Prepare(t.Context(), cacheDir)
	if err != nil {
		t.Fatalf("offline Prepare: %v", err)
	}
	if again.Key != m.Key || again.Dir != m.Dir {
		t.Errorf("offline Prepare found %s, want %s", again.Dir, m.Dir)
	}
	_, err = Prepare(t.Context(), t.TempDir())
	if err == nil {
		t.Fatal("Prepare with no apt and an empty cache succeeded")
	}
	for _, want := range []string{"apt-get update", "xen-hypervisor-4.17-amd64", "busybox-static", "libgcc-s1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestAssembleReproducible assembles the machine again from the cached
// packages and compares every file with the cached machine's.
func TestAssembleReproducible(t *testing.T) {
	t.Parallel()
	m := needMachine(t)
	cacheDir := filepath.Dir(filepath.Dir(m.Dir))
	out := t.TempDir()
	if err := assemble(t.Context(), cacheDir, m.Packages, out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"xen", "vmlinux", "dom0.cpio.gz"} {
		a, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(m.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two assemblies (%d vs %d bytes)", f, len(a), len(b))
		}
	}
}

// TestBootWithoutQEMU: a harness that cannot run QEMU is an error that
// names the package to install, not a failed boot.
func TestBootWithoutQEMU(t *testing.T) {
	m := needMachine(t)
	k := buildGuest(t, pvrt.Null())
	t.Setenv("PATH", t.TempDir())
	res, err := m.Boot(t.Context(), BootSpec{Kernel: k, ExpectEmpty: true})
	if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Fatalf("err = %v, want one naming qemu-system-x86", err)
	}
	if res.Passed {
		t.Error("a boot that never ran passed")
	}
}
