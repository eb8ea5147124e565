package verify

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/pipeline"
)

// release writes a minimal release directory holding one file and a
// ledger recording it (and a publication) at the given paths.
func writeRelease(t *testing.T, dir, filePath, repoPath string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "repos", "apt", "publications", "0001-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sbom", "x.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var l pipeline.Ledger
	if _, err := l.AddFile(pipeline.KindSPDX, "x", "halvm", p, filePath); err != nil {
		t.Fatal(err)
	}
	l.Add(pipeline.Artifact{Kind: pipeline.KindAptRepo, Name: "apt", Path: repoPath})
	l.Add(pipeline.Artifact{Kind: pipeline.KindSource, Name: "src", Path: "git+https://example.org/x@abc"})
	if err := l.WriteFile(filepath.Join(dir, "ledger.json")); err != nil {
		t.Fatal(err)
	}
}

// TestLoadEnvResolvesAgainstTheTree: ledger paths resolve against the
// release directory and the publish root it is given, whatever the
// directory is named; a path leaving its tree (absolute, "..", through a
// symbolic link) is refused, naming the artifact and the ledger.
func TestLoadEnvResolvesAgainstTheTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-dist")
	writeRelease(t, dir, "sbom/x.json", "apt/publications/0001-a")
	env, err := LoadEnv(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if env.RepoPath("apt/publications/0001-a") != filepath.Join(dir, "repos", "apt", "publications", "0001-a") {
		t.Errorf("RepoPath = %s", env.RepoPath("apt/publications/0001-a"))
	}
	if env.Paths["release"] != dir || env.Paths["publish-root"] != filepath.Join(dir, "repos") {
		t.Errorf("paths: %v", env.Paths)
	}
	if len(env.Inputs) != 1 || env.Inputs[0].Role != "ledger" || env.Inputs[0].Path != filepath.Join(dir, "ledger.json") || len(env.Inputs[0].SHA256) != 64 {
		t.Errorf("inputs: %+v", env.Inputs)
	}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, repo, want string }{
		{"/etc/passwd", "apt/publications/0001-a", `spdx x: path "/etc/passwd" is absolute`},
		{"../../dist/sbom/x.json", "apt/publications/0001-a", `spdx x: path "../../dist/sbom/x.json" leaves its tree`},
		{"link/x.json", "apt/publications/0001-a", "leads out of its tree through a symbolic link"},
		{"sbom/x.json", "../../dist/repos/apt/publications/0001-a", `apt-repo apt: path "../../dist/repos/apt/publications/0001-a" leaves its tree (the publish root is ` + filepath.Join(dir, "repos")},
	} {
		writeRelease(t, dir, "sbom/x.json", c.repo)
		l, err := pipeline.ReadLedger(filepath.Join(dir, "ledger.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range l.Find(pipeline.KindSPDX, "") {
			a.Path = c.file
			l.Add(a)
		}
		if err := l.WriteFile(filepath.Join(dir, "ledger.json")); err != nil {
			t.Fatal(err)
		}
		_, err = LoadEnv(dir, "")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, "ledger.json")+" points outside") {
			t.Errorf("%s, %s: %v, want it to say %q", c.file, c.repo, err, c.want)
		}
	}
}

// TestReportIsNeverStale: the report says "running" while the checks run,
// and an abort replaces an earlier pass with a failure naming the cause.
func TestReportIsNeverStale(t *testing.T) {
	dir := t.TempDir()
	writeRelease(t, dir, "sbom/x.json", "apt/publications/0001-a")
	env, err := LoadEnv(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "verify.json")
	read := func() map[string]any {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var during map[string]any
	c := passing("a", Signatures)
	inner := c.Run
	c.Run = func(ctx context.Context, e *Env) (Evidence, error) {
		during = read()
		return inner(ctx, e)
	}
	if err := Verify(context.Background(), env, []Check{c}, Options{Log: &strings.Builder{}}); err != nil {
		t.Fatal(err)
	}
	if during["status"] != "running" {
		t.Errorf("while running the report says %v", during["status"])
	}
	after := read()
	if after["status"] != "pass" {
		t.Fatalf("after a pass the report says %v", after["status"])
	}
	if p, _ := after["paths"].(map[string]any); p["release"] != dir {
		t.Errorf("report paths: %v", after["paths"])
	}
	if in, _ := after["inputs"].([]any); len(in) != 1 {
		t.Errorf("report inputs: %v", after["inputs"])
	}
	if err := WriteAborted(path, env, errors.New("the image layout x has 1 bad blob(s)")); err != nil {
		t.Fatal(err)
	}
	m := read()
	if m["status"] != "fail" || !strings.Contains(m["aborted"].(string), "1 bad blob") {
		t.Errorf("after an abort the report says %v (%v)", m["status"], m["aborted"])
	}
}
