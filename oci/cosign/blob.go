package cosign

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// SignBlob signs data the way `cosign sign-blob --key` does and returns
// the base64 signature that `cosign verify-blob --signature` reads (e.g.
// SHA256SUMS.sig). ECDSA signatures are randomized: signing twice gives
// different bytes that both verify.
func SignBlob(s signature.Signer, data []byte) ([]byte, error) {
	sig, err := s.SignMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("cosign-signing: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// VerifyBlob checks a base64 signature made by SignBlob (or `cosign
// sign-blob`) against a PEM public key.
func VerifyBlob(publicPEM, data, sig []byte) error {
	v, err := ParsePublicKey(publicPEM)
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
	if err != nil {
		return fmt.Errorf("decoding the cosign signature: %w", err)
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("cosign signature does not verify: %w", err)
	}
	return nil
}

// PublicKeyPEM is the public half of a loaded key, as `cosign verify-blob
// --key` and `cosign verify --key` take it (cosign.pub).
func PublicKeyPEM(sv signature.SignerVerifier) ([]byte, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("reading the cosign public key: %w", err)
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}
