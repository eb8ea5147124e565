package sbom

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// cycloneDXSchemas are the official CycloneDX 1.5 JSON schema and the SPDX
// license and JSF schemas it refers to, embedded (schema/README.md says
// where they come from): verifying a release needs no Go toolchain, module
// cache or checkout, and fetches nothing.
//
//go:embed schema/bom-1.5.schema.json schema/spdx.schema.json schema/jsf-0.82.schemax.json
var cycloneDXSchemas embed.FS

// cycloneDXSchemaFiles maps each schema's $id to its embedded file.
var cycloneDXSchemaFiles = map[string]string{
	"http://cyclonedx.org/schema/bom-1.5.schema.json":  "bom-1.5.schema.json",
	"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
	"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
}

var (
	cdxOnce   sync.Once
	cdxSchema *jsonschema.Schema
	cdxErr    error
)

// ValidateCycloneDX validates a BOM against the official CycloneDX 1.5 JSON
// schema, with the SPDX license and JSF schemas it refers to, all embedded
// in the program: no schema is fetched, no go command is run.
func ValidateCycloneDX(_ context.Context, bom []byte) error {
	cdxOnce.Do(func() { cdxSchema, cdxErr = compileCycloneDX() })
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

func compileCycloneDX() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, file := range cycloneDXSchemaFiles {
		f, err := cycloneDXSchemas.Open("schema/" + file)
		if err != nil {
			return nil, fmt.Errorf("reading the embedded CycloneDX schema %s: %w", file, err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parsing the embedded CycloneDX schema %s: %w", file, err)
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
