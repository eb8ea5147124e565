package sbom

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	ocicosign "github.com/halvm/halvm-release/oci/cosign"
)

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

// SignSums formats sums and signs the result with both keys: the cosign
// key (loaded by oci/cosign, which makes the blob signature) and the
// OpenPGP key.
func SignSums(sums []Sum, ck signature.Signer, pk PGPSigner, epoch time.Time) (SignedSums, error) {
	data, err := FormatSums(sums)
	if err != nil {
		return SignedSums{}, err
	}
	out := SignedSums{Sums: data}
	if out.Cosign, err = ocicosign.SignBlob(ck, data); err != nil {
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
func WriteSignedSums(dir string, names []string, ck signature.Signer, pk PGPSigner, epoch time.Time, led *pipeline.Ledger) (SignedSums, error) {
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
		if err := fsutil.WriteFileAtomic(p, f.data, 0o644); err != nil {
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
