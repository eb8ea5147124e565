package toolchain

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// checkBootPrereqs checks what GHC's ./boot dies on: every library
// directory of halvm-ghc that has a .cabal file needs a LICENSE.
func checkBootPrereqs(r *Recipe) error {
	libs := filepath.Join(r.SourceDir(), "halvm-ghc", "libraries")
	ents, err := os.ReadDir(libs)
	if err != nil {
		return fmt.Errorf("GHC boot prerequisites: %w", err)
	}
	var missing []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(libs, e.Name())
		cabal, _ := filepath.Glob(filepath.Join(dir, "*.cabal"))
		if len(cabal) == 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "LICENSE")); err != nil {
			missing = append(missing, "halvm-ghc/libraries/"+e.Name()+"/LICENSE")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Errorf("GHC's ./boot would die: missing %s (is a submodule not checked out?)", strings.Join(missing, ", "))
	}
	return nil
}
