package checks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/toolchain/testprog"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/xenboot"
)

// CheckBoot is the name of the Xen boot check of a flavour.
func CheckBoot(flavour string) string { return "xen-boot-" + flavour }

// Program is a unikernel the boot checks compile and boot.
type Program struct {
	Source      string // file name, e.g. Hello.hs
	Text        []byte // its source
	Expect      string // text the guest must print ("" with ExpectEmpty)
	ExpectEmpty bool
}

// DefaultPrograms are the project's verification programs: Hello prints
// testprog.HelloOutput, Null prints nothing.
func DefaultPrograms() []Program {
	return []Program{
		{Source: testprog.Hello, Text: testprog.Source(testprog.Hello), Expect: testprog.HelloOutput},
		{Source: testprog.Null, Text: testprog.Source(testprog.Null), ExpectEmpty: true},
	}
}

// BootTimeout bounds each boot (the whole QEMU run); GuestTimeout the
// guest's own run.
const (
	BootTimeout  = 4 * time.Minute
	GuestTimeout = 60 * time.Second
)

func bootChecks(c Config) []verify.Check {
	var out []verify.Check
	progs := c.Programs
	if progs == nil {
		progs = DefaultPrograms()
	}
	for _, fl := range c.Flavours {
		fl := fl
		out = append(out, verify.Check{
			Name: CheckBoot(fl), Family: verify.Boot, Required: true,
			Doc: "Hello and Null compiled with halvm-ghc --make as installed by apt in a clean Debian 12 rootfs boot on Xen (QEMU) with the expected console output and a clean shutdown",
			Needs: []verify.Prereq{verify.NeedRoot(), verify.NeedCommand("mmdebstrap", "mmdebstrap"),
				verify.NeedCommand("qemu-system-x86", "qemu-system-x86_64")},
			After:   []string{CheckAptInstall(fl)},
			Timeout: 15 * time.Minute,
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.AptDir, pipeline.KindAptRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return bootInstalled(ctx, env, dir, fl, progs)
			},
		})
	}
	return out
}

func machine(ctx context.Context, env *verify.Env) (*xenboot.Machine, error) {
	cache := env.CacheDir
	if cache == "" {
		cache = filepath.Join(env.Scratch, "cache")
	}
	m, err := xenboot.Prepare(ctx, filepath.Join(cache, "xenboot"))
	if err != nil {
		return nil, fmt.Errorf("preparing the Xen machine: %w", err)
	}
	return m, nil
}

func bootInstalled(ctx context.Context, env *verify.Env, repo, flavour string, progs []Program) (ev verify.Evidence, err error) {
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
	m, err := machine(ctx, env)
	if err != nil {
		return ev, err
	}
	var bad []string
	for _, p := range progs {
		name := strings.TrimSuffix(p.Source, filepath.Ext(p.Source))
		dir := "/root/verify/" + name
		if err := writeReadable(filepath.Join(r.root, dir, p.Source), p.Text); err != nil {
			return ev, err
		}
		if out, err := r.in("sh", "-c", "cd "+dir+" && halvm-ghc --make "+p.Source); err != nil {
			bad = append(bad, fmt.Sprintf("%s: halvm-ghc --make %s (installed %s): %v\n%s", name, p.Source, flavour, err, out))
			continue
		}
		kernel := filepath.Join(env.Scratch, flavour+"-"+name)
		b, err := os.ReadFile(filepath.Join(r.root, dir, name))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: halvm-ghc --make wrote no kernel: %v", name, err))
			continue
		}
		if err := os.WriteFile(kernel, b, 0o755); err != nil {
			return ev, err
		}
		res, err := bootOne(ctx, m, kernel, flavour+"-"+name, p)
		ev.Details = append(ev.Details, res...)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		ev.Checked++
	}
	if len(bad) > 0 {
		return ev, fmt.Errorf("%d of %d unikernel(s) built by the installed %s did not boot as expected:\n%s", len(bad), len(progs), flavour, strings.Join(bad, "\n"))
	}
	ev.Summary = fmt.Sprintf("%d unikernels compiled by the installed %s (%s) booted on Xen with the expected output and a clean shutdown", ev.Checked, flavour, firstLineOf(ver))
	return ev, nil
}

// bootOne boots a kernel with the program's expectation; the details
// name the verdict, the guest output and the timings.
func bootOne(ctx context.Context, m *xenboot.Machine, kernel, name string, p Program) ([]string, error) {
	spec := xenboot.BootSpec{Kernel: kernel, Name: name, Expect: p.Expect, ExpectEmpty: p.ExpectEmpty,
		GuestTimeout: GuestTimeout, Timeout: BootTimeout}
	res, err := m.Boot(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: booting: %w", name, err)
	}
	want := fmt.Sprintf("%q", p.Expect)
	if p.ExpectEmpty {
		want = "no output"
	}
	details := []string{fmt.Sprintf("%s: %s in %s (stage %s, shutdown %q): guest printed %q, expected %s",
		name, res.Verdict, res.Duration.Round(time.Millisecond), res.Stage, res.Shutdown, strings.TrimSpace(res.GuestOutput), want)}
	if !res.Passed {
		if res.SerialTail != "" {
			for _, l := range strings.Split(strings.TrimRight(res.SerialTail, "\n"), "\n") {
				details = append(details, "    serial: "+l)
			}
		}
		return details, fmt.Errorf("%s: %s: %s", name, res.Verdict, res.Reason)
	}
	return details, nil
}
