package pgp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
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
var rpmSignatureTags = map[uint32]bool{267: true, 268: true, 1002: true, 1005: true}

// rpmSignatures reads the OpenPGP signatures of an rpm's signature header.
func rpmSignatures(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 96+16)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, errors.New("too short for an rpm")
	}
	if !bytes.Equal(head[:4], []byte{0xed, 0xab, 0xee, 0xdb}) || !bytes.Equal(head[96:99], []byte{0x8e, 0xad, 0xe8}) {
		return nil, errors.New("not an rpm (no lead or signature header)")
	}
	n := binary.BigEndian.Uint32(head[104:108])
	size := binary.BigEndian.Uint32(head[108:112])
	if n > 1<<12 || size > 1<<24 {
		return nil, errors.New("signature header sizes out of range")
	}
	rest := make([]byte, 16*int(n)+int(size))
	if _, err := io.ReadFull(f, rest); err != nil {
		return nil, errors.New("truncated signature header")
	}
	index, data := rest[:16*n], rest[16*n:]
	var sigs [][]byte
	for i := 0; i < int(n); i++ {
		e := index[16*i:]
		tag, typ := binary.BigEndian.Uint32(e[0:4]), binary.BigEndian.Uint32(e[4:8])
		off, count := binary.BigEndian.Uint32(e[8:12]), binary.BigEndian.Uint32(e[12:16])
		if !rpmSignatureTags[tag] || typ != 7 { // 7: BIN
			continue
		}
		if uint64(off)+uint64(count) > uint64(len(data)) {
			return nil, fmt.Errorf("signature tag %d out of range", tag)
		}
		sigs = append(sigs, append([]byte(nil), data[off:off+count]...))
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
	magic := make([]byte, 8)
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != "!<arch>\n" {
		return nil, errors.New("not an ar archive")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(f, hdr); err == io.EOF {
			return nil, nil
		} else if err != nil {
			return nil, errors.New("truncated ar member header")
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[:16])), "/")
		var size int64
		if _, err := fmt.Sscan(strings.TrimSpace(string(hdr[48:58])), &size); err != nil || size < 0 {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		if name == "_gpgorigin" {
			if size > 1<<20 {
				return nil, errors.New("_gpgorigin too large")
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(f, b); err != nil {
				return nil, errors.New("truncated _gpgorigin")
			}
			sig, ok := signaturePacket(b)
			if !ok {
				return nil, errors.New("_gpgorigin holds no OpenPGP signature")
			}
			return sig, nil
		}
		if _, err := f.Seek(size+size%2, io.SeekCurrent); err != nil {
			return nil, err
		}
	}
}
