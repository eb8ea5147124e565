package sbom

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

// Documents named in problems.
const (
	DocSPDX       = "spdx"
	DocCycloneDX  = "cyclonedx"
	DocProvenance = "provenance"
)

// Problem is one disagreement between a document and the lock or ledger:
// which document, where in it, about which pin or artifact, and what was
// wanted and found.
type Problem struct {
	Doc   string // DocSPDX, DocCycloneDX or DocProvenance
	Where string // location in the document, e.g. packages[SPDXRef-source-halvm-ghc].versionInfo
	What  string // the pin or artifact, e.g. source/halvm-ghc, deb/build-env/gcc:amd64, artifact/deb/x.deb
	Msg   string
	Want  string
	Got   string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Doc)
	if p.Where != "" {
		b.WriteString(": " + p.Where)
	}
	if p.What != "" {
		b.WriteString(": " + p.What)
	}
	b.WriteString(": " + p.Msg)
	if p.Want != "" || p.Got != "" {
		fmt.Fprintf(&b, " (want %q, got %q)", p.Want, p.Got)
	}
	return b.String()
}

func (p Problem) Error() string { return p.String() }

// Check verifies one flavour's three documents against the lock and the
// ledger: every pin appears in both SBOMs and in the provenance's resolved
// dependencies with its digest, every produced artifact of the flavour
// appears with its sha256 (and is a provenance subject), nothing appears
// that the lock and ledger do not have, and the SPDX document is
// structurally valid. The flavour is read from the documents, which must
// agree on it. It returns every problem found, nil when all is consistent.
func Check(lock *pins.Lock, ledger *pipeline.Ledger, spdxBytes, cdxBytes, provenanceBytes []byte) []Problem {
	var ps []Problem
	sp, err := parseSPDX(spdxBytes)
	if err != nil {
		ps = append(ps, Problem{Doc: DocSPDX, Msg: "cannot parse: " + err.Error()})
	}
	cd, err := parseCDX(cdxBytes)
	if err != nil {
		ps = append(ps, Problem{Doc: DocCycloneDX, Msg: "cannot parse: " + err.Error()})
	}
	pv, err := parseProvenance(provenanceBytes)
	if err != nil {
		ps = append(ps, Problem{Doc: DocProvenance, Msg: "cannot parse: " + err.Error()})
	}
	if sp != nil {
		ps = append(ps, ValidateSPDX(spdxBytes)...)
	}

	// Which flavour: the documents must agree.
	flavours := map[string]string{}
	if sp != nil {
		flavours[DocSPDX] = sp.flavour()
	}
	if cd != nil && cd.Metadata.Component != nil {
		flavours[DocCycloneDX] = cd.Metadata.Component.Name
	}
	if pv != nil {
		flavours[DocProvenance] = pv.Predicate.BuildDefinition.ExternalParameters.Flavour
	}
	flavour := ""
	for _, d := range []string{DocProvenance, DocSPDX, DocCycloneDX} {
		if f, ok := flavours[d]; ok && f != "" {
			flavour = f
			break
		}
	}
	for _, d := range []string{DocSPDX, DocCycloneDX, DocProvenance} {
		if f, ok := flavours[d]; ok && f != flavour {
			ps = append(ps, Problem{Doc: d, Where: "flavour", Msg: "documents disagree on the flavour", Want: flavour, Got: f})
		}
	}
	if flavour == "" {
		return append(ps, Problem{Doc: DocProvenance, Where: "predicate.buildDefinition.externalParameters.flavour", Msg: "no flavour found in any document"})
	}
	var arts []pipeline.Artifact
	if ledger != nil {
		arts = ledger.Artifacts()
	}
	inv, err := newInventory(Input{Lock: lock, Flavour: flavour, Artifacts: arts})
	if err != nil {
		return append(ps, Problem{Doc: DocProvenance, What: "flavour " + flavour, Msg: "cannot compute what the documents should say: " + err.Error()})
	}
	if sp != nil {
		ps = append(ps, inv.checkSPDX(sp)...)
	}
	if cd != nil {
		ps = append(ps, inv.checkCDX(cd)...)
	}
	if pv != nil {
		ps = append(ps, inv.checkProvenance(pv)...)
	}
	return ps
}

// expected lists what every document describes as a package/component.
func (inv *inventory) expected() []item {
	out := []item{inv.root}
	for _, list := range [][]item{inv.sources, inv.files, inv.debs, inv.artifacts} {
		out = append(out, list...)
	}
	return out
}

var checkedPrefixes = []string{classSource + "/", classFile + "/", classDeb + "/", classArtifact + "/", classToolchain + "/"}

func hasCheckedPrefix(key string) bool {
	for _, p := range checkedPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// field compares one value.
func field(ps *[]Problem, doc, where, what, name, want, got string) {
	if want != got {
		*ps = append(*ps, Problem{Doc: doc, Where: where, What: what, Msg: "wrong " + name, Want: want, Got: got})
	}
}

// --- SPDX ---

type spdxJSON struct {
	Packages []struct {
		Name             string `json:"name"`
		SPDXID           string `json:"SPDXID"`
		VersionInfo      string `json:"versionInfo"`
		DownloadLocation string `json:"downloadLocation"`
		LicenseDeclared  string `json:"licenseDeclared"`
		Checksums        []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
		ExternalRefs []struct {
			Category string `json:"referenceCategory"`
			Type     string `json:"referenceType"`
			Locator  string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
	Relationships []struct {
		A    string `json:"spdxElementId"`
		B    string `json:"relatedSpdxElement"`
		Type string `json:"relationshipType"`
	} `json:"relationships"`
}

func parseSPDX(data []byte) (*spdxJSON, error) {
	var d spdxJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// flavour is the name of the package the document DESCRIBES.
func (d *spdxJSON) flavour() string {
	for _, r := range d.Relationships {
		if r.A == spdxRefPrefix+spdxDocumentID && r.Type == relDescribes {
			for _, p := range d.Packages {
				if p.SPDXID == r.B {
					return p.Name
				}
			}
		}
	}
	return ""
}

func (inv *inventory) checkSPDX(d *spdxJSON) []Problem {
	var ps []Problem
	byID := map[string]int{}
	for i, p := range d.Packages {
		byID[p.SPDXID] = i
	}
	want := map[string]bool{}
	for _, e := range inv.expected() {
		id := spdxRefPrefix + spdxID(e.key)
		want[id] = true
		i, ok := byID[id]
		if !ok {
			ps = append(ps, Problem{Doc: DocSPDX, Where: "packages", What: e.key, Msg: "missing package " + id})
			continue
		}
		p := d.Packages[i]
		at := func(f string) string { return fmt.Sprintf("packages[%s].%s", id, f) }
		field(&ps, DocSPDX, at("name"), e.key, "name", e.name, p.Name)
		sha := ""
		for _, c := range p.Checksums {
			if c.Algorithm == string(sha256Algorithm) {
				sha = strings.ToLower(c.Value)
			}
		}
		purl := ""
		for _, r := range p.ExternalRefs {
			if r.Type == purlRefType {
				purl = r.Locator
			}
		}
		switch e.class {
		case classToolchain:
			field(&ps, DocSPDX, at("versionInfo"), e.key, "version", e.version, p.VersionInfo)
			field(&ps, DocSPDX, at("licenseDeclared"), e.key, "licence (the lock's)", orNoAssertion(e.license), p.LicenseDeclared)
		case classSource:
			field(&ps, DocSPDX, at("versionInfo"), e.key, "commit", e.commit, p.VersionInfo)
			field(&ps, DocSPDX, at("licenseDeclared"), e.key, "licence (the lock's)", orNoAssertion(e.license), p.LicenseDeclared)
			field(&ps, DocSPDX, at("downloadLocation"), e.key, "VCS locator", e.vcs, p.DownloadLocation)
			field(&ps, DocSPDX, at("externalRefs.purl"), e.key, "purl", e.purl, purl)
		case classFile, classDeb:
			field(&ps, DocSPDX, at("versionInfo"), e.key, "version", e.version, p.VersionInfo)
			field(&ps, DocSPDX, at("checksums.SHA256"), e.key, "sha256", e.sha256, sha)
			field(&ps, DocSPDX, at("externalRefs.purl"), e.key, "purl", e.purl, purl)
		case classArtifact:
			field(&ps, DocSPDX, at("checksums.SHA256"), e.key, "sha256", e.sha256, sha)
		}
	}
	for _, p := range d.Packages {
		if !want[p.SPDXID] && hasCheckedPrefix(strings.Replace(strings.TrimPrefix(p.SPDXID, spdxRefPrefix), "-", "/", 1)) {
			ps = append(ps, Problem{Doc: DocSPDX, Where: fmt.Sprintf("packages[%s]", p.SPDXID), What: strings.Replace(strings.TrimPrefix(p.SPDXID, spdxRefPrefix), "-", "/", 1),
				Msg: "not in the lock or the ledger (a removed pin or an unrecorded artifact)"})
		}
	}
	root := spdxRefPrefix + spdxID(inv.root.key)
	if d.flavour() != inv.root.name {
		ps = append(ps, Problem{Doc: DocSPDX, Where: "relationships", What: inv.root.key, Msg: "the document does not DESCRIBE the toolchain package " + root})
	}
	return ps
}

// --- CycloneDX ---

type cdxComponent struct {
	BOMRef  string `json:"bom-ref"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
	// Licenses: an id, a name or an expression each.
	Licenses []struct {
		License *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"license"`
		Expression string `json:"expression"`
	} `json:"licenses"`
	Hashes []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
	ExternalReferences []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"externalReferences"`
}

// licence is the component's licence as one expression ("" when none).
func (c cdxComponent) licence() string {
	var parts []string
	for _, l := range c.Licenses {
		switch {
		case l.Expression != "":
			parts = append(parts, l.Expression)
		case l.License != nil && l.License.ID != "":
			parts = append(parts, l.License.ID)
		case l.License != nil:
			parts = append(parts, l.License.Name)
		}
	}
	return strings.Join(parts, " AND ")
}

type cdxJSON struct {
	Metadata struct {
		Component *cdxComponent `json:"component"`
	} `json:"metadata"`
	Components []cdxComponent `json:"components"`
}

func parseCDX(data []byte) (*cdxJSON, error) {
	var d cdxJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (inv *inventory) checkCDX(d *cdxJSON) []Problem {
	var ps []Problem
	byRef := map[string]cdxComponent{}
	for _, c := range d.Components {
		byRef[c.BOMRef] = c
	}
	if d.Metadata.Component != nil {
		byRef[d.Metadata.Component.BOMRef] = *d.Metadata.Component
	}
	want := map[string]bool{}
	for _, e := range inv.expected() {
		want[e.key] = true
		c, ok := byRef[e.key]
		if !ok {
			where := "components"
			if e.class == classToolchain {
				where = "metadata.component"
			}
			ps = append(ps, Problem{Doc: DocCycloneDX, Where: where, What: e.key, Msg: "missing component with bom-ref " + e.key})
			continue
		}
		at := func(f string) string { return fmt.Sprintf("components[%s].%s", e.key, f) }
		if e.class == classToolchain {
			at = func(f string) string { return "metadata.component." + f }
		}
		sha := ""
		for _, h := range c.Hashes {
			if h.Alg == "SHA-256" {
				sha = strings.ToLower(h.Content)
			}
		}
		vcs := ""
		for _, r := range c.ExternalReferences {
			if r.Type == "vcs" {
				vcs = r.URL
			}
		}
		field(&ps, DocCycloneDX, at("name"), e.key, "name", e.name, c.Name)
		switch e.class {
		case classToolchain, classSource:
			field(&ps, DocCycloneDX, at("licenses"), e.key, "licence (the lock's)", e.license, c.licence())
		}
		switch e.class {
		case classToolchain:
			field(&ps, DocCycloneDX, at("version"), e.key, "version", e.version, c.Version)
		case classSource:
			field(&ps, DocCycloneDX, at("version"), e.key, "commit", e.commit, c.Version)
			field(&ps, DocCycloneDX, at("purl"), e.key, "purl", e.purl, c.PURL)
			field(&ps, DocCycloneDX, at("externalReferences.vcs"), e.key, "VCS locator", e.vcs, vcs)
		case classFile, classDeb:
			field(&ps, DocCycloneDX, at("version"), e.key, "version", e.version, c.Version)
			field(&ps, DocCycloneDX, at("hashes.SHA-256"), e.key, "sha256", e.sha256, sha)
			field(&ps, DocCycloneDX, at("purl"), e.key, "purl", e.purl, c.PURL)
		case classArtifact:
			field(&ps, DocCycloneDX, at("hashes.SHA-256"), e.key, "sha256", e.sha256, sha)
		}
	}
	for _, c := range d.Components {
		if !want[c.BOMRef] && hasCheckedPrefix(c.BOMRef) {
			ps = append(ps, Problem{Doc: DocCycloneDX, Where: fmt.Sprintf("components[%s]", c.BOMRef), What: c.BOMRef,
				Msg: "not in the lock or the ledger (a removed pin or an unrecorded artifact)"})
		}
	}
	return ps
}

// --- provenance ---

func parseProvenance(data []byte) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (inv *inventory) checkProvenance(st *Statement) []Problem {
	var ps []Problem
	const doc = DocProvenance
	field(&ps, doc, "_type", "", "statement type", StatementType, st.Type)
	field(&ps, doc, "predicateType", "", "predicate type", ProvenancePredicateType, st.PredicateType)
	bd := st.Predicate.BuildDefinition
	field(&ps, doc, "predicate.buildDefinition.buildType", "", "build type", BuildType, bd.BuildType)
	ep := bd.ExternalParameters
	const epAt = "predicate.buildDefinition.externalParameters."
	what := "flavour " + inv.flavour.Name
	field(&ps, doc, epAt+"version", what, "version", inv.release.Version, ep.Version)
	field(&ps, doc, epAt+"integerLibrary", what, "integer library", inv.flavour.IntegerLibrary, ep.IntegerLibrary)
	field(&ps, doc, epAt+"configureFlags", what, "configure flags", strings.Join(inv.flavour.ConfigureFlags, " "), strings.Join(ep.ConfigureFlags, " "))
	field(&ps, doc, epAt+"rtsWays", what, "RTS ways", strings.Join(RTSWays, " "), strings.Join(ep.RTSWays, " "))
	field(&ps, doc, epAt+"sourceDateEpoch", what, "SOURCE_DATE_EPOCH", fmt.Sprint(inv.release.SourceDateEpoch), fmt.Sprint(ep.SourceDateEpoch))
	ts := epochString(inv.epoch())
	field(&ps, doc, "predicate.runDetails.metadata.startedOn", "", "start time (the epoch)", ts, st.Predicate.RunDetails.Metadata.StartedOn)
	field(&ps, doc, "predicate.runDetails.metadata.finishedOn", "", "finish time (the epoch)", ts, st.Predicate.RunDetails.Metadata.FinishedOn)

	got := map[string]ResourceDescriptor{}
	for _, d := range bd.ResolvedDependencies {
		got[d.Name] = d
	}
	wantNames := map[string]bool{}
	for _, w := range inv.dependencies() {
		wantNames[w.Name] = true
		at := fmt.Sprintf("predicate.buildDefinition.resolvedDependencies[%s]", w.Name)
		g, ok := got[w.Name]
		if !ok {
			ps = append(ps, Problem{Doc: doc, Where: "predicate.buildDefinition.resolvedDependencies", What: w.Name, Msg: "missing resolved dependency"})
			continue
		}
		field(&ps, doc, at+".uri", w.Name, "uri", w.URI, g.URI)
		if !reflect.DeepEqual(w.Digest, g.Digest) {
			for _, alg := range digestAlgs(w.Digest, g.Digest) {
				field(&ps, doc, at+".digest."+alg, w.Name, alg+" digest", w.Digest[alg], g.Digest[alg])
			}
		}
	}
	var extra []string
	for name := range got {
		if !wantNames[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		ps = append(ps, Problem{Doc: doc, Where: fmt.Sprintf("predicate.buildDefinition.resolvedDependencies[%s]", name), What: name,
			Msg: "not in the lock (a removed or renamed pin)"})
	}

	subj := map[string]ResourceDescriptor{}
	for _, s := range st.Subject {
		subj[s.Name] = s
	}
	wantSubj := map[string]bool{}
	for _, a := range inv.artifacts {
		wantSubj[a.name] = true
		s, ok := subj[a.name]
		if !ok {
			ps = append(ps, Problem{Doc: doc, Where: "subject", What: a.key, Msg: "produced artifact is not a subject"})
			continue
		}
		field(&ps, doc, fmt.Sprintf("subject[%s].digest.sha256", a.name), a.key, "sha256", a.sha256, s.Digest["sha256"])
	}
	for _, s := range st.Subject {
		if !wantSubj[s.Name] {
			ps = append(ps, Problem{Doc: doc, Where: fmt.Sprintf("subject[%s]", s.Name), What: s.Name, Msg: "not a produced artifact of this flavour in the ledger"})
		}
	}
	return ps
}

func digestAlgs(a, b map[string]string) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
