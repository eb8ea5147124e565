package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// CycloneDX constants of the documents written here.
const (
	CycloneDXMediaType     = "application/vnd.cyclonedx+json"
	CycloneDXPredicateType = "https://cyclonedx.org/bom"
	// Property names of this project in CycloneDX documents.
	propRole     = "halvm:role"
	propPath     = "halvm:path"
	propMode     = "halvm:mode"
	propKind     = "halvm:artifact-kind"
	propPending  = "halvm:pending"
	propArchive  = "halvm:debian-archive"
	propFilename = "halvm:debian-filename"
	propLock     = "halvm:lock-sha256"
	propFlavour  = "halvm:flavour"
)

// CycloneDX renders the flavour's CycloneDX 1.5 JSON document.
func CycloneDX(in Input) ([]byte, error) {
	inv, err := newInventory(in)
	if err != nil {
		return nil, err
	}
	return inv.cyclonedx()
}

func sha256Hashes(hexsum string) *[]cdx.Hash {
	if hexsum == "" {
		return nil
	}
	return &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hexsum}}
}

func props(kv ...string) *[]cdx.Property {
	var out []cdx.Property
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, cdx.Property{Name: kv[i], Value: kv[i+1]})
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return &out
}

// cdxLicenses is a license id when the expression is one identifier, the
// expression otherwise, nothing when it is unknown.
func cdxLicenses(expr string) *cdx.Licenses {
	switch {
	case expr == "":
		return nil
	case strings.ContainsAny(expr, " ()"):
		return &cdx.Licenses{{Expression: expr}}
	default:
		return &cdx.Licenses{{License: &cdx.License{ID: expr}}}
	}
}

func (inv *inventory) cyclonedx() ([]byte, error) {
	root := inv.root
	rootComp := cdx.Component{
		BOMRef:      root.key,
		Type:        cdx.ComponentTypeApplication,
		Name:        root.name,
		Version:     root.version,
		Description: root.note,
		Licenses:    cdxLicenses(root.license),
		Properties: props(propFlavour, inv.flavour.Name, "halvm:integer-library", inv.flavour.IntegerLibrary,
			"halvm:configure-flags", strings.Join(inv.flavour.ConfigureFlags, " "), "halvm:rts-ways", strings.Join(RTSWays, " ")),
	}
	if root.url != "" {
		rootComp.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeWebsite, URL: root.url}}
	}
	var treeComps []cdx.Component
	for _, t := range inv.tree {
		treeComps = append(treeComps, cdx.Component{
			BOMRef: t.key, Type: cdx.ComponentTypeFile, Name: t.path, Hashes: sha256Hashes(t.sha256),
			Properties: props(propMode, fmt.Sprintf("%04o", uint32(t.mode.Perm())), "halvm:size", fmt.Sprint(t.size)),
		})
	}
	if len(treeComps) > 0 {
		rootComp.Components = &treeComps
	}

	var comps []cdx.Component
	deps := map[string][]string{}
	dep := func(from, to string) { deps[from] = append(deps[from], to) }
	for _, s := range inv.sources {
		c := cdx.Component{
			BOMRef: s.key, Type: cdx.ComponentTypeLibrary, Name: s.name, Version: s.commit, Description: s.note,
			PackageURL: s.purl, Licenses: cdxLicenses(s.license),
			ExternalReferences: &[]cdx.ExternalReference{{Type: cdx.ERTypeVCS, URL: s.vcs}},
			Properties:         props(propPath, s.path),
		}
		if s.parent == "" {
			c.Type = cdx.ComponentTypeApplication
			dep(root.key, s.key)
		} else {
			dep(s.parent, s.key)
		}
		comps = append(comps, c)
	}
	for _, f := range inv.files {
		c := cdx.Component{
			BOMRef: f.key, Type: cdx.ComponentTypeFile, Name: f.name, Version: f.version, PackageURL: f.purl,
			Hashes:             sha256Hashes(f.sha256),
			ExternalReferences: &[]cdx.ExternalReference{{Type: cdx.ERTypeDistribution, URL: f.url}},
			Properties:         props(propRole, f.role, propPending, f.pending),
		}
		comps = append(comps, c)
		dep(root.key, f.key)
	}
	var images []string
	for _, a := range inv.artifacts {
		if a.kind == "oci-image" {
			images = append(images, a.key)
		}
	}
	for _, d := range inv.debs {
		archive, file, _ := strings.Cut(d.url, ":")
		c := cdx.Component{
			BOMRef: d.key, Type: cdx.ComponentTypeLibrary, Name: d.name, Version: d.version, PackageURL: d.purl,
			Supplier:   &cdx.OrganizationalEntity{Name: "Debian"},
			Hashes:     sha256Hashes(d.sha256),
			Properties: props(propRole, d.role, propArchive, archive, propFilename, file),
		}
		comps = append(comps, c)
		if d.role == "image-base" && len(images) > 0 {
			for _, img := range images {
				dep(img, d.key)
			}
		} else {
			dep(root.key, d.key)
		}
	}
	for _, a := range inv.artifacts {
		typ := cdx.ComponentTypeFile
		if a.kind == "oci-image" || a.kind == "oci-layout" {
			typ = cdx.ComponentTypeContainer
		}
		name := a.path
		if name == "" {
			name = a.name
		}
		comps = append(comps, cdx.Component{
			BOMRef: a.key, Type: typ, Name: a.name, Version: inv.release.Version, Hashes: sha256Hashes(a.sha256),
			Licenses:   cdxLicenses(inv.release.License),
			Properties: props(propKind, string(a.kind), "halvm:file-name", path.Base(name), "halvm:size", fmt.Sprint(a.size)),
		})
		dep(a.key, root.key)
	}

	var depList []cdx.Dependency
	for from, to := range deps {
		sort.Strings(to)
		list := append([]string(nil), to...)
		depList = append(depList, cdx.Dependency{Ref: from, Dependencies: &list})
	}
	sort.Slice(depList, func(i, j int) bool { return depList[i].Ref < depList[j].Ref })

	bom := &cdx.BOM{
		BOMFormat:   cdx.BOMFormat,
		SpecVersion: cdx.SpecVersion1_5,
		Version:     1,
		Metadata: &cdx.Metadata{
			Timestamp:  epochString(inv.epoch()),
			Lifecycles: &[]cdx.Lifecycle{{Phase: cdx.LifecyclePhaseBuild}},
			Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: toolName,
				Group: "github.com/halvm"}}},
			Component:  &rootComp,
			Supplier:   &cdx.OrganizationalEntity{Name: inv.release.Name},
			Properties: props(propLock, inv.lockDigest),
		},
		Components:   &comps,
		Dependencies: &depList,
	}
	// The serial number is derived from the content encoded without one.
	first, err := encodeCDX(bom)
	if err != nil {
		return nil, err
	}
	bom.SerialNumber = serialFrom(first)
	return encodeCDX(bom)
}

func encodeCDX(bom *cdx.BOM) ([]byte, error) {
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_5); err != nil {
		return nil, fmt.Errorf("encoding CycloneDX JSON: %w", err)
	}
	return buf.Bytes(), nil
}

// serialFrom makes a name-based (version 5 layout) UUID URN from content.
func serialFrom(content []byte) string {
	sum := sha256.Sum256(content)
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return "urn:uuid:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
