// Package rpmhead reads the start of an rpm package: its 96-byte lead and
// its signature header, which hold the package's OpenPGP signatures.
// (The main header and payload are go-rpmutils' business, in package rpm.)
package rpmhead

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const leadSize = 96

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8}
)

// Signature is an rpm's signature header.
type Signature struct {
	// End is the offset of the main header: after the lead and the
	// signature header, padded to 8 bytes.
	End int64
	// Bin holds every tag of binary type (7) by tag number: the OpenPGP
	// signatures (267 DSA and 268 RSA over the header, 1002 PGP and 1005 GPG
	// over header and payload) among them.
	Bin map[uint32][]byte
}

// ReadSignature reads the lead and the signature header from r, and checks
// that a header follows.
func ReadSignature(r io.Reader) (Signature, error) {
	head := make([]byte, leadSize+16)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head[:4], leadMagic) {
		return Signature{}, errors.New("not an rpm (no lead)")
	}
	if !bytes.Equal(head[leadSize:leadSize+3], headerMagic) {
		return Signature{}, errors.New("no signature header after the lead")
	}
	n := binary.BigEndian.Uint32(head[leadSize+8 : leadSize+12])
	size := binary.BigEndian.Uint32(head[leadSize+12 : leadSize+16])
	if n > 1<<16 || size > 1<<26 {
		return Signature{}, errors.New("signature header sizes out of range")
	}
	end := int64(leadSize) + 16 + 16*int64(n) + int64(size)
	pad := (8 - end%8) % 8
	rest := make([]byte, 16*int64(n)+int64(size)+pad+3)
	if _, err := io.ReadFull(r, rest); err != nil {
		return Signature{}, errors.New("truncated signature header")
	}
	if !bytes.Equal(rest[len(rest)-3:], headerMagic) {
		return Signature{}, errors.New("no header after the signature header")
	}
	index, data := rest[:16*n], rest[16*n:16*int64(n)+int64(size)]
	s := Signature{End: end + pad, Bin: map[uint32][]byte{}}
	for i := uint32(0); i < n; i++ {
		e := index[16*i:]
		tag, typ := binary.BigEndian.Uint32(e[0:4]), binary.BigEndian.Uint32(e[4:8])
		off, count := binary.BigEndian.Uint32(e[8:12]), binary.BigEndian.Uint32(e[12:16])
		if typ != 7 { // BIN
			continue
		}
		if uint64(off)+uint64(count) > uint64(len(data)) {
			return Signature{}, fmt.Errorf("signature tag %d out of range", tag)
		}
		s.Bin[tag] = append([]byte(nil), data[off:off+count]...)
	}
	return s, nil
}
