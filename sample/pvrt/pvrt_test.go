package pvrt

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

func needToolchain(t *testing.T) {
	t.Helper()
	testenv.NeedCommand(t, "gcc", "gcc")
	testenv.NeedCommand(t, "binutils", "ar")
}

func TestSourcesShape(t *testing.T) {
	for _, f := range []string{"start.x86_64.S", "kernel.lds", "Makefile", "examples/hello.c", "include/pvrt/rts.h", "include/pvrt/xen.h", "rts/hypercall.h", "rts/internal.h"} {
		if _, err := fs.Stat(Sources, f); err != nil {
			t.Errorf("Sources lacks %s: %v", f, err)
		}
	}
	cs, err := fs.Glob(Sources, "rts/*.c")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		cs[i] = strings.TrimPrefix(cs[i], "rts/")
	}
	if !slices.Equal(cs, RTSSources) {
		t.Errorf("rts/*.c = %v, RTSSources = %v", cs, RTSSources)
	}
	mk, err := fs.ReadFile(Sources, "Makefile")
	if err != nil {
		t.Fatal(err)
	}
	ld := regexp.MustCompile(`(?m)^LDFLAGS_KERNEL := ((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if ld == nil || strings.Join(strings.Fields(strings.ReplaceAll(string(ld[1]), "\\\n", " ")), " ") != strings.Join(LinkFlags, " ") {
		t.Errorf("Makefile LDFLAGS_KERNEL = %q, want %q", ld, strings.Join(LinkFlags, " "))
	}
	m := regexp.MustCompile(`(?m)^RTS_SRCS := (.*)$`).FindSubmatch(mk)
	if m == nil || strings.Join(RTSSources, " ") != string(m[1]) {
		t.Errorf("Makefile RTS_SRCS = %q, want %q", m, strings.Join(RTSSources, " "))
	}
	for _, w := range Ways {
		flags, _ := WayFlags(w)
		line := regexp.MustCompile(`(?m)^way_flags_` + w + ` +:= (.*)$`).FindSubmatch(mk)
		want := strings.ReplaceAll(strings.Join(flags, " "), `"`, `\"`)
		if line == nil || string(line[1]) != want {
			t.Errorf("Makefile way_flags_%s = %q, want %q", w, line, want)
		}
	}
}

func TestWayNames(t *testing.T) {
	want := map[string]string{"v": "libHSrts.a", "p": "libHSrts_p.a", "thr": "libHSrts_thr.a", "debug": "libHSrts_debug.a", "thr_debug": "libHSrts_thr_debug.a"}
	for w, a := range want {
		got, err := ArchiveName(w)
		if err != nil || got != a {
			t.Errorf("ArchiveName(%q) = %q, %v; want %q", w, got, err, a)
		}
	}
	if _, err := ArchiveName("dyn"); err == nil {
		t.Error("ArchiveName(dyn) succeeded")
	}
	if _, err := WayFlags("dyn"); err == nil {
		t.Error("WayFlags(dyn) succeeded")
	}
}

func TestCString(t *testing.T) {
	for in, want := range map[string]string{
		"Hello, World!\n": `"Hello, World!\012"`,
		`a"b\c?`:          `"a\042b\134c\077"`,
		"\x00\xff1":       `"\000\3771"`,
	} {
		if got := CString(in); got != want {
			t.Errorf("CString(%q) = %s, want %s", in, got, want)
		}
	}
}

// xenNotes reads the "Xen" notes of a kernel's PT_NOTE segments.
func xenNotes(t *testing.T, f *elf.File) map[uint32][]byte {
	t.Helper()
	notes := map[uint32][]byte{}
	nNote := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		nNote++
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		for len(data) >= 12 {
			namesz := binary.LittleEndian.Uint32(data[0:])
			descsz := binary.LittleEndian.Uint32(data[4:])
			typ := binary.LittleEndian.Uint32(data[8:])
			off := 12
			name := string(bytes.TrimRight(data[off:off+int(namesz)], "\x00"))
			off += int((namesz + 3) &^ 3)
			desc := data[off : off+int(descsz)]
			off += int((descsz + 3) &^ 3)
			if name == "Xen" {
				if _, dup := notes[typ]; dup {
					t.Errorf("duplicate Xen note %d", typ)
				}
				notes[typ] = desc
			}
			data = data[off:]
		}
	}
	if nNote != 1 {
		t.Errorf("%d PT_NOTE segments, want 1", nNote)
	}
	return notes
}

func symbol(t *testing.T, f *elf.File, name string) elf.Symbol {
	t.Helper()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no symbol %s", name)
	return elf.Symbol{}
}

func TestHelloKernelNotes(t *testing.T) {
	t.Parallel()
	needToolchain(t)
	kernel, err := BuildHello(context.Background(), t.TempDir(), "Hello, World!\n")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(kernel)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("kernel is %v %v %v, want ELFCLASS64 EM_X86_64 ET_EXEC", f.Class, f.Machine, f.Type)
	}
	notes := xenNotes(t, f)
	str := func(typ uint32) string { return strings.TrimSuffix(string(notes[typ]), "\x00") }
	u64 := func(typ uint32) uint64 {
		if len(notes[typ]) != 8 {
			t.Errorf("note %d has %d bytes, want 8", typ, len(notes[typ]))
			return 0
		}
		return binary.LittleEndian.Uint64(notes[typ])
	}
	for typ, want := range map[uint32]string{6: "HaLVM", 7: "2.4", 5: "xen-3.0", 8: "generic"} {
		if got := str(typ); got != want {
			t.Errorf("note %d = %q, want %q", typ, got, want)
		}
	}
	if u64(3) != 0 || u64(4) != 0 {
		t.Errorf("VIRT_BASE %#x PADDR_OFFSET %#x, want 0 and 0", u64(3), u64(4))
	}
	start := symbol(t, f, "_start")
	if entry := u64(1); entry != start.Value || entry != f.Entry {
		t.Errorf("ENTRY note %#x, _start %#x, e_entry %#x: want all equal", entry, start.Value, f.Entry)
	}
	hp := symbol(t, f, "hypercall_page")
	if page := u64(2); page != hp.Value || page%4096 != 0 || hp.Size != 4096 {
		t.Errorf("HYPERCALL_PAGE note %#x, symbol %#x size %d: want equal, page-aligned, 4096 bytes", page, hp.Value, hp.Size)
	}
	// The page must be inside an executable loaded segment.
	inExec := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && hp.Value >= p.Vaddr && hp.Value+4096 <= p.Vaddr+p.Filesz {
			inExec = true
		}
	}
	if !inExec {
		t.Error("hypercall page is not in an executable PT_LOAD segment")
	}
	ro := f.Section(".rodata")
	if ro == nil {
		t.Fatal("no .rodata")
	}
	data, _ := ro.Data()
	if !bytes.Contains(data, []byte("Hello, World!\n")) {
		t.Error("hello text not in .rodata")
	}
	st, _ := os.Stat(kernel)
	t.Logf("hello kernel: %d bytes", st.Size())
	if st.Size() > 64<<10 {
		t.Errorf("hello kernel is %d bytes, want a small image", st.Size())
	}
}

// arMembers parses a System V / GNU ar archive (short names only).
func arMembers(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("!<arch>\n")) {
		t.Fatalf("%s is not an ar archive", path)
	}
	members := map[string][]byte{}
	data = data[8:]
	for len(data) >= 60 {
		hdr := data[:60]
		name := strings.TrimRight(string(hdr[0:16]), " ")
		size, err := strconv.Atoi(strings.TrimSpace(string(hdr[48:58])))
		if err != nil {
			t.Fatalf("%s: bad member size: %v", path, err)
		}
		if mtime := strings.TrimSpace(string(hdr[16:28])); mtime != "0" {
			t.Errorf("%s: member %s has mtime %s, want 0 (deterministic archive)", path, name, mtime)
		}
		body := data[60 : 60+size]
		if name != "/" {
			members[strings.TrimSuffix(name, "/")] = body
		}
		data = data[60+size+size%2:]
	}
	return members
}

func TestWaysDiffer(t *testing.T) {
	t.Parallel()
	needToolchain(t)
	ctx := context.Background()
	dir := t.TempDir()
	// Symbols that only some ways define.
	marks := map[string][]string{
		"__cyg_profile_func_enter": {"p"},
		"rts_prof_report":          {"p"},
		"rts_lock_acquire":         {"thr", "thr_debug"},
		"rts_n_capabilities":       {"thr", "thr_debug"},
		"rts_assert_failed":        {"debug", "thr_debug"},
		"rts_debug_stack_check":    {"debug", "thr_debug"},
	}
	sums := map[string]string{}
	for _, way := range Ways {
		rt, err := BuildRuntime(ctx, dir, way)
		if err != nil {
			t.Fatal(err)
		}
		members := arMembers(t, rt.Archive)
		var names []string
		defined := map[string]bool{}
		wayString := ""
		for name, body := range members {
			names = append(names, name)
			f, err := elf.NewFile(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s(%s): %v", rt.Archive, name, err)
			}
			syms, _ := f.Symbols()
			for _, s := range syms {
				if s.Section != elf.SHN_UNDEF && elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
					defined[s.Name] = true
				}
				if s.Name == "rts_way" && s.Section != elf.SHN_UNDEF {
					sec := f.Sections[s.Section]
					d, _ := sec.Data()
					wayString = strings.TrimRight(string(d[s.Value:s.Value+s.Size]), "\x00")
				}
			}
			if way == "debug" || way == "thr_debug" {
				if f.Section(".debug_info") == nil {
					t.Errorf("%s way %s: %s has no debug info", rt.Archive, way, name)
				}
			}
		}
		slices.Sort(names)
		if len(names) != len(RTSSources) {
			t.Errorf("%s has members %v", rt.Archive, names)
		}
		if wayString != way {
			t.Errorf("%s: rts_way = %q, want %q", rt.Archive, wayString, way)
		}
		for sym, ways := range marks {
			if want := slices.Contains(ways, way); defined[sym] != want {
				t.Errorf("way %s: symbol %s defined = %v, want %v", way, sym, defined[sym], want)
			}
		}
		for _, sym := range []string{"rts_console_write", "halvm_panic", "rts_start", "rts_shutdown", "memcpy"} {
			if !defined[sym] {
				t.Errorf("way %s: %s not defined", way, sym)
			}
		}
		sum, err := os.ReadFile(rt.Archive)
		if err != nil {
			t.Fatal(err)
		}
		sums[string(sum)] = way
		// Every way links into a kernel with a program built the same way.
		p := Hello("hi\n")
		p.Name, p.Way = "hello-"+way, way
		if _, err := Build(ctx, dir, p); err != nil {
			t.Errorf("linking a %s-way program: %v", way, err)
		}
	}
	if len(sums) != len(Ways) {
		t.Errorf("only %d distinct archives for %d ways", len(sums), len(Ways))
	}
}

func TestNegativePrograms(t *testing.T) {
	t.Parallel()
	needToolchain(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, p := range []Program{Null(), Panic("boom"), Hang()} {
		k, err := Build(ctx, dir, p)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		f, err := elf.Open(k)
		if err != nil {
			t.Fatal(err)
		}
		notes := xenNotes(t, f)
		if len(notes) != 8 {
			t.Errorf("%s: %d Xen notes, want 8", p.Name, len(notes))
		}
		f.Close()
	}
	if _, err := Build(ctx, dir, Program{Name: "bad", Main: "int hs_main(void) { return undefined_thing; }"}); err == nil || !strings.Contains(err.Error(), "undefined_thing") {
		t.Errorf("broken program: err = %v, want a compile error naming undefined_thing", err)
	}
}

// TestReproducible builds the hello kernel and every archive in two
// different directories and compares bytes.
func TestReproducible(t *testing.T) {
	t.Parallel()
	needToolchain(t)
	ctx := context.Background()
	a, b := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "second-dir")
	ka, err := BuildHello(ctx, a, "Hello, World!\n")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := BuildHello(ctx, b, "Hello, World!\n")
	if err != nil {
		t.Fatal(err)
	}
	same(t, ka, kb)
	for _, way := range []string{"debug", "thr_debug"} { // the ways with -g: paths must not leak
		ra, err := BuildRuntime(ctx, a, way)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := BuildRuntime(ctx, b, way)
		if err != nil {
			t.Fatal(err)
		}
		same(t, ra.Archive, rb.Archive)
		data, _ := os.ReadFile(ra.Archive)
		if bytes.Contains(data, []byte(a)) {
			t.Errorf("%s contains the build directory %s", ra.Archive, a)
		}
	}
}

func same(t *testing.T, a, b string) {
	t.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Errorf("%s and %s differ (%d vs %d bytes)", a, b, len(da), len(db))
	}
}

// TestMakefileMatchesGo runs the shipped Makefile and checks that it
// produces the same start.o and archives, byte for byte, as BuildRuntime.
func TestMakefileMatchesGo(t *testing.T) {
	t.Parallel()
	needToolchain(t)
	testenv.NeedCommand(t, "make", "make")
	ctx := context.Background()
	dir := t.TempDir()
	var rts []Runtime
	for _, way := range Ways {
		rt, err := BuildRuntime(ctx, dir, way)
		if err != nil {
			t.Fatal(err)
		}
		rts = append(rts, rt)
	}
	out := filepath.Join(t.TempDir(), "out")
	srcDir := filepath.Join(dir, "src")
	if err := run.Run(ctx, run.Cmd{Args: []string{"make", "-s", "O=" + out, "all", "hello"}, Dir: srcDir, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(filepath.Join(out, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(xenNotes(t, f)); n != 8 {
		t.Errorf("make hello: %d Xen notes, want 8", n)
	}
	same(t, filepath.Join(out, "start.o"), rts[0].StartObject)
	same(t, filepath.Join(out, "kernel.lds"), rts[0].LinkerScript)
	for _, rt := range rts {
		same(t, filepath.Join(out, filepath.Base(rt.Archive)), rt.Archive)
	}
}
