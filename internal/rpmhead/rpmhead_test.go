package rpmhead_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/rpmhead"
	"github.com/halvm/halvm-release/internal/testpkg"
)

func TestReadSignature(t *testing.T) {
	epoch := time.Unix(1544117080, 0).UTC()
	key, err := pgp.Generate("test", "test@halvm.invalid", true, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testpkg.RPM(t, t.TempDir(), testpkg.Spec{Name: "halvm", Version: "1", Release: "1", Payload: "x", Epoch: epoch, Key: key}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := rpmhead.ReadSignature(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if s.End%8 != 0 || !bytes.Equal(b[s.End:s.End+3], []byte{0x8e, 0xad, 0xe8}) {
		t.Errorf("End %d is not where the main header starts", s.End)
	}
	sig, ok := s.Bin[268] // RSA over the header
	if !ok {
		t.Fatalf("no RSA header signature among %d binary tags", len(s.Bin))
	}
	// The RSA signature covers the main header, which ends after its
	// index and data.
	hdrEnd := s.End + 16 + 16*int64(be(b[s.End+8:])) + int64(be(b[s.End+12:]))
	if _, err := key.Keyring().VerifyDetached(bytes.NewReader(b[s.End:hdrEnd]), sig); err != nil {
		t.Errorf("tag 268 is not the header's signature: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte(strings.Repeat("x", 200)), b[:100], b[:s.End-1]} {
		if _, err := rpmhead.ReadSignature(bytes.NewReader(bad)); err == nil {
			t.Errorf("a %d-byte input read as an rpm", len(bad))
		}
	}
}

func be(b []byte) uint32 { return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) }
