// Package vsa writes a SLSA Verification Summary Attestation
// (https://slsa.dev/verification_summary/v1): a verifier's signed verdict
// on a release, as an in-toto v1 statement in a DSSE envelope signed with
// the verifier's own cosign key. The stock CLI checks it:
//
//	cosign verify-blob-attestation --key verifier.pub --insecure-ignore-tlog \
//	  --type https://slsa.dev/verification_summary/v1 --signature vsa.intoto.json SHA256SUMS
//
// Every verified artifact is a subject with its sha256 and, in its
// annotations, its own verdict; the release's SHA256SUMS is one of them,
// so the attestation can be checked against that one file.
package vsa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// PredicateType is the SLSA VSA v1 predicate type.
const PredicateType = "https://slsa.dev/verification_summary/v1"

// StatementType is the in-toto v1 statement type.
const StatementType = "https://in-toto.io/Statement/v1"

// PayloadType is the DSSE payload type of in-toto statements.
const PayloadType = "application/vnd.in-toto+json"

// The verdicts.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Artifact is one verified artifact and its verdict.
type Artifact struct {
	Name    string `json:"name"`             // e.g. a path in the release files, or an image reference
	SHA256  string `json:"sha256"`           // hex
	Verdict string `json:"verdict"`          // e.g. IDENTICAL, DIFFERS, VERIFIED, NOT CHECKED
	Detail  string `json:"detail,omitempty"` // one line, optional
}

// Input is what the summary says.
type Input struct {
	VerifierID      string // URI naming the verifier (who ran it, with what)
	VerifierVersion map[string]string
	TimeVerified    time.Time
	ResourceURI     string // the release verified, e.g. its release-files URL
	PolicyURI       string // what was checked, e.g. the RELEASE.md section
	Passed          bool
	Artifacts       []Artifact
	// Inputs are the attestations the verification read (SBOMs,
	// provenance), by URI and sha256.
	Inputs []Artifact
}

type resourceDescriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type verifier struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

type policy struct {
	URI string `json:"uri"`
}

type predicate struct {
	Verifier           verifier             `json:"verifier"`
	TimeVerified       string               `json:"timeVerified"`
	ResourceURI        string               `json:"resourceUri"`
	Policy             policy               `json:"policy"`
	InputAttestations  []resourceDescriptor `json:"inputAttestations,omitempty"`
	VerificationResult string               `json:"verificationResult"`
	VerifiedLevels     []string             `json:"verifiedLevels"`
	SLSAVersion        string               `json:"slsaVersion"`
}

type statement struct {
	Type          string               `json:"_type"`
	Subject       []resourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     predicate            `json:"predicate"`
}

// Statement is the in-toto statement of in. Every problem with in is
// reported at once. A summary with any artifact not IDENTICAL or
// VERIFIED says FAILED whatever in.Passed says.
func Statement(in Input) ([]byte, error) {
	var errs []string
	if in.VerifierID == "" {
		errs = append(errs, "no verifier id")
	}
	if in.ResourceURI == "" {
		errs = append(errs, "no resource URI")
	}
	if in.PolicyURI == "" {
		errs = append(errs, "no policy URI")
	}
	if in.TimeVerified.IsZero() {
		errs = append(errs, "no verification time")
	}
	if len(in.Artifacts) == 0 {
		errs = append(errs, "no artifacts")
	}
	passed := in.Passed
	seen := map[string]bool{}
	var subjects []resourceDescriptor
	for _, a := range in.Artifacts {
		if err := checkDigest(a.SHA256); err != nil {
			errs = append(errs, fmt.Sprintf("artifact %q: %v", a.Name, err))
		}
		if a.Name == "" || seen[a.Name] {
			errs = append(errs, fmt.Sprintf("artifact %q: empty or repeated name", a.Name))
		}
		seen[a.Name] = true
		if a.Verdict != "IDENTICAL" && a.Verdict != "VERIFIED" {
			passed = false
		}
		ann := map[string]string{"verdict": a.Verdict}
		if a.Detail != "" {
			ann["detail"] = a.Detail
		}
		subjects = append(subjects, resourceDescriptor{Name: a.Name, Digest: map[string]string{"sha256": a.SHA256}, Annotations: ann})
	}
	var inputs []resourceDescriptor
	for _, a := range in.Inputs {
		if err := checkDigest(a.SHA256); err != nil {
			errs = append(errs, fmt.Sprintf("input attestation %q: %v", a.Name, err))
		}
		inputs = append(inputs, resourceDescriptor{URI: a.Name, Digest: map[string]string{"sha256": a.SHA256}})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("verification summary: %s", strings.Join(errs, "; "))
	}
	sort.Slice(subjects, func(i, j int) bool { return subjects[i].Name < subjects[j].Name })
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].URI < inputs[j].URI })
	result, levels := Failed, []string{"FAILED"}
	if passed {
		// A rebuild that gave the same bytes from the lock is what SLSA
		// calls a reproducible build: the build level it verifies is
		// the release's own, Build L1 (provenance exists and matches).
		result, levels = Passed, []string{"SLSA_BUILD_LEVEL_1"}
	}
	return json.Marshal(statement{
		Type: StatementType, Subject: subjects, PredicateType: PredicateType,
		Predicate: predicate{
			Verifier:     verifier{ID: in.VerifierID, Version: in.VerifierVersion},
			TimeVerified: in.TimeVerified.UTC().Format(time.RFC3339), ResourceURI: in.ResourceURI,
			Policy: policy{URI: in.PolicyURI}, InputAttestations: inputs,
			VerificationResult: result, VerifiedLevels: levels, SLSAVersion: "1.0",
		},
	})
}

func checkDigest(h string) error {
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", h)
	}
	return nil
}

// Sign wraps the statement in a DSSE envelope signed by sv (the
// verifier's cosign key): the file `cosign verify-blob-attestation
// --signature` reads.
func Sign(st []byte, sv signature.Signer) ([]byte, error) {
	if sv == nil {
		return nil, errors.New("signing the verification summary: no key")
	}
	env, err := dsse.WrapSigner(sv, PayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return nil, fmt.Errorf("signing the verification summary: %w", err)
	}
	return env, nil
}

// Summary is a verified envelope's statement, read back.
type Summary struct {
	Result    string
	Verdicts  map[string]string // subject name → verdict
	Resource  string
	Verifier  string
	Predicate string
}

// Verify checks the envelope's signature with the verifier's public key
// and returns what it says.
func Verify(envelope []byte, v signature.Verifier) (Summary, error) {
	if err := dsse.WrapVerifier(v).VerifySignature(bytes.NewReader(envelope), nil); err != nil {
		return Summary{}, fmt.Errorf("the verification summary's signature: %w", err)
	}
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
	}
	if err := json.Unmarshal(envelope, &e); err != nil {
		return Summary{}, fmt.Errorf("reading the verification summary: %w", err)
	}
	if e.PayloadType != PayloadType {
		return Summary{}, fmt.Errorf("the verification summary: payload type %q, want %q", e.PayloadType, PayloadType)
	}
	var st statement
	if err := json.Unmarshal(e.Payload, &st); err != nil {
		return Summary{}, fmt.Errorf("reading the verification summary's statement: %w", err)
	}
	s := Summary{Result: st.Predicate.VerificationResult, Resource: st.Predicate.ResourceURI, Verifier: st.Predicate.Verifier.ID,
		Predicate: st.PredicateType, Verdicts: map[string]string{}}
	for _, sub := range st.Subject {
		s.Verdicts[sub.Name] = sub.Annotations["verdict"]
	}
	return s, nil
}

// Sum is one line of a release's SHA256SUMS.
type Sum struct{ Name, SHA256 string }

// RebuildCheck is the name of verify's reproducibility check, whose
// per-artifact verdicts the summary states.
const RebuildCheck = "rebuild-identical"

// NotChecked is the verdict of an artifact no verdict is claimed for: the
// reproducibility rebuild did not judge it (it did not run, or could not
// reach the lock's inputs).
const NotChecked = "NOT CHECKED"

// FromReport fills in's Passed and Artifacts from a verification report
// (verify.json, as verify writes it): the artifacts are the verdicts the
// reproducibility check recorded (its "verdicts", judged as the URL
// rebuild judges them, remote.Compare), never read from its text. When
// it recorded none (it did not run, or failed before judging), no verdict
// is claimed: every file of the release's checksum list (sums) and
// SHA256SUMS itself (sumsSHA256) is NOT CHECKED, with why. The summary
// passes only when the whole verification passed.
func FromReport(in Input, report []byte, sums []Sum, sumsSHA256 string) (Input, error) {
	var r struct {
		Status string `json:"status"`
		Checks []struct {
			Name     string     `json:"name"`
			Status   string     `json:"status"`
			Reason   string     `json:"reason"`
			Verdicts []Artifact `json:"verdicts"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(report, &r); err != nil {
		return in, fmt.Errorf("reading the verification report: %w", err)
	}
	if r.Status == "running" {
		return in, errors.New("the verification report is not finished (status running)")
	}
	in.Passed = r.Status == "pass"
	in.Artifacts = nil
	reason := "the verification has no reproducibility check"
	for _, c := range r.Checks {
		if c.Name != RebuildCheck {
			continue
		}
		in.Artifacts = c.Verdicts
		in.Passed = in.Passed && c.Status == "pass"
		reason = "the reproducibility rebuild gave no verdicts: " + c.Reason
		if c.Status == "not-run" {
			reason = "the reproducibility rebuild did not run: " + c.Reason
		}
	}
	if len(in.Artifacts) > 0 {
		return in, nil
	}
	in.Passed = false
	d := oneLine(reason)
	in.Artifacts = append(in.Artifacts, Artifact{Name: "SHA256SUMS", SHA256: sumsSHA256, Verdict: NotChecked, Detail: d})
	for _, s := range sums {
		in.Artifacts = append(in.Artifacts, Artifact{Name: s.Name, SHA256: s.SHA256, Verdict: NotChecked, Detail: d})
	}
	return in, nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
