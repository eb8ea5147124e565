// Package pgp owns the project's OpenPGP keys and signatures: generating and
// loading the archive signing key, exporting its public half for apt and
// rpm, and making deterministic detached and cleartext signatures that
// Debian 12's gpgv and sqv and rpm 4.18 accept.
//
// Determinism: keys are v4 RSA (PKCS#1 v1.5 signatures are a pure function
// of key and message), every signature is stamped with the caller's time
// (SOURCE_DATE_EPOCH), and go-crypto's random salt notation is turned off.
// Signing the same bytes at the same time twice gives identical output.
package pgp

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// DevelopmentComment is the user ID comment of a development key.
const DevelopmentComment = "DEVELOPMENT KEY - NOT FOR RELEASES"

// rsaBits is the size of generated keys: accepted by gpg 2.2, sqv and rpm 4.18.
const rsaBits = 3072

// Key is an OpenPGP v4 key with its (decrypted) secret part: the archive
// signing key. A Key is safe for concurrent signing.
type Key struct {
	e *openpgp.Entity
	// published, when set, makes this a key without its private half
	// that signs with a published release's signatures (PublishedSignatures).
	published *published
}

// Generate makes a v4 RSA-3072 key whose primary key signs and certifies,
// with one user ID "name (comment) <email>"; created is its creation time
// and the time of its self-signature (use the epoch for development keys so
// that they sign anything stamped with the epoch). A development key carries
// the comment DevelopmentComment. The key material itself is random.
func Generate(name, email string, development bool, created time.Time) (*Key, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("generating key: empty name: give the key owner's name")
	}
	if strings.ContainsAny(name+email, "()<>\x00") {
		return nil, fmt.Errorf("generating key: name %q or email %q contains one of ()<> or NUL", name, email)
	}
	comment := ""
	if development {
		comment = DevelopmentComment
	}
	cfg := &packet.Config{
		Algorithm:   packet.PubKeyAlgoRSA,
		RSABits:     rsaBits,
		DefaultHash: crypto.SHA256,
		Time:        func() time.Time { return created },
		// No key expiry: rotation travels through the keyring package.
		KeyLifetimeSecs:                       0,
		NonDeterministicSignaturesViaNotation: ptr(false),
	}
	e, err := openpgp.NewEntity(name, comment, email, cfg)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	// NewEntity adds an RSA encryption subkey; an archive key never
	// decrypts anything, so keep the certificate to its signing primary.
	e.Subkeys = nil
	return &Key{e: e}, nil
}

// ReadKey reads one armored (or binary) secret key and decrypts it with
// passphrase when it is protected. Errors never contain the passphrase or
// key material.
func ReadKey(armoredPrivate []byte, passphrase []byte) (*Key, error) {
	var el openpgp.EntityList
	var err error
	if bytes.Contains(armoredPrivate, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredPrivate))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(armoredPrivate))
	}
	if err != nil {
		return nil, fmt.Errorf("reading key: not an OpenPGP secret key (%s): export it with `gpg --armor --export-secret-keys FPR`", sanitizeErr(err))
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("reading key: want exactly one key, found %d: export only the archive key", len(el))
	}
	e := el[0]
	if e.PrivateKey == nil {
		return nil, errors.New("reading key: this is a public key, the secret key is needed: export it with `gpg --armor --export-secret-keys FPR`")
	}
	if err := checkAlgorithm(e.PrimaryKey); err != nil {
		return nil, fmt.Errorf("reading key %X: %w", e.PrimaryKey.Fingerprint, err)
	}
	if e.PrivateKey.Dummy() {
		return nil, fmt.Errorf("reading key %X: the primary secret key is a stub (offline primary or smartcard): export the full secret key", e.PrimaryKey.Fingerprint)
	}
	if encrypted(e) {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("reading key %X: the key is passphrase-protected and no passphrase was given: set the passphrase file or variable", e.PrimaryKey.Fingerprint)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("reading key %X: decrypting: wrong passphrase or damaged key (%s)", e.PrimaryKey.Fingerprint, sanitizeErr(err, passphrase))
		}
	}
	k := &Key{e: e}
	if _, ok := e.SigningKey(e.PrimaryKey.CreationTime); !ok {
		// Try "now" too: a key may have a later self-signature.
		if _, ok := e.SigningKey(time.Now()); !ok {
			return nil, fmt.Errorf("reading key %X: no usable signing key (expired, revoked or no signing flag)", e.PrimaryKey.Fingerprint)
		}
	}
	return k, nil
}

// KeySource says where the secret key and its passphrase come from: the key
// from a file (File) or an environment variable holding the armored key
// (Env); the passphrase, if any, from a file (PassphraseFile) or an
// environment variable (PassphraseEnv). Set at most one of each pair. A
// passphrase file's final newline is not part of the passphrase. The
// variables are read through Lookup (internal/config sets it; this package
// never reads the environment itself).
type KeySource struct {
	File, Env                     string
	PassphraseFile, PassphraseEnv string
	// Or no private key at all: the public key in PublicFile with the
	// signatures a published release carries below SignaturesFrom
	// (PublishedSignatures): what a rebuild signs with.
	PublicFile     string
	SignaturesFrom []string
	// Lookup reads the variables Env and PassphraseEnv name; nil when
	// neither is set.
	Lookup func(name string) (string, bool) `json:"-"`
}

// lookup reads a variable through s.Lookup.
func (s KeySource) lookup(name string) (string, bool) {
	if s.Lookup == nil {
		return "", false
	}
	return s.Lookup(name)
}

// String names the source without its content.
func (s KeySource) String() string {
	var parts []string
	if s.File != "" {
		parts = append(parts, "key file "+s.File)
	}
	if s.Env != "" {
		parts = append(parts, "key variable $"+s.Env)
	}
	if s.PassphraseFile != "" {
		parts = append(parts, "passphrase file "+s.PassphraseFile)
	}
	if s.PassphraseEnv != "" {
		parts = append(parts, "passphrase variable $"+s.PassphraseEnv)
	}
	if s.PublicFile != "" {
		parts = append(parts, "public key file "+s.PublicFile)
	}
	if len(s.SignaturesFrom) > 0 {
		parts = append(parts, "published signatures below "+strings.Join(s.SignaturesFrom, ", "))
	}
	if len(parts) == 0 {
		return "no key source"
	}
	return strings.Join(parts, ", ")
}

// LoadKey reads the key described by src. Errors name the file or variable,
// never their content. Every problem with src is reported at once.
func LoadKey(src KeySource) (*Key, error) {
	if src.PublicFile != "" || len(src.SignaturesFrom) > 0 {
		return loadPublished(src)
	}
	var problems []string
	if src.File == "" && src.Env == "" {
		problems = append(problems, "no key given: set a key file or a key environment variable")
	}
	if src.File != "" && src.Env != "" {
		problems = append(problems, fmt.Sprintf("both key file %s and variable $%s are set: set only one", src.File, src.Env))
	}
	if src.PassphraseFile != "" && src.PassphraseEnv != "" {
		problems = append(problems, fmt.Sprintf("both passphrase file %s and variable $%s are set: set only one", src.PassphraseFile, src.PassphraseEnv))
	}
	var keyData, pass []byte
	switch {
	case src.File != "":
		b, err := os.ReadFile(src.File)
		if err != nil {
			problems = append(problems, fmt.Sprintf("reading key file: %v", err))
		}
		keyData = b
	case src.Env != "":
		v, ok := src.lookup(src.Env)
		if !ok || strings.TrimSpace(v) == "" {
			problems = append(problems, fmt.Sprintf("key variable $%s is unset or empty: put the armored secret key in it", src.Env))
		}
		keyData = []byte(v)
	}
	switch {
	case src.PassphraseFile != "":
		b, err := os.ReadFile(src.PassphraseFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("reading passphrase file: %v", err))
		}
		pass = trimNewline(b)
	case src.PassphraseEnv != "":
		v, ok := src.lookup(src.PassphraseEnv)
		if !ok {
			problems = append(problems, fmt.Sprintf("passphrase variable $%s is unset", src.PassphraseEnv))
		}
		pass = []byte(v)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("loading signing key from %s: %s", src, strings.Join(problems, "; "))
	}
	k, err := ReadKey(keyData, pass)
	if err != nil {
		return nil, fmt.Errorf("loading signing key from %s: %w", src, err)
	}
	return k, nil
}

// ArmoredPrivate exports the secret key, armored; encrypted with passphrase
// (iterated and salted S2K, readable by gpg 2.2) when it is non-empty. The
// encrypted form is randomly salted, so it differs between calls.
func (k *Key) ArmoredPrivate(passphrase []byte) ([]byte, error) {
	if k.published != nil {
		return nil, errors.New("this key has no private half (it signs with a published release's signatures)")
	}
	var raw bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&raw, nil); err != nil {
		return nil, fmt.Errorf("exporting secret key: %w", err)
	}
	data := raw.Bytes()
	if len(passphrase) > 0 {
		// Encrypt a copy: k stays usable for signing.
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil || len(el) != 1 {
			return nil, fmt.Errorf("exporting secret key: re-reading: %v", err)
		}
		cfg := &packet.Config{S2KConfig: &s2k.Config{
			S2KMode:  s2k.IteratedSaltedS2K,
			Hash:     crypto.SHA256,
			S2KCount: 65011712,
		}}
		if err := el[0].EncryptPrivateKeys(passphrase, cfg); err != nil {
			return nil, fmt.Errorf("exporting secret key: encrypting: %s", sanitizeErr(err, passphrase))
		}
		var enc bytes.Buffer
		if err := el[0].SerializePrivateWithoutSigning(&enc, nil); err != nil {
			return nil, fmt.Errorf("exporting secret key: %w", err)
		}
		data = enc.Bytes()
	}
	return armorBytes(openpgp.PrivateKeyType, data)
}

// PublicArmored is the public key (certificate), armored with the CRC line:
// the `.asc` users download and what `rpmkeys --import` takes.
func (k *Key) PublicArmored() []byte {
	b, err := armorBytes(openpgp.PublicKeyType, k.PublicBinary())
	if err != nil {
		panic(err) // writing to memory cannot fail
	}
	return b
}

// PublicBinary is the public key in binary form, as apt wants it in
// /etc/apt/keyrings/*.gpg and gpgv/sqv as a keyring.
func (k *Key) PublicBinary() []byte {
	var b bytes.Buffer
	if err := k.e.Serialize(&b); err != nil {
		panic(fmt.Sprintf("pgp: serializing public key: %v", err)) // memory writer
	}
	return b.Bytes()
}

// Fingerprint is the primary key's fingerprint in upper-case hex.
func (k *Key) Fingerprint() string { return fmt.Sprintf("%X", k.e.PrimaryKey.Fingerprint) }

// KeyID is the long (16 hex digit) key ID, upper case.
func (k *Key) KeyID() string { return fmt.Sprintf("%016X", k.e.PrimaryKey.KeyId) }

// UserID is the primary user ID, "Name (comment) <email>".
func (k *Key) UserID() string {
	if id, _ := primaryIdentity(k.e); id != nil {
		return id.Name
	}
	return ""
}

// Created is the key's creation time.
func (k *Key) Created() time.Time { return k.e.PrimaryKey.CreationTime.UTC() }

// IsDevelopment reports whether a user ID carries DevelopmentComment.
func (k *Key) IsDevelopment() bool {
	for _, id := range k.e.Identities {
		if id.UserId != nil && strings.Contains(id.UserId.Comment, DevelopmentComment) {
			return true
		}
	}
	return false
}

// DetachSign returns a binary detached signature of data made at time t.
// Signing the same data at the same t gives the same bytes.
func (k *Key) DetachSign(data io.Reader, t time.Time) ([]byte, error) {
	if k.published != nil {
		return k.published.detach(k, data, t)
	}
	cfg, err := k.config(t)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := openpgp.DetachSign(&b, k.e, data, cfg); err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", k.Fingerprint(), err)
	}
	return b.Bytes(), nil
}

// DetachSignArmored is DetachSign, armored with the CRC line.
func (k *Key) DetachSignArmored(data io.Reader, t time.Time) ([]byte, error) {
	sig, err := k.DetachSign(data, t)
	if err != nil {
		return nil, err
	}
	return armorBytes(openpgp.SignatureType, sig)
}

// ClearSign returns data as a cleartext-signed message (apt's InRelease)
// made at time t. go-crypto writes the signature armor without the CRC line,
// which bookworm's gpgv rejects, so the signature block is re-armored with it.
func (k *Key) ClearSign(data []byte, t time.Time) ([]byte, error) {
	if k.published != nil {
		return k.published.clearSign(k, data, t)
	}
	cfg, err := k.config(t)
	if err != nil {
		return nil, err
	}
	sk, ok := k.e.SigningKey(t)
	if !ok || sk.PrivateKey == nil {
		return nil, fmt.Errorf("clearsigning with key %s: no usable signing key at %s", k.Fingerprint(), t.UTC().Format(time.RFC3339))
	}
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, sk.PrivateKey, cfg)
	if err != nil {
		return nil, fmt.Errorf("clearsigning with key %s: %w", k.Fingerprint(), err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("clearsigning: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("clearsigning: %w", err)
	}
	return rearmorClearsigned(out.Bytes())
}

// rearmorClearsigned replaces the signature armor of a cleartext-signed
// message with one that carries the CRC-24 line.
func rearmorClearsigned(msg []byte) ([]byte, error) {
	const begin = "\n-----BEGIN PGP SIGNATURE-----"
	i := bytes.LastIndex(msg, []byte(begin))
	if i < 0 {
		return nil, errors.New("clearsigning: no signature block in output")
	}
	blk, err := armor.Decode(bytes.NewReader(msg[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("clearsigning: decoding signature armor: %w", err)
	}
	sig, err := io.ReadAll(blk.Body)
	if err != nil {
		return nil, fmt.Errorf("clearsigning: decoding signature armor: %w", err)
	}
	arm, err := armorBytes(openpgp.SignatureType, sig)
	if err != nil {
		return nil, err
	}
	res := append(append([]byte{}, msg[:i+1]...), arm...)
	return res, nil
}

// config is the deterministic signing configuration for time t.
func (k *Key) config(t time.Time) (*packet.Config, error) {
	if t.IsZero() {
		return nil, errors.New("signing: zero signature time: pass SOURCE_DATE_EPOCH")
	}
	if t.Before(k.e.PrimaryKey.CreationTime) {
		return nil, fmt.Errorf("signing: signature time %s is before the key's creation %s: gpgv would reject it; use a key created at or before the epoch",
			t.UTC().Format(time.RFC3339), k.e.PrimaryKey.CreationTime.UTC().Format(time.RFC3339))
	}
	return &packet.Config{
		DefaultHash:                           crypto.SHA256,
		Time:                                  func() time.Time { return t },
		NonDeterministicSignaturesViaNotation: ptr(false),
	}, nil
}

// checkAlgorithm refuses keys that bookworm's gpgv, sqv or rpm 4.18 reject.
func checkAlgorithm(pk *packet.PublicKey) error {
	if pk.Version != 4 {
		return fmt.Errorf("v%d key: Debian 12's gpgv, sqv and rpm 4.18 accept only v4 keys: use an RSA-3072 or RSA-4096 v4 key", pk.Version)
	}
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		if rk, ok := pk.PublicKey.(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: use at least 3072 bits", rk.N.BitLen())
		}
		return nil
	case packet.PubKeyAlgoEdDSA:
		return nil
	}
	return fmt.Errorf("public-key algorithm %d: Debian 12's tools accept RSA or legacy EdDSA (22) v4 keys: use RSA-3072", pk.PubKeyAlgo)
}

func encrypted(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		return true
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

func primaryIdentity(e *openpgp.Entity) (*openpgp.Identity, bool) {
	_, id := e.PrimarySelfSignature()
	return id, id != nil
}

func armorBytes(blockType string, data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, blockType, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// sanitizeErr renders err without any of the given secrets.
func sanitizeErr(err error, secrets ...[]byte) string {
	s := err.Error()
	for _, sec := range secrets {
		if len(sec) > 0 {
			s = strings.ReplaceAll(s, string(sec), "[redacted]")
		}
	}
	return s
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func ptr[T any](v T) *T { return &v }

// Keyring is a set of public keys to verify signatures against.
type Keyring struct {
	el openpgp.EntityList
}

// ReadKeyring parses public keys, armored (.asc) or binary (.gpg).
func ReadKeyring(pub []byte) (*Keyring, error) {
	var el openpgp.EntityList
	var err error
	if bytes.Contains(pub, []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(pub))
	}
	if err != nil {
		return nil, fmt.Errorf("reading public keyring: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("reading public keyring: no keys in it")
	}
	return &Keyring{el: el}, nil
}

// Keyring is k's public half as a Keyring.
func (k *Key) Keyring() *Keyring {
	kr, err := ReadKeyring(k.PublicBinary())
	if err != nil {
		panic(err) // our own serialization
	}
	return kr
}

// Entities are the keyring's keys, for readers that check signatures
// themselves (rpm headers).
func (kr *Keyring) Entities() openpgp.EntityList { return kr.el }

// Fingerprints lists the primary fingerprints in the keyring (upper-case hex).
func (kr *Keyring) Fingerprints() []string {
	var fps []string
	for _, e := range kr.el {
		fps = append(fps, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
	}
	return fps
}

// VerifyDetached checks a detached signature (binary or armored) of data
// and returns the signing key's fingerprint.
func (kr *Keyring) VerifyDetached(data io.Reader, sig []byte) (string, error) {
	var signer *openpgp.Entity
	var err error
	if bytes.Contains(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
		signer, err = openpgp.CheckArmoredDetachedSignature(kr.el, data, bytes.NewReader(sig), nil)
	} else {
		signer, err = openpgp.CheckDetachedSignature(kr.el, data, bytes.NewReader(sig), nil)
	}
	if err != nil {
		return "", fmt.Errorf("verifying signature: %w", err)
	}
	return fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint), nil
}

// VerifyClearSigned checks a cleartext-signed message (InRelease) and
// returns the signed text (dash-unescaped, trailing whitespace of lines
// removed, as OpenPGP signs it) and the signing key's fingerprint. Text outside the signed
// block is an error, as apt treats it.
func (kr *Keyring) VerifyClearSigned(msg []byte) (text []byte, fingerprint string, err error) {
	blk, rest := clearsign.Decode(msg)
	if blk == nil {
		return nil, "", errors.New("verifying cleartext signature: no signed message found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", errors.New("verifying cleartext signature: data after the signature block")
	}
	if i := bytes.Index(msg, []byte("-----BEGIN PGP SIGNED MESSAGE-----")); i != 0 {
		return nil, "", errors.New("verifying cleartext signature: data before the signed message")
	}
	signer, err := blk.VerifySignature(kr.el, nil)
	if err != nil {
		return nil, "", fmt.Errorf("verifying cleartext signature: %w", err)
	}
	return blk.Plaintext, fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint), nil
}

// loadPublished loads a PublishedSignatures key: no private key or
// passphrase may be named with it.
func loadPublished(src KeySource) (*Key, error) {
	var problems []string
	if src.File != "" || src.Env != "" || src.PassphraseFile != "" || src.PassphraseEnv != "" {
		problems = append(problems, "a private key and published signatures are both given: give one")
	}
	if src.PublicFile == "" {
		problems = append(problems, "no public key file")
	}
	if len(src.SignaturesFrom) == 0 {
		problems = append(problems, "no directory of published signatures")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("loading the archive key from %s: %s", src, strings.Join(problems, "; "))
	}
	pub, err := os.ReadFile(src.PublicFile)
	if err != nil {
		return nil, fmt.Errorf("loading the archive key from %s: %w", src, err)
	}
	k, err := PublishedSignatures(pub, src.SignaturesFrom)
	if err != nil {
		return nil, fmt.Errorf("loading the archive key from %s: %w", src, err)
	}
	return k, nil
}
