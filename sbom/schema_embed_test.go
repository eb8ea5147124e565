package sbom

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedSchemasMatchTheModule: the embedded schemas are the
// cyclonedx-go module's, byte for byte.
func TestEmbeddedSchemasMatchTheModule(t *testing.T) {
	dir := moduleDir(t, "github.com/CycloneDX/cyclonedx-go")
	for _, file := range cycloneDXSchemaFiles {
		want, err := os.ReadFile(filepath.Join(dir, "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cycloneDXSchemas.ReadFile("schema/" + file)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("embedded %s differs from the module's (%v): copy it again (schema/README.md)", file, err)
		}
	}
}

// noGoChildVar makes the test binary the child of TestValidateWithoutGo.
const noGoChildVar = "SBOM_TEST_NO_GO_CHILD"

// TestValidateWithoutGo runs the CycloneDX validation the verify suite
// uses in a process with no go on PATH and an empty module cache: a valid
// BOM passes, a broken one is rejected.
func TestValidateWithoutGo(t *testing.T) {
	d := generate(t, testInput(t, "halvm"))
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.cdx.json"), filepath.Join(dir, "bad.cdx.json")
	if err := os.WriteFile(good, d.CycloneDX, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(d.CycloneDX, []byte(`"alg": "SHA-256"`), []byte(`"alg": "SHA-257"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{noGoChildVar + "=" + good + ":" + bad, "PATH=" + empty, "HOME=" + empty,
		"GOPATH=" + empty, "GOMODCACHE=" + empty, "GOROOT=" + empty, "GOFLAGS=-mod=mod", "GOPROXY=off"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("validation without go: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("no go on PATH; good BOM valid; broken BOM rejected")) {
		t.Fatalf("the child did not validate:\n%s", out)
	}
}

// noGoChild is the child half of TestValidateWithoutGo (from TestMain).
func noGoChild(files string) int {
	good, bad, _ := strings.Cut(files, ":")
	if p, err := exec.LookPath("go"); err == nil {
		fmt.Println("go is on PATH:", p)
		return 1
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		return b
	}
	if err := ValidateCycloneDX(context.Background(), read(good)); err != nil {
		fmt.Println("a valid BOM:", err)
		return 1
	}
	if err := ValidateCycloneDX(context.Background(), read(bad)); err == nil {
		fmt.Println("a broken BOM was accepted")
		return 1
	}
	fmt.Println("no go on PATH; good BOM valid; broken BOM rejected")
	return 0
}

func TestMain(m *testing.M) {
	if files := os.Getenv(noGoChildVar); files != "" {
		os.Exit(noGoChild(files))
	}
	os.Exit(m.Run())
}
