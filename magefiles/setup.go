package main

import (
	"fmt"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/halvm/halvm-release/internal/hostreq"
)

// CI groups the targets that keep CI's files in step with the code.
type CI mg.Namespace

// Packages writes .ci/packages.txt from the table of host prerequisites (internal/hostreq).
func (CI) Packages() error {
	if err := os.WriteFile(".ci/packages.txt", hostreq.CIPackages(), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote .ci/packages.txt")
	return nil
}
