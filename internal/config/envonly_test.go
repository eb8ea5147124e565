package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// envReaders are the environment readers the rule below covers.
var envReaders = regexp.MustCompile(`\b(os\.(Getenv|LookupEnv|Environ|ExpandEnv)|syscall\.(Getenv|Environ))\b`)

// envOwners read the environment by design: this package (the table of
// variables), the tests' own switches, and the command lines that hand
// os.Getenv to it.
var envOwners = []string{"internal/config/", "internal/testenv/", "magefiles/", "cmd/"}

// envAllowed are the other files that may read the environment, and why.
// (cmd/halvm-rebuild, the reproducibility rebuild's child, hands its
// environment to release.RebuildChild as a lookup function.)
// Keep it short: everything else takes its settings from internal/config.
var envAllowed = map[string]string{
	// What a child process inherits is the command runner's business:
	// Inherit copies named variables (PATH, DOCKER_HOST, ...) into the
	// explicit environment of a child.
	"internal/run/run.go": "run.Inherit builds child environments",
}

// TestNoEnvironmentReadingOutsideConfig: no library package reads the
// environment; every variable goes through internal/config (Vars), which
// `go run mage.go env` lists.
func TestNoEnvironmentReadingOutsideConfig(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root %s: %v", root, err)
	}
	used := map[string]bool{}
	var bad []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || !strings.Contains(rel, "/") {
			return nil // tests, and mage.go at the root (a build-ignored launcher)
		}
		for _, o := range envOwners {
			if strings.HasPrefix(rel, o) {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := envReaders.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				if _, ok := envAllowed[rel]; ok {
					used[rel] = true
					continue
				}
				bad = append(bad, fmt.Sprintf("%s:%d: %s", rel, i+1, m))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s: read the environment in internal/config (add the variable to Vars) and pass the value in", b)
	}
	for f, why := range envAllowed {
		if !used[f] {
			t.Errorf("envAllowed lists %s (%s), which no longer reads the environment: remove the entry", f, why)
		}
	}
}

// literalRead is a read of a HALVM_ variable named literally.
var literalRead = regexp.MustCompile(`(?:\bos\.(?:Getenv|LookupEnv)\(|\b(?:env|getenv)\(|\b[gG]et\((?:env|getenv|os\.Getenv),\s*)"(HALVM_[A-Z0-9_]+)"`)

// TestEveryVariableIsListed: every HALVM_ variable the code or its tests
// read by name is in Vars, which `go run mage.go env` prints.
func TestEveryVariableIsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, v := range Vars {
		listed[v.Name] = true
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literalRead.FindAllStringSubmatch(string(b), -1) {
			seen++
			if !listed[m[1]] {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s reads %s, which internal/config's Vars does not list: add it with its default and what it does", rel, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("found only %d reads of HALVM_ variables: the pattern no longer matches the code", seen)
	}
}
