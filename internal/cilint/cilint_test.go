package cilint

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type workflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Needs    []string          `yaml:"needs"`
		Env      map[string]string `yaml:"env"`
		Strategy struct {
			Matrix map[string][]string `yaml:"matrix"`
		} `yaml:"strategy"`
		Steps []struct {
			Run string            `yaml:"run"`
			Env map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestReleaseWorkflowGraph: the workflow has the graph — a cell per
// flavour x layout building into the shared cache, the independent rebuild
// in parallel without it, a release job needing both that verifies with
// the rebuild's output — and references secrets by name only.
func TestReleaseWorkflowGraph(t *testing.T) {
	raw, err := os.ReadFile("../../.github/workflows/release.yml")
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.Env["HALVM_CACHE_REGISTRY"], "ghcr.io/") {
		t.Errorf("workflow env HALVM_CACHE_REGISTRY = %q", w.Env["HALVM_CACHE_REGISTRY"])
	}
	cells, rebuild, rel := w.Jobs["cells"], w.Jobs["rebuild"], w.Jobs["release"]
	if m := cells.Strategy.Matrix; strings.Join(m["flavour"], ",") != "halvm,halvm-gmp" || strings.Join(m["layout"], ",") != "deb,rpm" {
		t.Errorf("cells matrix = %v", m)
	}
	if !runs(cells.Steps, "go run mage.go toolchain") || !runs(rebuild.Steps, "go run mage.go ci:rebuild") || !runs(rel.Steps, "go run mage.go release") {
		t.Error("a job does not run its mage target")
	}
	if len(rebuild.Needs) != 0 || rebuild.Env["HALVM_CACHE_REGISTRY"] != "" {
		t.Errorf("rebuild: needs %v, HALVM_CACHE_REGISTRY %q: want a parallel job without the shared cache", rebuild.Needs, rebuild.Env["HALVM_CACHE_REGISTRY"])
	}
	if strings.Join(rel.Needs, ",") != "cells,rebuild" {
		t.Errorf("release needs %v", rel.Needs)
	}
	found := false
	for _, s := range rel.Steps {
		found = found || s.Env["HALVM_REBUILD_FROM"] != ""
	}
	if !found {
		t.Error("the release job does not verify with the rebuild job's output (HALVM_REBUILD_FROM)")
	}
	// Secrets by name only: every use is ${{ secrets.NAME }}, never echoed.
	for _, m := range regexp.MustCompile(`secrets\.[A-Za-z_]*[^A-Za-z_ ]`).FindAllString(string(raw), -1) {
		t.Errorf("secret used other than by name: %q", m)
	}
	if regexp.MustCompile(`echo[^\n]*secrets\.`).Match(raw) {
		t.Error("a secret is echoed")
	}
}

func runs(steps []struct {
	Run string            `yaml:"run"`
	Env map[string]string `yaml:"env"`
}, cmd string) bool {
	for _, s := range steps {
		if strings.Contains(s.Run, cmd) {
			return true
		}
	}
	return false
}

// TestLint runs the pinned actionlint on the project's workflows (clean)
// and on a broken one (caught).
func TestLint(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := Lint(ctx, "../..", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	bad := t.TempDir()
	os.MkdirAll(filepath.Join(bad, ".github", "workflows"), 0o755)
	os.WriteFile(filepath.Join(bad, ".github", "workflows", "x.yml"), []byte("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [nope]\n    steps:\n      - run: echo ${{ matrix.nothing }}\n"), 0o644)
	err := Lint(ctx, bad, &out)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("a broken workflow: %v", err)
	}
}
