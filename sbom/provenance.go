package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// In-toto and SLSA identifiers of the provenance written here.
const (
	StatementType           = "https://in-toto.io/Statement/v1"
	ProvenancePredicateType = "https://slsa.dev/provenance/v1"
	// LockURI names the lock among the resolved dependencies; its digest
	// is the sha256 of the lock's canonical encoding (pins.Bytes).
	LockURI = "pins/halvm.lock"
	lockKey = "lock/halvm.lock"
)

// Statement is an in-toto Statement v1 carrying SLSA provenance v1.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     Provenance           `json:"predicate"`
}

// ResourceDescriptor is the in-toto v1 ResourceDescriptor (the fields used here).
type ResourceDescriptor struct {
	Name             string            `json:"name,omitempty"`
	URI              string            `json:"uri,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`
}

// Provenance is the SLSA provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   map[string]string    `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// ExternalParameters are the recipe's inputs a user controls (BuildType).
type ExternalParameters struct {
	Flavour         string   `json:"flavour"`
	Version         string   `json:"version"`
	IntegerLibrary  string   `json:"integerLibrary"`
	ConfigureFlags  []string `json:"configureFlags"`
	RTSWays         []string `json:"rtsWays"`
	SourceDateEpoch int64    `json:"sourceDateEpoch"`
	Lock            string   `json:"lock"`
}

// RunDetails says who built it and when.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   BuildMetadata        `json:"metadata"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder identifies the build platform.
type Builder struct {
	ID string `json:"id"`
}

// BuildMetadata carries the (epoch-stamped) build times.
type BuildMetadata struct {
	StartedOn  string `json:"startedOn"`
	FinishedOn string `json:"finishedOn"`
}

// dependencies are the resolved dependencies: the lock and every pin.
func (inv *inventory) dependencies() []ResourceDescriptor {
	deps := []ResourceDescriptor{{Name: lockKey, URI: LockURI, Digest: map[string]string{"sha256": inv.lockDigest}}}
	for _, s := range inv.sources {
		a := map[string]string{"path": s.path}
		if s.license != "" {
			a["license"] = s.license
		}
		deps = append(deps, ResourceDescriptor{Name: s.key, URI: s.vcs, Digest: map[string]string{"gitCommit": s.commit}, Annotations: a})
	}
	for _, f := range inv.files {
		d := ResourceDescriptor{Name: f.key, URI: f.url, Annotations: map[string]string{"role": f.role, "version": f.version}}
		if f.pending != "" {
			d.Annotations["pending"] = f.pending
		} else {
			d.Digest = map[string]string{"sha256": f.sha256}
		}
		deps = append(deps, d)
	}
	for _, d := range inv.debs {
		archive, file, _ := strings.Cut(d.url, ":")
		deps = append(deps, ResourceDescriptor{Name: d.key, URI: d.purl, Digest: map[string]string{"sha256": d.sha256},
			MediaType:   "application/vnd.debian.binary-package",
			Annotations: map[string]string{"role": d.role, "archive": archive, "filename": file}})
	}
	return deps
}

func (inv *inventory) provenance() ([]byte, error) {
	if len(inv.artifacts) == 0 {
		return nil, fmt.Errorf("no produced artifacts (%v) of flavour %s in the ledger: provenance needs subjects, run the packaging stages first", ProductKinds, inv.flavour.Name)
	}
	st := Statement{Type: StatementType, PredicateType: ProvenancePredicateType}
	for _, a := range inv.artifacts {
		st.Subject = append(st.Subject, ResourceDescriptor{Name: a.name, Digest: map[string]string{"sha256": a.sha256}})
	}
	flags := inv.flavour.ConfigureFlags
	if flags == nil {
		flags = []string{}
	}
	ts := epochString(inv.epoch())
	st.Predicate = Provenance{
		BuildDefinition: BuildDefinition{
			BuildType: BuildType,
			ExternalParameters: ExternalParameters{
				Flavour: inv.flavour.Name, Version: inv.release.Version, IntegerLibrary: inv.flavour.IntegerLibrary,
				ConfigureFlags: flags, RTSWays: RTSWays, SourceDateEpoch: inv.release.SourceDateEpoch, Lock: LockURI,
			},
			ResolvedDependencies: inv.dependencies(),
		},
		RunDetails: RunDetails{
			Builder:  Builder{ID: inv.builderID},
			Metadata: BuildMetadata{StartedOn: ts, FinishedOn: ts},
		},
	}
	for _, b := range inv.byproducts {
		st.Predicate.RunDetails.Byproducts = append(st.Predicate.RunDetails.Byproducts,
			ResourceDescriptor{Name: b.name, URI: b.path, Digest: map[string]string{"sha256": b.sha256},
				Annotations: map[string]string{"kind": string(b.kind)}})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(st); err != nil {
		return nil, fmt.Errorf("encoding provenance: %w", err)
	}
	return buf.Bytes(), nil
}
