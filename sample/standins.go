package sample

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// WriteStandIns writes the sample's stand-in bootstrap tools, which answer
// version probes and compile nothing: ghc, ghc-pkg, haddock and hsc2hs
// (with a global package db that registers terminfo) below
// bootstrapPrefix, happy and cabal below toolPrefix/bin. Tests that run
// HaLVM's real configure where the real GHC 8.0.2 is unreachable use them
// to answer only its version probes; a step that runs the bootstrap GHC
// fails with them ("cannot compile Haskell"). It returns the programs
// written, sorted.
func WriteStandIns(bootstrapPrefix, toolPrefix string) ([]string, error) {
	libdir := filepath.Join(bootstrapPrefix, "lib")
	var written []string
	write := func(dst string, data []byte, mode os.FileMode) error {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		if mode&0o111 != 0 {
			written = append(written, dst)
		}
		return nil
	}
	bins, err := fs.Glob(embedded, "tree/ghc-bindist/bin/*.in")
	if err != nil {
		return nil, err
	}
	for _, b := range bins {
		data, err := embedded.ReadFile(b)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(path.Base(b), ".in")
		if err := write(filepath.Join(bootstrapPrefix, "bin", name), []byte(strings.ReplaceAll(string(data), "@libdir@", libdir)), 0o755); err != nil {
			return nil, fmt.Errorf("writing stand-in %s: %w", name, err)
		}
	}
	confs, err := fs.Glob(embedded, "tree/ghc-bindist/lib/package.conf.d/*.conf")
	if err != nil {
		return nil, err
	}
	for _, c := range confs {
		data, err := embedded.ReadFile(c)
		if err != nil {
			return nil, err
		}
		if err := write(filepath.Join(libdir, "package.conf.d", path.Base(c)), data, 0o644); err != nil {
			return nil, err
		}
	}
	for name, src := range map[string]string{
		"happy": "tree/tools/happy-1.19.12/src/happy.sh",
		"cabal": "tree/tools/cabal-install-1.24.0.2/cabal",
	} {
		data, err := embedded.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := write(filepath.Join(toolPrefix, "bin", name), data, 0o755); err != nil {
			return nil, fmt.Errorf("writing stand-in %s: %w", name, err)
		}
	}
	sort.Strings(written)
	return written, nil
}
