// Package devkeys makes the development keys a local trial or the demo
// signs with: an OpenPGP archive key marked "DEVELOPMENT KEY - NOT FOR
// RELEASES" everywhere it appears, and a password-encrypted cosign key
// pair. A release refuses development keys.
package devkeys

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/oci/cosign"
)

// Files are the key files in a development key directory.
type Files struct {
	Dir            string
	PGPKey         string // armored private key, passphrase-protected
	PGPPassphrase  string
	PGPPublic      string // armored public key
	CosignKey      string // encrypted cosign private key
	CosignPassword string
	CosignPublic   string
}

// In returns the file names of a development key directory.
func In(dir string) Files {
	return Files{Dir: dir,
		PGPKey: filepath.Join(dir, "halvm-dev.pgp.key"), PGPPassphrase: filepath.Join(dir, "halvm-dev.pgp.passphrase"),
		PGPPublic: filepath.Join(dir, "halvm-dev.pgp.pub"), CosignKey: filepath.Join(dir, "cosign.key"),
		CosignPassword: filepath.Join(dir, "cosign.password"), CosignPublic: filepath.Join(dir, "cosign.pub")}
}

// Exists reports whether dir already holds a complete set.
func (f Files) Exists() bool {
	for _, p := range []string{f.PGPKey, f.PGPPassphrase, f.PGPPublic, f.CosignKey, f.CosignPassword, f.CosignPublic} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Ensure makes a development key set in dir unless one is there. created
// is the OpenPGP key's creation time (the epoch, so signatures made at the
// epoch are valid). Secrets are written 0600.
func Ensure(dir string, created time.Time) (Files, error) {
	f := In(dir)
	if f.Exists() {
		return f, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	// Runs in parallel (test packages, two demos) must not each write half
	// a key set: one makes it under an exclusive lock, the others use it.
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return f, err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return f, fmt.Errorf("locking %s: %w", dir, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	if f.Exists() {
		return f, nil
	}
	pass, err := secret()
	if err != nil {
		return f, err
	}
	k, err := pgp.Generate("HaLVM development archive key", "dev@halvm.invalid", true, created)
	if err != nil {
		return f, fmt.Errorf("generating the development OpenPGP key: %w", err)
	}
	armored, err := k.ArmoredPrivate([]byte(pass))
	if err != nil {
		return f, err
	}
	cpass, err := secret()
	if err != nil {
		return f, err
	}
	priv, pub, err := cosign.GenerateKey([]byte(cpass))
	if err != nil {
		return f, fmt.Errorf("generating the development cosign key: %w", err)
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.PGPKey, armored, 0o600}, {f.PGPPassphrase, []byte(pass + "\n"), 0o600}, {f.PGPPublic, k.PublicArmored(), 0o644},
		{f.CosignKey, priv, 0o600}, {f.CosignPassword, []byte(cpass + "\n"), 0o600}, {f.CosignPublic, pub, 0o644},
	} {
		// Atomically: the set exists once its last file is renamed in.
		if err := os.WriteFile(w.path+".tmp", w.data, w.mode); err != nil {
			return f, err
		}
		if err := os.Rename(w.path+".tmp", w.path); err != nil {
			return f, err
		}
	}
	return f, nil
}

// PGPSource is the key source of the development OpenPGP key.
func (f Files) PGPSource() pgp.KeySource {
	return pgp.KeySource{File: f.PGPKey, PassphraseFile: f.PGPPassphrase}
}

// CosignSource is the key source of the development cosign key.
func (f Files) CosignSource() cosign.KeySource {
	return cosign.KeySource{KeyFile: f.CosignKey, PasswordFile: f.CosignPassword}
}

func secret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
