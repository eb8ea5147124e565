// Package testprog holds the Haskell programs the project compiles with a
// built toolchain to prove it works: Hello prints "Hello, World!" through
// XenDevice's PV console (Hypervisor.Console) and exits; Null boots and
// exits silently. The packaging and verify stages take them from here.
package testprog

import (
	"embed"
	"io/fs"
)

//go:embed Hello.hs Null.hs
var files embed.FS

// FS holds Hello.hs and Null.hs.
var FS fs.FS = files

// Names of the programs and the text Hello prints.
const (
	Hello       = "Hello.hs"
	Null        = "Null.hs"
	HelloOutput = "Hello, World!"
)

// Source returns a program's source.
func Source(name string) []byte {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		panic(err)
	}
	return b
}
