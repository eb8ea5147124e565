// Package pvrt owns the sample upstream's runtime system: a minimal 64-bit
// Xen PV guest runtime in C and assembly (entry point and Xen ELF notes,
// PV console ring writer, event channel notify, drain-then-shutdown,
// halvm_panic) that stands in for the HaLVM RTS. Sources is the source tree
// with its Makefile, ready to drop into the sample upstream; Build compiles
// small programs against it into bootable kernels for tests.
//
// The runtime builds in the five RTS ways of HaLVM's GHC (v, p, thr, debug,
// thr_debug) from the same sources, selected by preprocessor macros:
// PROFILING (call and hypercall counters reported on exit), THREADED (a
// console lock between capabilities), DEBUG (assertions, stack canary
// checks, -O0 -g).
package pvrt

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
)

//go:embed src
var src embed.FS

// Sources is the runtime's source tree: start.x86_64.S, kernel.lds,
// Makefile, include/pvrt/*.h and rts/*.c.
var Sources fs.FS = mustSub(src, "src")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Ways are the RTS ways, in the order HaLVM's build lists them.
var Ways = []string{"v", "p", "thr", "debug", "thr_debug"}

// RTSSources are the runtime's C files (under rts/), in archive order.
var RTSSources = []string{"console.c", "main.c", "panic.c", "printf.c", "profile.c", "string.c", "threaded.c"}

// BaseCFlags are the flags every pvrt object is compiled with (the
// Makefile's CFLAGS_BASE, without the include and prefix-map flags that
// depend on where the sources are).
var BaseCFlags = []string{
	"-std=gnu11", "-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone",
	"-mno-sse", "-mno-mmx", "-mno-sse2", "-mno-avx", "-fno-stack-protector",
	"-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fcf-protection=none",
	"-fno-builtin", "-nostdlib", "-static", "-Wall", "-Wextra", "-Werror",
}

// LinkFlags link start.o, the program and an RTS archive into a kernel
// (after "-Wl,-T,kernel.lds").
var LinkFlags = []string{
	"-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none",
	"-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack",
}

// WayFlags returns the compiler flags that select an RTS way (the
// Makefile's way_flags_<way>); programs linked against a way's archive are
// compiled with them too.
func WayFlags(way string) ([]string, error) {
	def := `-DRTS_WAY="` + way + `"`
	switch way {
	case "v":
		return []string{"-O2", def}, nil
	case "p":
		return []string{"-O2", def, "-DPROFILING", "-finstrument-functions"}, nil
	case "thr":
		return []string{"-O2", def, "-DTHREADED"}, nil
	case "debug":
		return []string{"-O0", "-g", def, "-DDEBUG"}, nil
	case "thr_debug":
		return []string{"-O0", "-g", def, "-DTHREADED", "-DDEBUG"}, nil
	}
	return nil, fmt.Errorf("unknown RTS way %q: want one of %v", way, Ways)
}

// ArchiveName is the RTS archive of a way: libHSrts.a for v,
// libHSrts_<way>.a otherwise (GHC's naming).
func ArchiveName(way string) (string, error) {
	if !slices.Contains(Ways, way) {
		return "", fmt.Errorf("unknown RTS way %q: want one of %v", way, Ways)
	}
	if way == "v" {
		return "libHSrts.a", nil
	}
	return "libHSrts_" + way + ".a", nil
}
