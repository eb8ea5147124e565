package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/run"
)

// moduleDir finds a required module's directory in the module cache with
// the go command (offline: the module is already downloaded for the build).
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	env := run.Merge(run.BaseEnv(), run.Inherit("GOPATH", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOCACHE", "GOROOT", "GOTOOLCHAIN")...)
	out, err := run.Output(context.Background(), run.Cmd{Args: []string{"go", "list", "-m", "-f", "{{.Dir}}", mod}, Dir: "..", Env: env})
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("locating module %s in the module cache: %v (run `go mod download %s`)", mod, err, mod)
	}
	return dir
}

func TestCycloneDXValidatesAgainstOfficialSchema(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		d := generate(t, testInput(t, fl))
		if err := ValidateCycloneDX(context.Background(), d.CycloneDX); err != nil {
			t.Errorf("%s: %v", fl, err)
		}
	}
	// The validator is not vacuous: a broken BOM is rejected.
	d := generate(t, testInput(t, "halvm"))
	broken := bytes.Replace(d.CycloneDX, []byte(`"alg": "SHA-256"`), []byte(`"alg": "SHA-257"`), 1)
	broken = bytes.Replace(broken, []byte(`"serialNumber": "urn:uuid:`), []byte(`"serialNumber": "uuid:`), 1)
	err := ValidateCycloneDX(context.Background(), broken)
	if err == nil || !strings.Contains(err.Error(), "/hashes/0/alg") || !strings.Contains(err.Error(), "serialNumber") {
		t.Errorf("the schema accepted a bad hash algorithm and serial number: %v", err)
	}
}

func TestSPDXIsStructurallyValid(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		d := generate(t, testInput(t, fl))
		if ps := ValidateSPDX(d.SPDX); ps != nil {
			t.Errorf("%s: %d problem(s):\n%s", fl, len(ps), joinProblems(ps))
		}
	}
}

// The validator accepts the SPDX project's own 2.3 example (shipped in the
// tools-golang module), so it is no stricter than the official schema there.
func TestSPDXValidatorAcceptsOfficialExample(t *testing.T) {
	dir := moduleDir(t, "github.com/spdx/tools-golang")
	data, err := os.ReadFile(filepath.Join(dir, "examples/sample-docs/json/SPDXJSONExample-v2.3.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := ValidateSPDX(data); ps != nil {
		t.Errorf("the official example is rejected:\n%s", joinProblems(ps))
	}
}

func TestSPDXValidatorRejects(t *testing.T) {
	good := generate(t, testInput(t, "halvm")).SPDX
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	pkg := func(m map[string]any, i int) map[string]any { return m["packages"].([]any)[i].(map[string]any) }
	cases := map[string]struct {
		doc  []byte
		want string
	}{
		"nested files (the tools-golang trap)": {edit(func(m map[string]any) {
			pkg(m, 0)["files"] = []any{map[string]any{"fileName": "./x", "SPDXID": "SPDXRef-x"}}
		}), "packages[0].files: property is not allowed"},
		"missing namespace": {edit(func(m map[string]any) { delete(m, "documentNamespace") }), "documentNamespace: required property is missing"},
		"bad SPDXID":        {edit(func(m map[string]any) { pkg(m, 1)["SPDXID"] = "SPDXRef-a_b" }), `packages[1].SPDXID: "SPDXRef-a_b" does not match`},
		"bad created":       {edit(func(m map[string]any) { m["creationInfo"].(map[string]any)["created"] = "2018-12-06 00:00:00" }), "creationInfo.created"},
		"bad relationship": {edit(func(m map[string]any) {
			m["relationships"].([]any)[0].(map[string]any)["relationshipType"] = "BUILT_FROM"
		}), `"BUILT_FROM" is not one of`},
		"dangling relationship": {edit(func(m map[string]any) {
			m["relationships"].([]any)[0].(map[string]any)["relatedSpdxElement"] = "SPDXRef-nowhere"
		}), "SPDXRef-nowhere is not an element of this document"},
		"short sha256": {edit(func(m map[string]any) {
			for _, p := range m["packages"].([]any) {
				if cs, ok := p.(map[string]any)["checksums"].([]any); ok {
					cs[0].(map[string]any)["checksumValue"] = "abcd"
					return
				}
			}
		}), "a SHA256 checksum has 64 hex digits, got 4"},
		"duplicate id": {edit(func(m map[string]any) { pkg(m, 2)["SPDXID"] = pkg(m, 1)["SPDXID"] }), "is already used at packages[1].SPDXID"},
		"not JSON":     {[]byte("{"), "not valid JSON"},
	}
	for name, c := range cases {
		ps := ValidateSPDX(c.doc)
		if !strings.Contains(joinProblems(ps), c.want) {
			t.Errorf("%s: want a problem containing %q, got:\n%s", name, c.want, joinProblems(ps))
		}
	}
}

func joinProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// The sample upstream is fetched from file:// URLs, and an SBOM may be made
// before anything is packaged: both still give valid documents.
func TestSampleUpstreamDocumentsAreValid(t *testing.T) {
	in := Input{Lock: realLock(t), Flavour: "halvm"}
	for i := range in.Lock.Sources {
		in.Lock.Sources[i].URL = "file:///srv/sample-upstream/" + in.Lock.Sources[i].Name + ".git"
	}
	spdx, err := SPDX(in)
	if err != nil {
		t.Fatal(err)
	}
	if ps := ValidateSPDX(spdx); ps != nil {
		t.Errorf("SPDX:\n%s", joinProblems(ps))
	}
	if !strings.Contains(string(spdx), "pkg:generic/halvm-ghc@85c7800461ddd4054ccc086cb3ade5e20edf857b?vcs_url=git%2Bfile%3A%2F%2F%2Fsrv") {
		t.Error("file:// sources do not get a pkg:generic purl with vcs_url")
	}
	cdx, err := CycloneDX(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateCycloneDX(context.Background(), cdx); err != nil {
		t.Errorf("CycloneDX:\n%v", err)
	}
}
