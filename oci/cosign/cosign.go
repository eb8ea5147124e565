// Package cosign owns the image signatures and attestations: keyed cosign
// signatures (the password-encrypted "ENCRYPTED SIGSTORE PRIVATE KEY"
// format of cosign generate-key-pair), no transparency log, written to the
// registry in cosign's .sig/.att tag layout, and in-process verification
// against a pinned public key with no network besides the registry. The
// stock `cosign verify --key K --insecure-ignore-tlog` and
// `cosign verify-attestation --type ...` accept what it writes.
//
// It uses cosign's library packages only (never cmd/cosign/cli/...), and
// never logs or returns key material or passwords.
package cosign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sigcosign "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	ocimutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Predicate types of the attestations this project writes, and the
// `cosign verify-attestation --type` value for each.
const (
	PredicateSPDX       = "https://spdx.dev/Document"
	PredicateCycloneDX  = "https://cyclonedx.org/bom"
	PredicateSLSA1      = "https://slsa.dev/provenance/v1"
	TypeSPDX            = "spdxjson"
	TypeCycloneDX       = "cyclonedx"
	TypeSLSA1           = "slsaprovenance1"
	intotoStatementType = "https://in-toto.io/Statement/v1"
)

// GenerateKey makes a new password-encrypted cosign key pair, the same
// format as `cosign generate-key-pair`. password must not be empty.
func GenerateKey(password []byte) (privatePEM, publicPEM []byte, err error) {
	if len(password) == 0 {
		return nil, nil, errors.New("generating a cosign key: the password is empty: a release key must be encrypted")
	}
	kb, err := sigcosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, fmt.Errorf("generating a cosign key: %w", err)
	}
	return kb.PrivateBytes, kb.PublicBytes, nil
}

// KeySource says where the private key and its password come from: a
// file or an environment variable each (file wins when both are set).
type KeySource struct {
	KeyFile      string // path to the encrypted private key (cosign.key)
	KeyEnv       string // or the name of a variable holding its PEM text
	PasswordFile string // path to a file holding the password (one trailing newline is ignored)
	PasswordEnv  string // or the name of a variable holding it; "" means COSIGN_PASSWORD
	// Lookup reads the variables KeyEnv and PasswordEnv name (internal/config
	// sets it; this package never reads the environment itself).
	Lookup func(name string) (string, bool) `json:"-"`
}

// lookup reads a variable through ks.Lookup.
func (ks KeySource) lookup(name string) (string, bool) {
	if ks.Lookup == nil {
		return "", false
	}
	return ks.Lookup(name)
}

// LoadSigner decrypts the private key. Errors never contain the key or
// the password.
func LoadSigner(ks KeySource) (signature.SignerVerifier, error) {
	var key []byte
	switch {
	case ks.KeyFile != "":
		b, err := os.ReadFile(ks.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading the cosign key: %w", err)
		}
		key = b
	case ks.KeyEnv != "":
		v, ok := ks.lookup(ks.KeyEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("reading the cosign key: environment variable %s is not set", ks.KeyEnv)
		}
		key = []byte(v)
	default:
		return nil, errors.New("reading the cosign key: no key file or environment variable given")
	}
	var pass []byte
	switch {
	case ks.PasswordFile != "":
		b, err := os.ReadFile(ks.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("reading the cosign key password: %w", err)
		}
		pass = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	default:
		env := ks.PasswordEnv
		if env == "" {
			env = "COSIGN_PASSWORD"
		}
		v, ok := ks.lookup(env)
		if !ok {
			return nil, fmt.Errorf("reading the cosign key password: environment variable %s is not set", env)
		}
		pass = []byte(v)
	}
	return ParseSigner(key, pass)
}

// ParseSigner decrypts an encrypted cosign private key.
func ParseSigner(keyPEM, password []byte) (signature.SignerVerifier, error) {
	if !bytes.Contains(keyPEM, []byte("ENCRYPTED SIGSTORE PRIVATE KEY")) && !bytes.Contains(keyPEM, []byte("ENCRYPTED COSIGN PRIVATE KEY")) {
		return nil, errors.New("loading the cosign key: not an encrypted cosign private key (want the cosign.key of `cosign generate-key-pair`)")
	}
	sv, err := sigcosign.LoadPrivateKey(keyPEM, password, nil)
	if err != nil {
		// The library error names neither key nor password, but keep ours
		// fixed anyway.
		return nil, errors.New("loading the cosign key: decryption failed: wrong password or damaged key file")
	}
	return sv, nil
}

// ParsePublicKey reads a PEM public key (cosign.pub) into a verifier.
func ParsePublicKey(pubPEM []byte) (signature.Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("reading the cosign public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("reading the cosign public key: %w", err)
	}
	return v, nil
}

// Attestation is one predicate to attest about an image.
type Attestation struct {
	PredicateType string // e.g. PredicateSPDX
	Predicate     []byte // the predicate JSON, embedded verbatim
}

// Signer signs images and attaches attestations. It implements
// oci.Signer. Attestations maps a flavour to its predicates.
type Signer struct {
	SV           signature.SignerVerifier
	Attestations map[string][]Attestation
	Remote       []remote.Option
	// Annotations are signed into the simple-signing payload (optional).
	Annotations map[string]string
}

// Sign signs ref and attaches the flavour's attestations.
func (s *Signer) Sign(ctx context.Context, flavour string, ref name.Digest) error {
	if err := SignImage(ctx, s.SV, ref, s.Annotations, s.Remote...); err != nil {
		return err
	}
	for _, a := range s.Attestations[flavour] {
		if err := Attest(ctx, s.SV, ref, a, s.Remote...); err != nil {
			return err
		}
	}
	return nil
}

func ociOpts(ctx context.Context, ro []remote.Option) []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(append([]remote.Option{remote.WithContext(ctx)}, ro...)...)}
}

// SignImage writes a keyed cosign signature for ref (an image digest) to
// its repository's sha256-<hex>.sig tag. No transparency log is used.
func SignImage(ctx context.Context, sv signature.SignerVerifier, ref name.Digest, annotations map[string]string, ro ...remote.Option) error {
	var ann map[string]interface{}
	if len(annotations) > 0 {
		ann = map[string]interface{}{}
		for k, v := range annotations {
			ann[k] = v
		}
	}
	pl, err := (&payload.Cosign{Image: ref, Annotations: ann}).MarshalJSON()
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	ociSig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	opts := ociOpts(ctx, ro)
	se, err := ociremote.SignedEntity(ref, opts...)
	if err != nil {
		return fmt.Errorf("signing %s: reading the image from the registry: %w", ref, err)
	}
	se, err = ocimutate.AttachSignatureToEntity(se, ociSig)
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	if err := ociremote.WriteSignatures(ref.Repository, se, opts...); err != nil {
		return fmt.Errorf("signing %s: writing the signature to the registry: %w", ref, err)
	}
	return nil
}

// statement is an in-toto Statement with the predicate kept verbatim.
type statement struct {
	Type          string          `json:"_type"`
	Subject       []subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Statement returns the in-toto statement about ref for a predicate.
func Statement(ref name.Digest, a Attestation) ([]byte, error) {
	if a.PredicateType == "" {
		return nil, errors.New("attestation: empty predicate type")
	}
	if !json.Valid(a.Predicate) {
		return nil, fmt.Errorf("attestation %s: the predicate is not valid JSON", a.PredicateType)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, a.Predicate); err != nil {
		return nil, err
	}
	hexDigest := strings.TrimPrefix(ref.DigestStr(), "sha256:")
	return json.Marshal(statement{
		Type:          intotoStatementType,
		Subject:       []subject{{Name: ref.Repository.Name(), Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: a.PredicateType,
		Predicate:     compact.Bytes(),
	})
}

// Attest signs an in-toto statement about ref in a DSSE envelope and
// attaches it to the repository's sha256-<hex>.att tag (replacing an
// earlier attestation with the same predicate type).
func Attest(ctx context.Context, sv signature.SignerVerifier, ref name.Digest, a Attestation, ro ...remote.Option) error {
	st, err := Statement(ref, a)
	if err != nil {
		return fmt.Errorf("attesting %s: %w", ref, err)
	}
	envelope, err := dsse.WrapSigner(sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return fmt.Errorf("attesting %s (%s): %w", ref, a.PredicateType, err)
	}
	att, err := static.NewAttestation(envelope, static.WithAnnotations(map[string]string{
		"predicateType":                      a.PredicateType,
		"dev.cosignproject.cosign/signature": "",
	}))
	if err != nil {
		return fmt.Errorf("attesting %s: %w", ref, err)
	}
	opts := ociOpts(ctx, ro)
	se, err := ociremote.SignedEntity(ref, opts...)
	if err != nil {
		return fmt.Errorf("attesting %s: reading the image from the registry: %w", ref, err)
	}
	se, err = ocimutate.AttachAttestationToEntity(se, att, ocimutate.WithReplaceOp(replacePredicate(a.PredicateType)))
	if err != nil {
		return fmt.Errorf("attesting %s: %w", ref, err)
	}
	if err := ociremote.WriteAttestations(ref.Repository, se, opts...); err != nil {
		return fmt.Errorf("attesting %s: writing the attestation to the registry: %w", ref, err)
	}
	return nil
}

// replacePredicate drops earlier attestations of the same predicate type,
// so re-running a release does not pile them up.
type replacePredicate string

func (r replacePredicate) Replace(sigs oci.Signatures, att oci.Signature) (oci.Signatures, error) {
	old, err := sigs.Get()
	if err != nil {
		return nil, err
	}
	keep := []oci.Signature{}
	for _, s := range old {
		ann, err := s.Annotations()
		if err != nil {
			return nil, err
		}
		if ann["predicateType"] != string(r) {
			keep = append(keep, s)
		}
	}
	keep = append(keep, att)
	return ocimutate.AppendSignatures(ociempty.Signatures(), false, keep...)
}

// Verified is what Verify checked.
type Verified struct {
	Signatures     int               // valid signatures over the image digest
	PredicateTypes []string          // predicate types with a valid attestation, sorted
	Predicates     map[string][]byte // predicate JSON by type
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	PublicKey      []byte   // PEM, pinned (cosign.pub)
	PredicateTypes []string // attestations that must be present and valid
	Remote         []remote.Option
}

// Verify checks, offline except for the registry, that ref (a tag or a
// digest) carries a valid signature by the pinned key over its digest and
// a valid attestation for every wanted predicate type.
func Verify(ctx context.Context, ref name.Reference, o VerifyOptions) (Verified, error) {
	var v Verified
	verifier, err := ParsePublicKey(o.PublicKey)
	if err != nil {
		return v, err
	}
	co := &sigcosign.CheckOpts{
		RegistryClientOpts: ociOpts(ctx, o.Remote),
		SigVerifier:        verifier,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		Offline:            true,
		ClaimVerifier:      sigcosign.SimpleClaimVerifier,
	}
	sigs, _, err := sigcosign.VerifyImageSignatures(ctx, ref, co)
	if err != nil {
		return v, fmt.Errorf("verifying the signature of %s: %w", ref, err)
	}
	v.Signatures = len(sigs)
	if len(o.PredicateTypes) == 0 {
		return v, nil
	}
	co.ClaimVerifier = sigcosign.IntotoSubjectClaimVerifier
	atts, _, err := sigcosign.VerifyImageAttestations(ctx, ref, co)
	if err != nil {
		return v, fmt.Errorf("verifying the attestations of %s: %w", ref, err)
	}
	v.Predicates = map[string][]byte{}
	for _, a := range atts {
		pl, err := a.Payload()
		if err != nil {
			return v, err
		}
		var env struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(pl, &env); err != nil {
			return v, fmt.Errorf("verifying the attestations of %s: %w", ref, err)
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			return v, fmt.Errorf("verifying the attestations of %s: %w", ref, err)
		}
		var st statement
		if err := json.Unmarshal(raw, &st); err != nil {
			return v, fmt.Errorf("verifying the attestations of %s: %w", ref, err)
		}
		v.Predicates[st.PredicateType] = st.Predicate
	}
	var missing []string
	for _, t := range o.PredicateTypes {
		if _, ok := v.Predicates[t]; !ok {
			missing = append(missing, t)
		}
	}
	for t := range v.Predicates {
		v.PredicateTypes = append(v.PredicateTypes, t)
	}
	sort.Strings(v.PredicateTypes)
	if len(missing) > 0 {
		return v, fmt.Errorf("verifying the attestations of %s: no valid attestation for %s", ref, strings.Join(missing, ", "))
	}
	return v, nil
}
