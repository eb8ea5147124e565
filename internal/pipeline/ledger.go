package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// Kind says what an artifact is.
type Kind string

const (
	KindSource       Kind = "source"        // a fetched, verified input
	KindTreeManifest Kind = "tree-manifest" // manifest of an installed toolchain tree
	KindDeb          Kind = "deb"
	KindRPM          Kind = "rpm"
	KindAptRepo      Kind = "apt-repo"
	KindDnfRepo      Kind = "dnf-repo"
	KindOCILayout    Kind = "oci-layout"
	KindOCIImage     Kind = "oci-image"
	KindOCISigned    Kind = "oci-signed" // an image with its signatures and attestations, as `cosign save` writes it (a directory)
	KindSPDX         Kind = "sbom-spdx"
	KindCycloneDX    Kind = "sbom-cyclonedx"
	KindProvenance   Kind = "provenance"
	KindChecksums    Kind = "checksums"
	KindSignature    Kind = "signature"
	KindKey          Kind = "public-key"
	KindReport       Kind = "report"
	KindLock         Kind = "lock" // the lock the release was built from (canonical encoding), published with it
)

// Artifact is one thing a stage produced. Path is relative to the output
// directory when the artifact lives there.
type Artifact struct {
	Kind    Kind   `json:"kind"`
	Name    string `json:"name"`
	Flavour string `json:"flavour,omitempty"`
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	// Commit is the git commit of a source artifact (which has no file
	// digest of its own).
	Commit string `json:"commit,omitempty"`
	// Ref is where an image was pushed, by digest
	// (registry/namespace/halvm@sha256:...); "" when it was not pushed.
	Ref   string `json:"ref,omitempty"`
	Stage string `json:"stage,omitempty"`
}

// Status of a stage. A skipped or not-run stage never counts as passed.
type Status string

const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Skipped Status = "skipped"
	NotRun  Status = "not-run"
)

// StageRecord is what the ledger keeps of a stage: its status and, when it
// did not pass, why.
type StageRecord struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Unchanged names the earlier run whose outputs this run reused: the
	// stage's inputs were unchanged and its outputs still on disk with the
	// same digests, so it did not run ("unchanged since <run>").
	Unchanged string `json:"unchanged,omitempty"`
	// Memo is what a later run needs to reuse the stage's outputs.
	Memo *Memo `json:"memo,omitempty"`
}

// Ledger is the typed record of a run. It is safe for concurrent use.
type Ledger struct {
	mu        sync.Mutex
	artifacts []Artifact
	stages    []StageRecord
	snapshot  bool
	run       string          // this run's id
	prev      *Ledger         // the ledger of the run before, whose memos this run may reuse
	current   string          // the stage running now: Add records it in Artifact.Stage
	memos     map[string]Memo // memos stages record themselves (SetMemo)
}

// Add records an artifact, replacing an earlier one of the same kind, name
// and flavour (a re-run of a stage updates its record).
func (l *Ledger) Add(a Artifact) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.Stage == "" {
		a.Stage = l.current
	}
	for i, old := range l.artifacts {
		if old.Kind == a.Kind && old.Name == a.Name && old.Flavour == a.Flavour {
			l.artifacts[i] = a
			return
		}
	}
	l.artifacts = append(l.artifacts, a)
}

// remove drops an artifact (same kind, name and flavour).
func (l *Ledger) remove(a Artifact) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, old := range l.artifacts {
		if old.Kind == a.Kind && old.Name == a.Name && old.Flavour == a.Flavour {
			l.artifacts = append(l.artifacts[:i], l.artifacts[i+1:]...)
			return
		}
	}
}

// byStage returns the artifacts a stage recorded.
func (l *Ledger) byStage(stage string) []Artifact {
	var out []Artifact
	for _, a := range l.Artifacts() {
		if a.Stage == stage {
			out = append(out, a)
		}
	}
	return out
}

func (l *Ledger) setCurrent(stage string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.current = stage
}

// SetRun names this run (NewRunID); memos record it.
func (l *Ledger) SetRun(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.run = id
}

// Run is this run's id.
func (l *Ledger) Run() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run
}

// SetPrevious gives the ledger of the run before (nil: none), whose memos
// this run may reuse.
func (l *Ledger) SetPrevious(prev *Ledger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prev = prev
}

// PreviousStage is the record of a stage in the run before, if any.
func (l *Ledger) PreviousStage(name string) (StageRecord, bool) {
	l.mu.Lock()
	prev := l.prev
	l.mu.Unlock()
	if prev == nil {
		return StageRecord{}, false
	}
	return prev.stage(name)
}

// SetMemo records the memo of a stage that memoizes itself part by part
// (its Items: each image, each verdict); Run records it with the stage's
// outcome.
func (l *Ledger) SetMemo(stage string, m Memo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.memos == nil {
		l.memos = map[string]Memo{}
	}
	l.memos[stage] = m
}

func (l *Ledger) takeMemo(stage string) (Memo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.memos[stage]
	delete(l.memos, stage)
	return m, ok
}

// AddFile hashes the file at path and records it. rel is the path recorded
// (relative to the output directory).
func (l *Ledger) AddFile(kind Kind, name, flavour, path, rel string) (Artifact, error) {
	size, sum, err := fsutil.HashFile(path)
	if err != nil {
		return Artifact{}, fmt.Errorf("ledger: recording %s %s: %w", kind, name, err)
	}
	a := Artifact{Kind: kind, Name: name, Flavour: flavour, Path: filepath.ToSlash(rel), Size: size, SHA256: sum}
	l.Add(a)
	return a, nil
}

// Artifacts returns the recorded artifacts, sorted by kind, name, flavour.
func (l *Ledger) Artifacts() []Artifact {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]Artifact(nil), l.artifacts...)
	sortArtifacts(out)
	return out
}

// Find returns the artifacts of a kind (and flavour, when not empty).
func (l *Ledger) Find(kind Kind, flavour string) []Artifact {
	var out []Artifact
	for _, a := range l.Artifacts() {
		if a.Kind == kind && (flavour == "" || a.Flavour == flavour) {
			out = append(out, a)
		}
	}
	return out
}

// RecordStage sets the outcome of a stage.
func (l *Ledger) RecordStage(r StageRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Status == Skipped {
		l.snapshot = true
	}
	for i, old := range l.stages {
		if old.Name == r.Name {
			l.stages[i] = r
			return
		}
	}
	l.stages = append(l.stages, r)
}

// stage returns the record of a stage in this run.
func (l *Ledger) stage(name string) (StageRecord, bool) {
	for _, s := range l.Stages() {
		if s.Name == name {
			return s, true
		}
	}
	return StageRecord{}, false
}

// Stages returns the stage records in the order they were first recorded.
func (l *Ledger) Stages() []StageRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]StageRecord(nil), l.stages...)
}

// Snapshot reports whether any stage was skipped: such a run can never be
// published as a release.
func (l *Ledger) Snapshot() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshot
}

type ledgerFile struct {
	Format    int           `json:"format"`
	Run       string        `json:"run,omitempty"`
	Snapshot  bool          `json:"snapshot"`
	Stages    []StageRecord `json:"stages"`
	Artifacts []Artifact    `json:"artifacts"`
}

// Encode writes the ledger as indented JSON, artifacts sorted: the same
// ledger always gives the same bytes.
func (l *Ledger) Encode(w io.Writer) error {
	f := ledgerFile{Format: 1, Run: l.Run(), Snapshot: l.Snapshot(), Stages: l.Stages(), Artifacts: l.Artifacts()}
	if f.Stages == nil {
		f.Stages = []StageRecord{}
	}
	if f.Artifacts == nil {
		f.Artifacts = []Artifact{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}

// WriteFile writes the ledger to path atomically.
func (l *Ledger) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := l.Encode(&buf); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// ReadLedger loads a ledger written by WriteFile.
func ReadLedger(path string) (*Ledger, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ledger: %w", err)
	}
	var f ledgerFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("reading ledger %s: %w", path, err)
	}
	if f.Format != 1 {
		return nil, fmt.Errorf("reading ledger %s: format %d is not supported (want 1)", path, f.Format)
	}
	return &Ledger{artifacts: f.Artifacts, stages: f.Stages, snapshot: f.Snapshot, run: f.Run}, nil
}

func sortArtifacts(a []Artifact) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].Kind != a[j].Kind {
			return a[i].Kind < a[j].Kind
		}
		if a[i].Name != a[j].Name {
			return a[i].Name < a[j].Name
		}
		return a[i].Flavour < a[j].Flavour
	})
}
