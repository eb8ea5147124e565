package sbom

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/halvm/halvm-release/internal/run"
)

// cycloneDXModule ships the official CycloneDX JSON schemas.
const cycloneDXModule = "github.com/CycloneDX/cyclonedx-go"

var (
	cdxOnce   sync.Once
	cdxSchema *jsonschema.Schema
	cdxErr    error
)

// ValidateCycloneDX validates a BOM against the official CycloneDX 1.5 JSON
// schema, with the SPDX license and JSF schemas it refers to, all read from
// the cyclonedx-go module in the module cache (located with `go list -m`):
// no schema is fetched from the network.
func ValidateCycloneDX(ctx context.Context, bom []byte) error {
	cdxOnce.Do(func() { cdxSchema, cdxErr = compileCycloneDX(ctx) })
	if cdxErr != nil {
		return cdxErr
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bom))
	if err != nil {
		return fmt.Errorf("CycloneDX BOM is not JSON: %w", err)
	}
	if err := cdxSchema.Validate(inst); err != nil {
		return fmt.Errorf("the CycloneDX 1.5 schema rejects the BOM: %w", err)
	}
	return nil
}

func compileCycloneDX(ctx context.Context) (*jsonschema.Schema, error) {
	env := run.Merge(run.BaseEnv(), run.Inherit("GOPATH", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOCACHE", "GOROOT", "GOTOOLCHAIN")...)
	out, err := run.Output(ctx, run.Cmd{Args: []string{"go", "list", "-m", "-f", "{{.Dir}}", cycloneDXModule}, Env: env})
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return nil, fmt.Errorf("locating the CycloneDX schemas (module %s) in the module cache: %v (run `go mod download %s` in this repository)", cycloneDXModule, err, cycloneDXModule)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, file := range map[string]string{
		"http://cyclonedx.org/schema/bom-1.5.schema.json":  "bom-1.5.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
	} {
		f, err := os.Open(filepath.Join(dir, "schema", file))
		if err != nil {
			return nil, fmt.Errorf("reading the CycloneDX schema %s: %w", file, err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parsing the CycloneDX schema %s: %w", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("adding the CycloneDX schema %s: %w", file, err)
		}
	}
	sch, err := c.Compile("http://cyclonedx.org/schema/bom-1.5.schema.json")
	if err != nil {
		return nil, fmt.Errorf("compiling the CycloneDX 1.5 schema: %w", err)
	}
	return sch, nil
}
