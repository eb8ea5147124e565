package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// The official SPDX 2.3 JSON schema is not reachable from the build
// machines (no Go module or Debian package carries it), so ValidateSPDX
// checks the same constraints as that schema — every object's required and
// allowed properties (additionalProperties is false throughout), types,
// enumerations and patterns — plus the spec's rules a schema cannot express:
// unique SPDXIDs, relationships between known elements, a DESCRIBES from the
// document, checksum lengths, and no files in packages with
// filesAnalyzed=false.

// ValidateSPDX checks an SPDX 2.3 JSON document structurally and returns
// every problem found (nil when it is valid).
func ValidateSPDX(data []byte) []Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return []Problem{{Doc: DocSPDX, Msg: "not valid JSON: " + err.Error()}}
	}
	v := &validator{}
	spdxSchema.check(v, doc, "")
	if len(v.problems) == 0 {
		v.semantics(doc.(map[string]any))
	}
	return v.problems
}

type validator struct{ problems []Problem }

func (v *validator) bad(where, format string, a ...any) {
	v.problems = append(v.problems, Problem{Doc: DocSPDX, Where: where, Msg: fmt.Sprintf(format, a...)})
}

// shape is a node of the structural schema.
type shape interface {
	check(v *validator, x any, where string)
}

type strShape struct {
	pattern *regexp.Regexp
	enum    []string
}

type boolShape struct{}
type intShape struct{}

type arrShape struct {
	items    shape
	minItems int
}

type objShape struct {
	props    map[string]shape
	required []string
	open     bool // additional properties allowed (artifactOfs items)
}

func (s strShape) check(v *validator, x any, where string) {
	str, ok := x.(string)
	if !ok {
		v.bad(where, "want a string, got %s", jsonType(x))
		return
	}
	if s.pattern != nil && !s.pattern.MatchString(str) {
		v.bad(where, "%q does not match %s", str, s.pattern)
	}
	if s.enum != nil {
		for _, e := range s.enum {
			if e == str {
				return
			}
		}
		v.bad(where, "%q is not one of %s", str, strings.Join(s.enum, ", "))
	}
}

func (boolShape) check(v *validator, x any, where string) {
	if _, ok := x.(bool); !ok {
		v.bad(where, "want a boolean, got %s", jsonType(x))
	}
}

func (intShape) check(v *validator, x any, where string) {
	n, ok := x.(json.Number)
	if !ok {
		v.bad(where, "want an integer, got %s", jsonType(x))
		return
	}
	if _, err := n.Int64(); err != nil {
		v.bad(where, "want an integer, got %s", n)
	}
}

func (s arrShape) check(v *validator, x any, where string) {
	a, ok := x.([]any)
	if !ok {
		v.bad(where, "want an array, got %s", jsonType(x))
		return
	}
	if len(a) < s.minItems {
		v.bad(where, "want at least %d item(s), got %d", s.minItems, len(a))
	}
	for i, e := range a {
		s.items.check(v, e, fmt.Sprintf("%s[%d]", where, i))
	}
}

func (s objShape) check(v *validator, x any, where string) {
	m, ok := x.(map[string]any)
	if !ok {
		v.bad(where, "want an object, got %s", jsonType(x))
		return
	}
	at := func(k string) string {
		if where == "" {
			return k
		}
		return where + "." + k
	}
	for _, r := range s.required {
		if _, ok := m[r]; !ok {
			v.bad(at(r), "required property is missing")
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sub, known := s.props[k]
		if !known {
			if !s.open {
				v.bad(at(k), "property is not allowed by SPDX 2.3 here")
			}
			continue
		}
		sub.check(v, m[k], at(k))
	}
}

func jsonType(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", x)
}

var (
	spdxDateRE  = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|23:59:60)Z$`)
	spdxIDRE    = regexp.MustCompile(`^SPDXRef-[a-zA-Z0-9.-]+$`)
	spdxHexRE   = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	spdxRefIDRE = regexp.MustCompile(`^(DocumentRef-[a-zA-Z0-9.-]+:)?SPDXRef-[a-zA-Z0-9.-]+$`)

	checksumAlgorithms = []string{"SHA1", "BLAKE3", "SHA3-384", "SHA256", "SHA384", "BLAKE2b-512", "BLAKE2b-256", "SHA3-512",
		"MD2", "ADLER32", "MD4", "SHA3-256", "BLAKE2b-384", "SHA512", "MD6", "MD5", "SHA224"}
	relationshipTypes = []string{"VARIANT_OF", "COPY_OF", "PATCH_FOR", "TEST_DEPENDENCY_OF", "CONTAINED_BY", "DATA_FILE_OF",
		"OPTIONAL_COMPONENT_OF", "ANCESTOR_OF", "GENERATES", "CONTAINS", "OPTIONAL_DEPENDENCY_OF", "FILE_ADDED",
		"REQUIREMENT_DESCRIPTION_FOR", "DEV_DEPENDENCY_OF", "DEPENDENCY_OF", "BUILD_DEPENDENCY_OF", "DESCRIBES",
		"PREREQUISITE_FOR", "HAS_PREREQUISITE", "PROVIDED_DEPENDENCY_OF", "DYNAMIC_LINK", "DESCRIBED_BY", "METAFILE_OF",
		"DEPENDENCY_MANIFEST_OF", "PATCH_APPLIED", "RUNTIME_DEPENDENCY_OF", "TEST_OF", "TEST_TOOL_OF", "DEPENDS_ON",
		"SPECIFICATION_FOR", "FILE_MODIFIED", "DISTRIBUTION_ARTIFACT", "AMENDS", "DOCUMENTATION_OF", "GENERATED_FROM",
		"STATIC_LINK", "OTHER", "BUILD_TOOL_OF", "TEST_CASE_OF", "PACKAGE_OF", "DESCENDANT_OF", "FILE_DELETED",
		"EXPANDED_FROM_ARCHIVE", "DEV_TOOL_OF", "EXAMPLE_OF"}
	checksumLen = map[string]int{"SHA1": 40, "SHA224": 56, "SHA256": 64, "SHA384": 96, "SHA512": 128, "MD5": 32,
		"SHA3-256": 64, "SHA3-384": 96, "SHA3-512": 128, "BLAKE2b-256": 64, "BLAKE2b-384": 96, "BLAKE2b-512": 128}
)

func spdxSchemaTree() shape {
	str := strShape{}
	strs := arrShape{items: str}
	date := strShape{pattern: spdxDateRE}
	elemID := strShape{pattern: spdxIDRE}
	annotation := arrShape{items: objShape{props: map[string]shape{
		"annotationDate": date, "annotationType": strShape{enum: []string{"OTHER", "REVIEW"}}, "annotator": str, "comment": str,
	}, required: []string{"annotationDate", "annotationType", "annotator", "comment"}}}
	checksum := objShape{props: map[string]shape{
		"algorithm": strShape{enum: checksumAlgorithms}, "checksumValue": strShape{pattern: spdxHexRE},
	}, required: []string{"algorithm", "checksumValue"}}
	pointer := objShape{props: map[string]shape{"reference": str, "offset": intShape{}, "lineNumber": intShape{}}, required: []string{"reference"}}
	return objShape{
		required: []string{"SPDXID", "creationInfo", "dataLicense", "name", "spdxVersion", "documentNamespace"},
		props: map[string]shape{
			"$schema": str, "SPDXID": str, "annotations": annotation, "comment": str,
			"creationInfo": objShape{props: map[string]shape{
				"comment": str, "created": date, "creators": arrShape{items: str, minItems: 1}, "licenseListVersion": str,
			}, required: []string{"created", "creators"}},
			"dataLicense": str,
			"externalDocumentRefs": arrShape{items: objShape{props: map[string]shape{
				"checksum": checksum, "externalDocumentId": str, "spdxDocument": str,
			}, required: []string{"checksum", "externalDocumentId", "spdxDocument"}}},
			"hasExtractedLicensingInfos": arrShape{items: objShape{props: map[string]shape{
				"comment": str, "extractedText": str, "licenseId": str, "name": str, "seeAlsos": strs,
				"crossRefs": arrShape{items: objShape{props: map[string]shape{
					"isLive": boolShape{}, "isValid": boolShape{}, "isWayBackLink": boolShape{}, "match": str,
					"order": intShape{}, "timestamp": date, "url": str,
				}, required: []string{"url"}}},
			}, required: []string{"extractedText", "licenseId"}}},
			"name": str,
			"revieweds": arrShape{items: objShape{props: map[string]shape{"comment": str, "reviewDate": date, "reviewer": str},
				required: []string{"reviewDate"}}},
			"spdxVersion": str, "documentNamespace": str, "documentDescribes": strs,
			"packages": arrShape{items: objShape{required: []string{"SPDXID", "downloadLocation", "name"}, props: map[string]shape{
				"SPDXID": elemID, "annotations": annotation, "attributionTexts": strs, "builtDate": date,
				"checksums": arrShape{items: checksum}, "comment": str, "copyrightText": str, "description": str,
				"downloadLocation": str,
				"externalRefs": arrShape{items: objShape{props: map[string]shape{
					"comment":           str,
					"referenceCategory": strShape{enum: []string{"OTHER", "PERSISTENT-ID", "PERSISTENT_ID", "SECURITY", "PACKAGE-MANAGER", "PACKAGE_MANAGER"}},
					"referenceLocator":  str, "referenceType": str,
				}, required: []string{"referenceCategory", "referenceLocator", "referenceType"}}},
				"filesAnalyzed": boolShape{}, "hasFiles": strs, "homepage": str, "licenseComments": str,
				"licenseConcluded": str, "licenseDeclared": str, "licenseInfoFromFiles": strs, "name": str,
				"originator": str, "packageFileName": str,
				"packageVerificationCode": objShape{props: map[string]shape{
					"packageVerificationCodeExcludedFiles": strs, "packageVerificationCodeValue": str,
				}, required: []string{"packageVerificationCodeValue"}},
				"primaryPackagePurpose": strShape{enum: []string{"OTHER", "INSTALL", "ARCHIVE", "FIRMWARE", "APPLICATION", "FRAMEWORK",
					"LIBRARY", "CONTAINER", "SOURCE", "DEVICE", "OPERATING-SYSTEM", "FILE"}},
				"releaseDate": date, "sourceInfo": str, "summary": str, "supplier": str, "validUntilDate": date, "versionInfo": str,
			}}},
			"files": arrShape{items: objShape{required: []string{"SPDXID", "checksums", "fileName"}, props: map[string]shape{
				"SPDXID": elemID, "annotations": annotation, "artifactOfs": arrShape{items: objShape{open: true}},
				"attributionTexts": strs, "checksums": arrShape{items: checksum, minItems: 1}, "comment": str,
				"copyrightText": str, "fileContributors": strs, "fileDependencies": strs, "fileName": str,
				"fileTypes": arrShape{items: strShape{enum: []string{"OTHER", "DOCUMENTATION", "IMAGE", "VIDEO", "ARCHIVE", "SPDX",
					"APPLICATION", "SOURCE", "BINARY", "TEXT", "AUDIO"}}},
				"licenseComments": str, "licenseConcluded": str, "licenseInfoInFiles": strs, "noticeText": str,
			}}},
			"snippets": arrShape{items: objShape{required: []string{"SPDXID", "ranges", "snippetFromFile"}, props: map[string]shape{
				"SPDXID": elemID, "annotations": annotation, "attributionTexts": strs, "comment": str, "copyrightText": str,
				"licenseComments": str, "licenseConcluded": str, "licenseInfoInSnippets": strs, "name": str,
				"ranges": arrShape{minItems: 1, items: objShape{props: map[string]shape{"endPointer": pointer, "startPointer": pointer},
					required: []string{"endPointer", "startPointer"}}},
				"snippetFromFile": str,
			}}},
			"relationships": arrShape{items: objShape{props: map[string]shape{
				"spdxElementId": str, "comment": str, "relatedSpdxElement": str, "relationshipType": strShape{enum: relationshipTypes},
			}, required: []string{"spdxElementId", "relatedSpdxElement", "relationshipType"}}},
		},
	}
}

var spdxSchema = spdxSchemaTree()

// semantics checks what the schema cannot: values, identity and references.
func (v *validator) semantics(doc map[string]any) {
	if s, _ := doc["spdxVersion"].(string); s != "SPDX-2.3" {
		v.bad("spdxVersion", "want SPDX-2.3, got %q", s)
	}
	if s, _ := doc["dataLicense"].(string); s != "CC0-1.0" {
		v.bad("dataLicense", "want CC0-1.0, got %q", s)
	}
	if s, _ := doc["SPDXID"].(string); s != "SPDXRef-DOCUMENT" {
		v.bad("SPDXID", "want SPDXRef-DOCUMENT, got %q", s)
	}
	ns, _ := doc["documentNamespace"].(string)
	if u, err := url.Parse(ns); err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(ns, "#") {
		v.bad("documentNamespace", "want an absolute URI without '#', got %q", ns)
	}
	ids := map[string]string{"SPDXRef-DOCUMENT": "SPDXID"}
	notAnalyzed := map[string]bool{}
	isFile := map[string]bool{}
	for _, list := range []string{"packages", "files", "snippets"} {
		items, _ := doc[list].([]any)
		for i, x := range items {
			m := x.(map[string]any)
			id, _ := m["SPDXID"].(string)
			where := fmt.Sprintf("%s[%d].SPDXID", list, i)
			if prev, dup := ids[id]; dup {
				v.bad(where, "%s is already used at %s", id, prev)
			}
			ids[id] = where
			if fa, ok := m["filesAnalyzed"].(bool); list == "packages" && ok && !fa {
				notAnalyzed[id] = true
				if _, has := m["packageVerificationCode"]; has {
					v.bad(fmt.Sprintf("packages[%d].packageVerificationCode", i), "not allowed when filesAnalyzed is false")
				}
			}
			if list == "files" {
				isFile[id] = true
			}
			sums, _ := m["checksums"].([]any)
			for k, c := range sums {
				cm := c.(map[string]any)
				alg, _ := cm["algorithm"].(string)
				val, _ := cm["checksumValue"].(string)
				if n, known := checksumLen[alg]; known && len(val) != n {
					v.bad(fmt.Sprintf("%s[%d].checksums[%d].checksumValue", list, i, k), "a %s checksum has %d hex digits, got %d", alg, n, len(val))
				}
			}
		}
	}
	describes := false
	rels, _ := doc["relationships"].([]any)
	for i, x := range rels {
		m := x.(map[string]any)
		a, _ := m["spdxElementId"].(string)
		b, _ := m["relatedSpdxElement"].(string)
		typ, _ := m["relationshipType"].(string)
		where := fmt.Sprintf("relationships[%d]", i)
		if _, ok := ids[a]; !ok && !external(a) {
			v.bad(where+".spdxElementId", "%s is not an element of this document", a)
		}
		if _, ok := ids[b]; !ok && !external(b) && b != "NONE" && b != "NOASSERTION" {
			v.bad(where+".relatedSpdxElement", "%s is not an element of this document", b)
		}
		if a == "SPDXRef-DOCUMENT" && typ == "DESCRIBES" {
			describes = true
		}
		if typ == "CONTAINS" && notAnalyzed[a] && isFile[b] {
			v.bad(where, "package %s has filesAnalyzed=false and must not contain file %s", a, b)
		}
	}
	if dd, _ := doc["documentDescribes"].([]any); len(dd) > 0 {
		return
	}
	if !describes {
		v.bad("relationships", "no SPDXRef-DOCUMENT DESCRIBES relationship: the document must say what it describes")
	}
}

func external(id string) bool {
	return strings.HasPrefix(id, "DocumentRef-") && spdxRefIDRE.MatchString(id)
}
