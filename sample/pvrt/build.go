package pvrt

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/run"
)

// Program is a small C program for the runtime: Main is C source that
// includes <pvrt/rts.h> and defines int hs_main(void).
type Program struct {
	Name string // file name of the kernel, e.g. "hello"
	Way  string // RTS way to link against; "" is "v"
	Main string // C source
}

// Hello prints text on the PV console and returns (a clean poweroff).
func Hello(text string) Program {
	return Program{Name: "hello", Main: `#include <pvrt/rts.h>

static const char message[] = ` + CString(text) + `;

int hs_main(void)
{
	rts_console_write(message, sizeof message - 1);
	return 0;
}
`}
}

// Null is the program that does nothing: no output, a clean poweroff.
func Null() Program {
	return Program{Name: "null", Main: `#include <pvrt/rts.h>

int hs_main(void)
{
	return 0;
}
`}
}

// Panic prints a line and then calls halvm_panic(msg): the domain crashes.
func Panic(msg string) Program {
	return Program{Name: "panic", Main: `#include <pvrt/rts.h>

int hs_main(void)
{
	rts_console_puts("about to panic\n");
	halvm_panic("%s", ` + CString(msg) + `);
}
`}
}

// Hang prints a line and then never returns (it yields the CPU forever).
func Hang() Program {
	return Program{Name: "hang", Main: `#include <pvrt/rts.h>

int hs_main(void)
{
	rts_console_puts("hanging forever\n");
	for (;;)
		rts_yield();
}
`}
}

// CString quotes s as a C string literal: printable ASCII stays, anything
// else (and ", \, ?) becomes a three-digit octal escape.
func CString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '?' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Runtime is one way of the runtime, built: the files a link needs.
type Runtime struct {
	Way          string
	Include      string // -I directory holding pvrt/rts.h
	StartObject  string // start.o
	Archive      string // libHSrts[_way].a
	LinkerScript string // kernel.lds
}

// BuildRuntime writes Sources to dir/src and compiles start.o and the
// archive of way into dir/rts-<way>. It runs gcc and ar (Debian: gcc,
// binutils). The result does not depend on dir.
func BuildRuntime(ctx context.Context, dir, way string) (Runtime, error) {
	wayFlags, err := WayFlags(way)
	if err != nil {
		return Runtime{}, err
	}
	archive, _ := ArchiveName(way)
	srcDir, err := writeSources(dir)
	if err != nil {
		return Runtime{}, err
	}
	out := filepath.Join(dir, "rts-"+way)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Runtime{}, fmt.Errorf("building pvrt way %s: %w", way, err)
	}
	cflags := append(append([]string{}, BaseCFlags...),
		"-ffile-prefix-map="+srcDir+"=/pvrt", "-I"+filepath.Join(srcDir, "include"))
	rt := Runtime{
		Way:          way,
		Include:      filepath.Join(srcDir, "include"),
		StartObject:  filepath.Join(out, "start.o"),
		Archive:      filepath.Join(out, archive),
		LinkerScript: filepath.Join(srcDir, "kernel.lds"),
	}
	if err := gcc(ctx, srcDir, append(cflags, "-c", "-o", rt.StartObject, filepath.Join(srcDir, "start.x86_64.S"))...); err != nil {
		return Runtime{}, fmt.Errorf("building pvrt start.o: %w", err)
	}
	var objs []string
	for _, c := range RTSSources {
		obj := filepath.Join(out, strings.TrimSuffix(c, ".c")+".o")
		args := append(append(append([]string{}, cflags...), wayFlags...), "-c", "-o", obj, filepath.Join(srcDir, "rts", c))
		if err := gcc(ctx, srcDir, args...); err != nil {
			return Runtime{}, fmt.Errorf("building pvrt way %s: compiling %s: %w", way, c, err)
		}
		objs = append(objs, obj)
	}
	_ = os.Remove(rt.Archive)
	if err := run.Run(ctx, run.Cmd{Args: append([]string{"ar", "rcsD", rt.Archive}, objs...), Dir: out, Env: run.BaseEnv()}); err != nil {
		return Runtime{}, fmt.Errorf("building pvrt way %s: archiving %s: %w (install binutils)", way, archive, err)
	}
	return rt, nil
}

// Build compiles p against the runtime (way p.Way) and links a Xen PV
// kernel at dir/<p.Name>, which it returns. Everything is built under dir.
func Build(ctx context.Context, dir string, p Program) (string, error) {
	if p.Name == "" || strings.ContainsAny(p.Name, "/ ") {
		return "", fmt.Errorf("building pvrt program: name %q: want a plain file name", p.Name)
	}
	way := p.Way
	if way == "" {
		way = "v"
	}
	wayFlags, err := WayFlags(way)
	if err != nil {
		return "", fmt.Errorf("building pvrt program %s: %w", p.Name, err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rt, err := BuildRuntime(ctx, dir, way)
	if err != nil {
		return "", fmt.Errorf("building pvrt program %s: %w", p.Name, err)
	}
	progDir := filepath.Join(dir, "prog-"+p.Name)
	if err := os.MkdirAll(progDir, 0o755); err != nil {
		return "", err
	}
	csrc := filepath.Join(progDir, p.Name+".c")
	if err := os.WriteFile(csrc, []byte(p.Main), 0o644); err != nil {
		return "", fmt.Errorf("building pvrt program %s: %w", p.Name, err)
	}
	obj := filepath.Join(progDir, p.Name+".o")
	args := append(append([]string{}, BaseCFlags...), wayFlags...)
	args = append(args, "-ffile-prefix-map="+progDir+"=/program", "-I"+rt.Include, "-c", "-o", obj, csrc)
	if err := gcc(ctx, progDir, args...); err != nil {
		return "", fmt.Errorf("building pvrt program %s: compiling: %w", p.Name, err)
	}
	kernel := filepath.Join(dir, p.Name)
	link := append([]string{"-Wl,-T," + rt.LinkerScript}, LinkFlags...)
	link = append(link, "-o", kernel, rt.StartObject, obj, rt.Archive)
	if err := gcc(ctx, progDir, link...); err != nil {
		return "", fmt.Errorf("building pvrt program %s: linking: %w", p.Name, err)
	}
	return kernel, nil
}

// BuildHello builds the hello kernel (way v) printing text into dir.
func BuildHello(ctx context.Context, dir, text string) (string, error) {
	return Build(ctx, dir, Hello(text))
}

func gcc(ctx context.Context, dir string, args ...string) error {
	err := run.Run(ctx, run.Cmd{Args: append([]string{"gcc"}, args...), Dir: dir, Env: run.BaseEnv()})
	if err != nil {
		return fmt.Errorf("%w (needs gcc and binutils)", err)
	}
	return nil
}

// writeSources copies Sources into dir/src (replacing what was there) and
// returns that directory.
func writeSources(dir string) (string, error) {
	srcDir := filepath.Join(dir, "src")
	err := fs.WalkDir(Sources, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(srcDir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(Sources, path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("writing pvrt sources to %s: %w", srcDir, err)
	}
	return srcDir, nil
}
