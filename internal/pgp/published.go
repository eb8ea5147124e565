package pgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/halvm/halvm-release/internal/ar"
	"github.com/halvm/halvm-release/internal/rpmhead"
)

// published is the signing side of a key that has no private half: the
// signatures a published release carries.
type published struct {
	detached [][]byte // binary signature packets
	clear    [][]byte // cleartext-signed messages (InRelease)

}

// throwaways are the throwaway keys of this process, one per archive key:
// every PublishedSignatures key of the same archive key in one process
// (the rebuild's stages each load their own) signs what differs with the
// same throwaway key, so each one's VerificationKeys accepts what the
// others signed.
var throwaways = struct {
	sync.Mutex
	keys   map[string]*Key
	misses map[string][]string // what each signed
}{keys: map[string]*Key{}, misses: map[string][]string{}}

func throwaway(archive string) *Key {
	throwaways.Lock()
	defer throwaways.Unlock()
	return throwaways.keys[archive]
}

// PublishedSignatures is the archive key as a rebuild without the private
// key holds it: the public key pub (armored or binary) and the signatures
// found below the directories from (detached .gpg/.asc signatures, rpm
// signature headers, InRelease files). It signs by reusing a published
// signature: DetachSign returns the published signature that verifies,
// under pub, over exactly the bytes given; ClearSign returns the published
// cleartext-signed message whose signed text is exactly the text given and
// verifies. So a rebuild of identical content makes the signed artifacts
// of the release byte for byte, and nothing is ever signed by the archive
// key. Bytes that no published signature covers (the rebuild differs) are
// signed with a throwaway development key created for the purpose, never
// trusted by anyone: the artifact then differs from the published one and
// the comparison says so (see Misses).
func PublishedSignatures(pub []byte, from []string) (*Key, error) {
	kr, err := ReadKeyring(pub)
	if err != nil {
		return nil, err
	}
	if len(kr.el) != 1 {
		return nil, fmt.Errorf("the archive public key: want exactly one key, found %d", len(kr.el))
	}
	ps := &published{}
	for _, dir := range from {
		if err := ps.collect(dir); err != nil {
			return nil, err
		}
	}
	if len(ps.detached)+len(ps.clear) == 0 {
		return nil, fmt.Errorf("no published signatures below %s: point at the release's repositories", strings.Join(from, ", "))
	}
	return &Key{e: kr.el[0], published: ps}, nil
}

// IsPublished reports whether k is a PublishedSignatures key.
func (k *Key) IsPublished() bool { return k.published != nil }

// Misses lists what this process signed with the throwaway key of k's
// archive key because no published signature covered it: every
// PublishedSignatures key of that archive key, each stage's (nil for any
// other key, or when nothing differed).
func (k *Key) Misses() []string {
	if k.published == nil {
		return nil
	}
	throwaways.Lock()
	defer throwaways.Unlock()
	return append([]string(nil), throwaways.misses[k.Fingerprint()]...)
}

// VerificationKeys are the public keys the artifacts k signs verify
// under (binary): k's own and, for a PublishedSignatures key that had to
// sign something itself, its throwaway key.
func (k *Key) VerificationKeys() []byte {
	b := k.PublicBinary()
	if k.published == nil {
		return b
	}
	if fb := throwaway(k.Fingerprint()); fb != nil {
		b = append(b, fb.PublicBinary()...)
	}
	return b
}

func (ps *published) detach(k *Key, data io.Reader, t time.Time) ([]byte, error) {
	b, err := io.ReadAll(data)
	if err != nil {
		return nil, fmt.Errorf("signing: reading the data: %w", err)
	}
	el := openpgp.EntityList{k.e}
	for _, sig := range ps.detached {
		if _, err := openpgp.CheckDetachedSignature(el, bytes.NewReader(b), bytes.NewReader(sig), nil); err == nil {
			return append([]byte(nil), sig...), nil
		}
	}
	fb, err := ps.miss(k, fmt.Sprintf("%d bytes with sha256 %s", len(b), sha(b)), t)
	if err != nil {
		return nil, err
	}
	return fb.DetachSign(bytes.NewReader(b), t)
}

func (ps *published) clearSign(k *Key, text []byte, t time.Time) ([]byte, error) {
	kr := &Keyring{el: openpgp.EntityList{k.e}}
	for _, msg := range ps.clear {
		if got, _, err := kr.VerifyClearSigned(msg); err == nil && bytes.Equal(got, text) {
			return append([]byte(nil), msg...), nil
		}
	}
	fb, err := ps.miss(k, fmt.Sprintf("a cleartext-signed text of %d bytes with sha256 %s", len(text), sha(text)), t)
	if err != nil {
		return nil, err
	}
	return fb.ClearSign(text, t)
}

// miss records what no published signature covered and returns the
// process's throwaway key for k's archive key, made on first use.
func (ps *published) miss(k *Key, what string, t time.Time) (*Key, error) {
	throwaways.Lock()
	defer throwaways.Unlock()
	throwaways.misses[k.Fingerprint()] = append(throwaways.misses[k.Fingerprint()], what)
	fb := throwaways.keys[k.Fingerprint()]
	if fb == nil {
		var err error
		fb, err = Generate("HaLVM rebuild throwaway key - signs only what differs from the release", "rebuild@halvm.invalid", true, t)
		if err != nil {
			return nil, err
		}
		throwaways.keys[k.Fingerprint()] = fb
	}
	if t.Before(fb.Created()) {
		return nil, fmt.Errorf("signing at %s with the rebuild's throwaway key, created at %s", t.UTC().Format(time.RFC3339), fb.Created().UTC().Format(time.RFC3339))
	}
	return fb, nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// collect gathers the signatures below dir.
func (ps *published) collect(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading published signatures: %w", err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		name := filepath.Base(p)
		switch {
		case name == "InRelease":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			ps.clear = append(ps.clear, b)
		case strings.HasSuffix(name, ".rpm"):
			sigs, err := rpmSignatures(p)
			if err != nil {
				return fmt.Errorf("reading the signatures of %s: %w", p, err)
			}
			ps.detached = append(ps.detached, sigs...)
		case strings.HasSuffix(name, ".deb"):
			sig, err := debOrigin(p)
			if err != nil {
				return fmt.Errorf("reading the signature of %s: %w", p, err)
			}
			if sig != nil {
				ps.detached = append(ps.detached, sig)
			}
		case strings.HasSuffix(name, ".gpg") || strings.HasSuffix(name, ".asc"):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if sig, ok := signaturePacket(b); ok {
				ps.detached = append(ps.detached, sig)
			}
		}
	}
	return nil
}

// signaturePacket is b as a binary signature packet when b is a detached
// signature, armored or not (a key file is not).
func signaturePacket(b []byte) ([]byte, bool) {
	if bytes.Contains(b, []byte("-----BEGIN PGP SIGNATURE-----")) {
		blk, err := armor.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, false
		}
		if b, err = io.ReadAll(blk.Body); err != nil {
			return nil, false
		}
	}
	p, err := packet.Read(bytes.NewReader(b))
	if err != nil {
		return nil, false
	}
	if _, ok := p.(*packet.Signature); !ok {
		return nil, false
	}
	return b, true
}

// rpmSignatureTags are the OpenPGP signatures an rpm's signature header
// holds: DSA and RSA over the header, PGP and GPG over header and payload.
var rpmSignatureTags = []uint32{267, 268, 1002, 1005}

// rpmSignatures reads the OpenPGP signatures of an rpm's signature header.
func rpmSignatures(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := rpmhead.ReadSignature(f)
	if err != nil {
		return nil, err
	}
	var sigs [][]byte
	for _, tag := range rpmSignatureTags {
		if sig, ok := h.Bin[tag]; ok {
			sigs = append(sigs, sig)
		}
	}
	return sigs, nil
}

// debOrigin is the debsign-style signature of a .deb (its _gpgorigin ar
// member) as a binary packet, or nil for an unsigned deb.
func debOrigin(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var sig []byte
	err = ar.Walk(f, func(name string, size int64, body io.Reader) error {
		if name != "_gpgorigin" {
			return nil
		}
		if size > 1<<20 {
			return errors.New("_gpgorigin too large")
		}
		b, err := io.ReadAll(body)
		if err != nil || int64(len(b)) != size {
			return errors.New("truncated _gpgorigin")
		}
		s, ok := signaturePacket(b)
		if !ok {
			return errors.New("_gpgorigin holds no OpenPGP signature")
		}
		sig = s
		return ar.Stop
	})
	return sig, err
}
