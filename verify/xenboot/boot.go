package xenboot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// BootSpec says what to boot and what to expect.
type BootSpec struct {
	Kernel string // the guest: a 64-bit Xen PV kernel (ELF)
	Name   string // domain name; "" is "guest"

	// Expect must appear in what the guest printed on its console.
	// ExpectEmpty instead requires that it printed nothing (whitespace
	// aside). One of the two must be set.
	Expect      string
	ExpectEmpty bool

	MemoryMB int // guest memory; 0 is 16

	// GuestTimeout bounds the guest's run (xl create to its end); 0 is 60s.
	// Timeout bounds the whole boot; 0 is 5 minutes. Each other stage has
	// its own deadline too (see stageDeadlines).
	GuestTimeout time.Duration
	Timeout      time.Duration

	// Dir keeps the boot's files (serial.log, the initramfs); "" uses a
	// temporary directory that is removed afterwards.
	Dir string
}

// Verdict is the outcome class of a boot.
type Verdict string

const (
	VerdictPass    Verdict = "pass"    // every condition held
	VerdictFail    Verdict = "fail"    // the boot completed, but the guest or its output was wrong
	VerdictTimeout Verdict = "timeout" // a deadline passed; QEMU was killed
	VerdictCrash   Verdict = "crash"   // Xen or dom0 crashed, or QEMU ended without a verdict
)

// Result is what a boot showed.
type Result struct {
	Passed      bool
	Verdict     Verdict
	Reason      string // one line: why it passed or failed, precisely
	Stage       Stage  // the last milestone reached
	StageTimes  map[Stage]time.Duration
	GuestOutput string // the guest's console, from xenconsoled's log ("\r\n" as "\n")
	Shutdown    string // how the guest shut down: poweroff, crash, ... ("" if unknown)
	ExitStatus  int    // QEMU's exit status; -1 if it was killed
	SerialLog   string // path of the full serial log (only when BootSpec.Dir is set)
	SerialTail  string // the last lines of the serial log
	Duration    time.Duration
}

// stageDeadlines bound how long a boot may wait for the next milestone
// after reaching a stage (the guest stage uses BootSpec.GuestTimeout).
// Measured on 2 cores (TCG): Xen banner 0.3 s, dom0 ready 6-8 s, guest done
// 8-10 s, QEMU exit 9-11 s; the margins cover a slow, busy CI machine.
var stageDeadlines = map[Stage]time.Duration{
	StageStarted:   30 * time.Second,
	StageXen:       150 * time.Second,
	StageDom0:      30 * time.Second,
	StageGuestDone: 60 * time.Second,
	StageVerdict:   30 * time.Second,
}

// fatalGrace is how long a boot keeps reading after a fatal line, to
// capture the explanation that follows it.
const fatalGrace = 2 * time.Second

// bootOptions are test hooks.
type bootOptions struct {
	extraQEMUArgs []string
	deadlines     map[Stage]time.Duration
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Boot runs the guest on the machine and reports what happened. A failed
// or timed-out boot is a Result with Passed false and a nil error; the
// error is for a bad spec or a harness that could not run at all.
func (m *Machine) Boot(ctx context.Context, spec BootSpec) (Result, error) {
	return m.boot(ctx, spec, bootOptions{})
}

func (s *BootSpec) check() error {
	var problems []string
	if s.Name == "" {
		s.Name = "guest"
	}
	if !namePattern.MatchString(s.Name) {
		problems = append(problems, fmt.Sprintf("Name %q: want letters, digits, '.', '_', '-'", s.Name))
	}
	if s.Kernel == "" {
		problems = append(problems, "Kernel: no guest kernel given")
	} else if fi, err := os.Stat(s.Kernel); err != nil || !fi.Mode().IsRegular() {
		problems = append(problems, fmt.Sprintf("Kernel %s: not a readable file", s.Kernel))
	}
	if s.Expect == "" && !s.ExpectEmpty {
		problems = append(problems, "Expect: give the expected text, or set ExpectEmpty")
	}
	if s.Expect != "" && s.ExpectEmpty {
		problems = append(problems, "Expect and ExpectEmpty: set only one")
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = 16
	}
	if s.MemoryMB < 4 || s.MemoryMB > 512 {
		problems = append(problems, fmt.Sprintf("MemoryMB %d: want 4..512", s.MemoryMB))
	}
	if s.GuestTimeout == 0 {
		s.GuestTimeout = 60 * time.Second
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Minute
	}
	if s.GuestTimeout < 0 || s.Timeout < 0 {
		problems = append(problems, "GuestTimeout, Timeout: must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("bad boot spec: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (m *Machine) boot(ctx context.Context, spec BootSpec, opt bootOptions) (res Result, err error) {
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	dir := spec.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "xenboot-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	nonceBytes := make([]byte, 8)
	if _, err := rand.Read(nonceBytes); err != nil {
		return Result{}, err
	}
	nonce := hex.EncodeToString(nonceBytes)
	initrd := filepath.Join(dir, "initrd.gz")
	if err := m.writeInitrd(initrd, spec, nonce); err != nil {
		return Result{}, fmt.Errorf("booting %s: %w", spec.Name, err)
	}
	logPath := filepath.Join(dir, "serial.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return Result{}, err
	}
	defer logFile.Close()

	deadlines := map[Stage]time.Duration{}
	for s, d := range stageDeadlines {
		deadlines[s] = d
	}
	deadlines[StageGuest] = spec.GuestTimeout
	for s, d := range opt.deadlines {
		deadlines[s] = d
	}

	qctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	args := append(qemuArgs(m, initrd), opt.extraQEMUArgs...)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		err := run.Run(qctx, run.Cmd{Args: args, Stdout: pw, Stderr: &stderr, Env: run.BaseEnv(), WaitDelay: 2 * time.Second})
		pw.Close()
		done <- err
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	mon := newMonitor(nonce)
	timer := time.NewTimer(deadlines[StageStarted])
	defer timer.Stop()
	var (
		qemuErr  error
		exited   bool
		timedOut string // what the boot was waiting for when it was killed
		fatalSet bool
	)
	for !exited || lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			fmt.Fprintln(logFile, l)
			if mon.line(l, time.Since(start)) && mon.fatal == "" && timedOut == "" {
				timer.Reset(deadlines[mon.stage])
			}
			if mon.fatal != "" && !fatalSet {
				fatalSet = true
				timer.Reset(fatalGrace)
			}
		case <-timer.C:
			if !fatalSet && timedOut == "" && !exited {
				timedOut = fmt.Sprintf("no %s within %s after %s", mon.stage.waitingFor(), deadlines[mon.stage], mon.stage)
			}
			cancel()
		case qemuErr = <-done:
			exited = true
			done = nil
		}
	}
	res = Result{
		Stage:      mon.stage,
		StageTimes: map[Stage]time.Duration{},
		Shutdown:   mon.shutdown,
		ExitStatus: exitStatus(qemuErr),
		SerialTail: mon.tailText(40),
		Duration:   time.Since(start),
	}
	for s := StageXen; s <= mon.stage; s++ {
		res.StageTimes[s] = mon.reached[s]
	}
	if spec.Dir != "" {
		res.SerialLog = logPath
	}
	out, logOK := mon.guestOutput()
	res.GuestOutput = out

	switch {
	case timedOut != "":
		res.Verdict, res.Reason = VerdictTimeout, timedOut+"; QEMU killed"
	case mon.fatal != "":
		res.Verdict, res.Reason = VerdictCrash, "fatal console line at "+mon.stage.String()+": "+mon.fatal+fatalContext(mon)
	case qctx.Err() != nil:
		res.Verdict, res.Reason = VerdictTimeout, fmt.Sprintf("boot stopped after %s at %s: %v; QEMU killed", res.Duration.Round(time.Second), mon.stage, qctx.Err())
	case res.ExitStatus == 3:
		res.Verdict, res.Reason = judge(spec, mon, out, logOK)
	case res.ExitStatus == 5:
		res.Verdict = VerdictFail
		res.Reason = "dom0 verdict: " + mon.verdictReason + guestLast(out)
		if mon.verdict == "" {
			res.Reason = "QEMU exited with the fail status but dom0 reported no verdict"
		}
	case res.ExitStatus == 0:
		res.Verdict = VerdictCrash
		res.Reason = fmt.Sprintf("QEMU exited with status 0 at %s without a verdict: Xen or dom0 shut down or rebooted", mon.stage)
	default:
		res.Verdict = VerdictCrash
		res.Reason = fmt.Sprintf("QEMU failed (status %d) at %s: %v", res.ExitStatus, mon.stage, strings.TrimSpace(lastLine(stderr.String())))
		if mon.stage == StageStarted {
			return res, fmt.Errorf("booting %s: qemu-system-x86_64 did not start Xen: %w (Debian package: qemu-system-x86)", spec.Name, qemuErr)
		}
	}
	res.Passed = res.Verdict == VerdictPass
	return res, nil
}

// judge decides a boot whose QEMU exited with the pass status.
func judge(spec BootSpec, mon *monitor, out string, logOK bool) (Verdict, string) {
	switch {
	case mon.verdict != "pass":
		return VerdictFail, fmt.Sprintf("QEMU exited with the pass status but dom0's verdict was %q", mon.verdict)
	case mon.shutdown != "poweroff":
		return VerdictFail, fmt.Sprintf("the guest shut down by %q, not poweroff", mon.shutdown)
	case !logOK:
		return VerdictFail, "dom0 did not report the guest console log"
	case spec.ExpectEmpty && strings.TrimSpace(out) != "":
		return VerdictFail, fmt.Sprintf("expected no guest output, got %q", clip(out))
	case !spec.ExpectEmpty && !strings.Contains(out, spec.Expect):
		return VerdictFail, fmt.Sprintf("expected %q in the guest output, got %q", spec.Expect, clip(out))
	}
	if spec.ExpectEmpty {
		return VerdictPass, "the guest printed nothing and powered off"
	}
	return VerdictPass, fmt.Sprintf("the guest printed %q and powered off", spec.Expect)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// guestLast quotes the guest's last line of output, if any.
func guestLast(out string) string {
	if l := lastLine(out); l != "" {
		return fmt.Sprintf("; the guest's last output: %q", l)
	}
	return ""
}

// fatalContext adds the line after a fatal one (Xen prints the reason on
// the next line, after "Panic on CPU n:").
func fatalContext(mon *monitor) string {
	for i, l := range mon.tail {
		if strings.TrimSpace(l) == mon.fatal && i+1 < len(mon.tail) {
			next := strings.TrimSpace(strings.TrimPrefix(mon.tail[i+1], "(XEN)"))
			if next != "" && !strings.HasPrefix(next, "****") {
				return ": " + next
			}
		}
	}
	return ""
}

// exitStatus extracts QEMU's exit status from run's error: 0 for success,
// -1 when it was killed or never ran.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// qemuArgs is the measured-fastest QEMU command line: TCG, qemu64 with
// rdrand, Xen as the multiboot kernel, dom0 and its initramfs as modules,
// the serial port on stdout and isa-debug-exit for the verdict.
func qemuArgs(m *Machine, initrd string) []string {
	esc := func(p string) string { return strings.ReplaceAll(p, ",", ",,") }
	return []string{
		"qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64,+rdrand", "-m", "1024", "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-kernel", m.Xen,
		"-append", "dom0_mem=256M,max:256M dom0_max_vcpus=1 console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all bootscrub=false",
		"-initrd", esc(m.Kernel) + " console=hvc0 earlyprintk=xen rdinit=/init quiet mitigations=off," + esc(initrd),
	}
}

// dom0Slack is how much longer than the harness's guest deadline dom0's
// own timeout waits: the harness normally kills QEMU first.
const dom0Slack = 30 * time.Second

// writeInitrd writes the base initramfs followed by a per-boot archive
// with the guest kernel, its xl config and boot.env.
func (m *Machine) writeInitrd(path string, spec BootSpec, nonce string) error {
	base, err := os.ReadFile(m.Initrd)
	if err != nil {
		return fmt.Errorf("reading the base initramfs: %w (run Prepare again)", err)
	}
	kernel, err := os.ReadFile(spec.Kernel)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`name = "%s"
type = "pv"
kernel = "/guest/kernel"
memory = %d
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
`, spec.Name, spec.MemoryMB)
	env := fmt.Sprintf("NONCE=%s\nGUEST_NAME=%s\nGUEST_TIMEOUT=%d\n", nonce, spec.Name,
		int((spec.GuestTimeout+dom0Slack+time.Second-1)/time.Second))
	var buf bytes.Buffer
	buf.Write(base)
	if err := writeCPIOGzip(&buf, []cpioEntry{
		{Name: "guest/kernel", Mode: 0o644, Data: kernel},
		{Name: "guest/guest.cfg", Mode: 0o644, Data: []byte(cfg)},
		{Name: "guest/boot.env", Mode: 0o644, Data: []byte(env)},
	}); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
