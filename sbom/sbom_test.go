package sbom

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

func generate(t *testing.T, in Input) Documents {
	t.Helper()
	d, err := Generate(in)
	if err != nil {
		t.Fatalf("Generate(%s): %v", in.Flavour, err)
	}
	return d
}

func TestDocumentsAreDeterministic(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		a := generate(t, testInput(t, fl))
		// A second run from freshly loaded inputs, artifacts recorded in
		// another order.
		in := testInput(t, fl)
		for i, j := 0, len(in.Artifacts)-1; i < j; i, j = i+1, j-1 {
			in.Artifacts[i], in.Artifacts[j] = in.Artifacts[j], in.Artifacts[i]
		}
		in.Tree[0], in.Tree[2] = in.Tree[2], in.Tree[0]
		b := generate(t, in)
		for name, pair := range map[string][2][]byte{"spdx": {a.SPDX, b.SPDX}, "cyclonedx": {a.CycloneDX, b.CycloneDX}, "provenance": {a.Provenance, b.Provenance}} {
			if !bytes.Equal(pair[0], pair[1]) {
				t.Errorf("%s %s differs between two runs over the same inputs", fl, name)
			}
		}
	}
}

func TestOnePinChangesEveryDocument(t *testing.T) {
	a := generate(t, testInput(t, "halvm"))
	in := testInput(t, "halvm")
	in.Lock.Sources[3].Commit = strings.Repeat("a", 40)
	b := generate(t, in)
	if bytes.Equal(a.SPDX, b.SPDX) || bytes.Equal(a.CycloneDX, b.CycloneDX) || bytes.Equal(a.Provenance, b.Provenance) {
		t.Fatal("changing one submodule commit left a document unchanged")
	}
	ns := func(d []byte) string {
		var x struct {
			NS string `json:"documentNamespace"`
		}
		json.Unmarshal(d, &x)
		return x.NS
	}
	serial := func(d []byte) string {
		var x struct {
			S string `json:"serialNumber"`
		}
		json.Unmarshal(d, &x)
		return x.S
	}
	if ns(a.SPDX) == ns(b.SPDX) {
		t.Errorf("SPDX namespace %s did not change with the content", ns(a.SPDX))
	}
	if serial(a.CycloneDX) == serial(b.CycloneDX) {
		t.Errorf("CycloneDX serial %s did not change with the content", serial(a.CycloneDX))
	}
}

func TestDocumentsSayWhatIsPinnedAndBuilt(t *testing.T) {
	in := testInput(t, "halvm-gmp")
	d := generate(t, in)
	spdx, cdx, prov := string(d.SPDX), string(d.CycloneDX), string(d.Provenance)
	for _, want := range []string{
		`"created": "` + in.Lock.Release.Epoch().Format(time.RFC3339) + `"`,
		"pkg:github/GaloisInc/halvm-ghc@85c7800461ddd4054ccc086cb3ade5e20edf857b",
		"git+https://github.com/GaloisInc/halvm-ghc@85c7800461ddd4054ccc086cb3ade5e20edf857b",
		"pkg:deb/debian/git@1%3A2.39.5-0%2Bdeb12u3?arch=amd64&distro=bookworm",
		`Debian archive \"debian-security\", pool/updates/main/p/perl/perl_5.36.0-7+deb12u4_amd64.deb`,
		"5ee68290db00ca0b79d57bc3a5bdce470de9ce9da0b098a7ce6c504605856c8f", // bootstrap GHC
		`"licenseDeclared": "LGPL-3.0-or-later OR GPL-2.0-or-later"`,
		`"fileName": "./bin/halvm-ghc"`,
		hexOf("deb halvm-gmp"),
	} {
		if !strings.Contains(spdx, want) {
			t.Errorf("SPDX lacks %s", want)
		}
	}
	if strings.Contains(spdx, hexOf("deb halvm")+`"`) || strings.Contains(spdx, "apt") && strings.Contains(spdx, hexOf("apt")) {
		t.Error("SPDX of halvm-gmp describes another flavour's artifact or a repository")
	}
	// Files at document level only, each CONTAINed by the toolchain.
	var sp struct {
		Packages []map[string]any `json:"packages"`
		Files    []map[string]any `json:"files"`
		Rels     []struct {
			A, B, T string
		} `json:"-"`
	}
	if err := json.Unmarshal(d.SPDX, &sp); err != nil {
		t.Fatal(err)
	}
	// openlibm's LicenseRef- is declared in the document (SPDX 2.3 clause 10).
	if !strings.Contains(spdx, `"licenseDeclared": "BSD-2-Clause AND ISC AND MIT AND SunPro AND LicenseRef-Public-Domain"`) ||
		!strings.Contains(spdx, `"licenseId": "LicenseRef-Public-Domain"`) {
		t.Errorf("SPDX lacks openlibm's mixed licence or the declaration of LicenseRef-Public-Domain")
	}
	for _, p := range sp.Packages {
		if _, nested := p["files"]; nested {
			t.Errorf("package %v nests files (invalid SPDX 2.3 JSON)", p["SPDXID"])
		}
	}
	if len(sp.Files) != len(in.Tree) {
		t.Errorf("SPDX has %d files, want %d", len(sp.Files), len(in.Tree))
	}
	for _, f := range in.Tree {
		rel := `"spdxElementId": "SPDXRef-toolchain-halvm-gmp",` + "\n" + `      "relatedSpdxElement": "SPDXRef-` + spdxID("tree/"+f.Path) + `",` + "\n" + `      "relationshipType": "CONTAINS"`
		if !strings.Contains(spdx, rel) {
			t.Errorf("no CONTAINS relationship for %s", f.Path)
		}
	}
	for _, want := range []string{`"specVersion": "1.5"`, `"bom-ref": "source/halvm-ghc"`, `"alg": "SHA-256"`, `"timestamp": "` + in.Lock.Release.Epoch().Format(time.RFC3339) + `"`,
		`"expression": "BSD-2-Clause AND ISC AND MIT AND SunPro AND LicenseRef-Public-Domain"`,
		`"bom-ref": "tree/bin/halvm-ghc"`, `"expression": "LGPL-3.0-or-later OR GPL-2.0-or-later"`, `"id": "BSD-3-Clause"`} {
		if !strings.Contains(cdx, want) {
			t.Errorf("CycloneDX lacks %s", want)
		}
	}
	var st Statement
	if err := json.Unmarshal(d.Provenance, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != StatementType || st.PredicateType != ProvenancePredicateType || st.Predicate.BuildDefinition.BuildType != BuildType {
		t.Errorf("statement header: %s %s %s", st.Type, st.PredicateType, st.Predicate.BuildDefinition.BuildType)
	}
	ep := st.Predicate.BuildDefinition.ExternalParameters
	if ep.Flavour != "halvm-gmp" || strings.Join(ep.ConfigureFlags, " ") != "--enable-gmp" || strings.Join(ep.RTSWays, " ") != "v p thr debug thr_debug" {
		t.Errorf("external parameters: %+v", ep)
	}
	if ts := in.Lock.Release.Epoch().Format(time.RFC3339); st.Predicate.RunDetails.Metadata.StartedOn != ts || st.Predicate.RunDetails.Metadata.FinishedOn != ts {
		t.Errorf("times not from the epoch: %+v", st.Predicate.RunDetails.Metadata)
	}
	l := in.Lock
	if n, want := len(st.Predicate.BuildDefinition.ResolvedDependencies), 1+len(l.Sources)+len(l.Files)+len(l.Debs); n != want {
		t.Errorf("%d resolved dependencies, want %d (the lock and every pin)", n, want)
	}
	if len(st.Subject) != 3 {
		t.Errorf("subjects: %+v, want the flavour's deb, rpm and image", st.Subject)
	}
	if len(st.Predicate.RunDetails.Byproducts) != 1 || st.Predicate.RunDetails.Byproducts[0].Name != "halvm-gmp-tree.json" {
		t.Errorf("byproducts: %+v, want the tree manifest", st.Predicate.RunDetails.Byproducts)
	}
	if !strings.Contains(prov, `"gitCommit": "3ec1d7e4b6bcb91304ba2bfe8ee280cb1699f24d"`) {
		t.Error("provenance lacks the superproject commit")
	}
}

func TestBadInputIsReportedAtOnce(t *testing.T) {
	in := testInput(t, "halvm")
	in.Flavour = "halvm-typo"
	in.Artifacts = append(in.Artifacts, pipeline.Artifact{Kind: pipeline.KindDeb, Name: "x.deb", SHA256: "XYZ"})
	in.Tree = append(in.Tree, TreeFile{Path: "../etc/passwd", SHA256: "short"})
	_, err := Generate(in)
	if err == nil {
		t.Fatal("bad input accepted")
	}
	for _, want := range []string{`flavour "halvm-typo" is not in the lock`, `x.deb): sha256 "XYZ"`, "../etc/passwd): want a clean relative", `sha256 "short"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	in = testInput(t, "halvm")
	in.Artifacts = nil
	if _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "provenance needs subjects") {
		t.Errorf("provenance without artifacts: %v", err)
	}
}

func TestPURLEscaping(t *testing.T) {
	if got := purlEscape("1:2.39.5-0+deb12u3"); got != "1%3A2.39.5-0%2Bdeb12u3" {
		t.Errorf("purlEscape = %s", got)
	}
	if got := purlVersion("pkg:deb/debian/git@1%3A2.39.5-0%2Bdeb12u3?arch=amd64"); got != "1:2.39.5-0+deb12u3" {
		t.Errorf("purlVersion = %s", got)
	}
	s := pins.Source{Name: "x", URL: "file:///srv/upstream/x.git", Commit: strings.Repeat("b", 40)}
	if got, want := sourcePURL(s), "pkg:generic/x@"+s.Commit+"?vcs_url=git%2Bfile%3A%2F%2F%2Fsrv%2Fupstream%2Fx.git%40"+s.Commit; got != want {
		t.Errorf("sourcePURL = %s, want %s", got, want)
	}
	ids := map[string]string{}
	for _, k := range []string{"deb/build-env/g++:amd64", "deb/build-env/g--:amd64", "tree/a/b", "tree/a-b", "source/halvm-ghc"} {
		id := spdxID(k)
		if !spdxIDRE.MatchString("SPDXRef-" + id) {
			t.Errorf("spdxID(%s) = %s is not a valid SPDX ID", k, id)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("spdxID(%s) = spdxID(%s) = %s", k, prev, id)
		}
		ids[id] = k
	}
}
