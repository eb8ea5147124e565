// Package packagingtest writes small fake installed toolchain trees (the
// DESTDIR of `make install`) for tests of the packaging stage and of what
// reads its packages: halvm-ghc answers --version only when its libdir is
// in place, halvm-ghc-pkg recache writes the package cache, as the real
// ones need. It does not import packaging, so packaging's own tests use it
// too.
package packagingtest

import (
	"os"
	"path/filepath"
	"strings"
)

// WriteTree writes a fake toolchain of version for flavour under root,
// installed with prefix and the toolchain's own directory lib (Layout's
// HaLVMLibdir). flavour ends up in the settings so flavours' files differ.
func WriteTree(root, prefix, lib, version, flavour string) error {
	files := map[string]string{
		prefix + "/bin/halvm-ghc": "#!/bin/sh\n# HaLVM wrapper (fake, for packaging tests)\nLIBDIR=" + lib + "\n" +
			"[ -f \"$LIBDIR/settings\" ] || { echo \"halvm-ghc: $LIBDIR/settings missing\" >&2; exit 1; }\n" +
			"if [ \"$1\" = --version ]; then echo \"The Glorious Glasgow Haskell Compilation System, version 8.0.2 (HaLVM " + version + ", " + flavour + ")\"; exit 0; fi\n" +
			"exec \"$LIBDIR/bin/ghc\" -B\"$LIBDIR\" -L\"$LIBDIR\" -pgml \"$LIBDIR/ldkernel\" -optl -static -rtsopts \"$@\"\n",
		prefix + "/bin/halvm-ghc-pkg": "#!/bin/sh\n# HaLVM package tool (fake)\nLIBDIR=" + lib + "\n" +
			"case \"$1\" in\nrecache) cat \"$LIBDIR\"/package.conf.d/*.conf > \"$LIBDIR/package.conf.d/package.cache\" ;;\n" +
			"list) ls \"$LIBDIR/package.conf.d\" ;;\n*) echo \"halvm-ghc-pkg: unknown command $1\" >&2; exit 1 ;;\nesac\n",
		lib + "/settings":                            "[(\"C compiler command\", \"gcc\"), (\"flavour\", \"" + flavour + "\")]\n",
		lib + "/package.conf.d/base-4.9.1.0.conf":    "name: base\nversion: 4.9.1.0\nimport-dirs: ${pkgroot}/base-4.9.1.0\n",
		lib + "/package.conf.d/rts.conf":             "name: rts\nversion: 1.0\n",
		lib + "/ldkernel":                            "#!/bin/sh\nexec ld -T " + lib + "/kernel.lds \"$@\"\n",
		lib + "/kernel.lds":                          "ENTRY(_start)\nSECTIONS { . = 0x0; .text : { *(.text) } }\n",
		lib + "/include/minlibc/stdio.h":             "/* minlibc stdio.h (fake) */\n",
		lib + "/base-4.9.1.0/Prelude.hi":             "fake interface file\n",
		prefix + "/include/libIVC.h":                 "/* libIVC */\n",
		prefix + "/share/doc/halvm-ghc-8.0.2/README": "GHC documentation (fake)\n",
	}
	for p, body := range files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, []byte(body), mode); err != nil {
			return err
		}
	}
	// An empty directory, symlinks as `make install` makes them.
	if err := os.MkdirAll(filepath.Join(root, lib, "rts-1.0"), 0o755); err != nil {
		return err
	}
	for _, tool := range []string{"halvm-ghc", "halvm-ghc-pkg"} {
		if err := os.Symlink(tool, filepath.Join(root, prefix, "bin", "x86_64-unknown-HaLVM-"+strings.TrimPrefix(tool, "halvm-"))); err != nil {
			return err
		}
	}
	return nil
}
