package sbom

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/pipeline"
	ocicosign "github.com/halvm/halvm-release/oci/cosign"
)

// CosignKey is a cosign private key, decrypted, for keyed blob signatures
// without a transparency log.
type CosignKey struct {
	sv signature.SignerVerifier
}

// LoadCosignKey decrypts a cosign private key (the PEM "ENCRYPTED SIGSTORE
// PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY" that `cosign
// generate-key-pair` writes) with its password, through oci/cosign (the
// one place cosign keys are decrypted). Errors never contain the password
// or key material.
func LoadCosignKey(privatePEM, password []byte) (*CosignKey, error) {
	sv, err := ocicosign.ParseSigner(privatePEM, password)
	if err != nil {
		return nil, err
	}
	return &CosignKey{sv: sv}, nil
}

// NewCosignKey wraps a key loaded by oci/cosign (LoadSigner, ParseSigner),
// so images and SHA256SUMS.sig are signed by the same loaded key.
func NewCosignKey(sv signature.SignerVerifier) *CosignKey { return &CosignKey{sv: sv} }

// PublicKeyPEM is the public half, as `cosign verify-blob --key` takes it.
func (k *CosignKey) PublicKeyPEM() ([]byte, error) {
	pub, err := k.sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading the cosign public key: %w", err)
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// SignBlob signs data the way `cosign sign-blob --key` does and returns
// the base64 signature that `cosign verify-blob --signature` reads. ECDSA
// signatures are randomized: signing twice gives different bytes that both
// verify.
func (k *CosignKey) SignBlob(data []byte) ([]byte, error) {
	sig, err := k.sv.SignMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cosign-signing: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// VerifyBlob checks a base64 signature made by SignBlob against a PEM
// public key.
func VerifyBlob(publicPEM, data, sig []byte) error {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicPEM)
	if err != nil {
		return fmt.Errorf("reading the cosign public key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
	if err != nil {
		return fmt.Errorf("decoding the cosign signature: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("loading the cosign verifier: %w", err)
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("cosign signature does not verify: %w", err)
	}
	return nil
}

// PGPSigner makes armored OpenPGP detached signatures stamped with t
// (*pgp.Key does).
type PGPSigner interface {
	DetachSignArmored(r io.Reader, t time.Time) ([]byte, error)
}

// SignedSums is a SHA256SUMS file with its two signatures.
type SignedSums struct {
	Sums    []byte // SHA256SUMS
	Cosign  []byte // SHA256SUMS.sig: base64 ECDSA signature
	OpenPGP []byte // SHA256SUMS.asc: armored detached signature, made at the epoch
}

// SignSums formats sums and signs the result with both keys.
func SignSums(sums []Sum, ck *CosignKey, pk PGPSigner, epoch time.Time) (SignedSums, error) {
	data, err := FormatSums(sums)
	if err != nil {
		return SignedSums{}, err
	}
	out := SignedSums{Sums: data}
	if out.Cosign, err = ck.SignBlob(data); err != nil {
		return SignedSums{}, fmt.Errorf("signing %s: %w", SumsName, err)
	}
	if out.OpenPGP, err = pk.DetachSignArmored(bytes.NewReader(data), epoch); err != nil {
		return SignedSums{}, fmt.Errorf("signing %s with OpenPGP: %w", SumsName, err)
	}
	return out, nil
}

// WriteSignedSums hashes the named release files below dir and writes
// SHA256SUMS, SHA256SUMS.sig and SHA256SUMS.asc into dir, recording each
// in the ledger (when not nil) as checksums and signatures.
func WriteSignedSums(dir string, names []string, ck *CosignKey, pk PGPSigner, epoch time.Time, led *pipeline.Ledger) (SignedSums, error) {
	sums, err := SumFiles(dir, names)
	if err != nil {
		return SignedSums{}, fmt.Errorf("writing %s: %w", SumsName, err)
	}
	s, err := SignSums(sums, ck, pk, epoch)
	if err != nil {
		return SignedSums{}, err
	}
	for _, f := range []struct {
		name string
		data []byte
		kind pipeline.Kind
	}{{SumsName, s.Sums, pipeline.KindChecksums}, {SumsCosign, s.Cosign, pipeline.KindSignature}, {SumsOpenPGP, s.OpenPGP, pipeline.KindSignature}} {
		p := filepath.Join(dir, f.name)
		if err := pipeline.WriteFileAtomic(p, f.data, 0o644); err != nil {
			return SignedSums{}, fmt.Errorf("writing %s: %w", f.name, err)
		}
		if led != nil {
			if _, err := led.AddFile(f.kind, f.name, "", p, f.name); err != nil {
				return SignedSums{}, err
			}
		}
	}
	return s, nil
}
