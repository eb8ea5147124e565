//go:build ignore

// Zero-install Mage: `go run mage.go <target>` runs the targets in magefiles/
// with the mage version pinned in go.mod. `go run mage.go -l` lists them.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
