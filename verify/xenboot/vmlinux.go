package xenboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/halvm/halvm-release/internal/run"
)

// bzImagePayload finds the compressed kernel inside a bzImage through its
// boot protocol header (2.08+): setup_sects at 0x1f1, payload_offset and
// payload_length at 0x248 and 0x24c, relative to the protected-mode code
// that starts after the (setup_sects+1) 512-byte sectors. It returns the
// payload and the decompressor it needs.
func bzImagePayload(img []byte) (payload []byte, format string, err error) {
	if len(img) < 0x250 || !bytes.Equal(img[0x202:0x206], []byte("HdrS")) {
		return nil, "", fmt.Errorf("not a bzImage (no HdrS boot header)")
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, "", fmt.Errorf("boot protocol %#x is older than 2.08: no payload fields", v)
	}
	setup := int(img[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(img) {
		return nil, "", fmt.Errorf("payload [%d, +%d) lies outside the %d-byte image", off, n, len(img))
	}
	p := img[off : off+n]
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		format = "xz"
	case bytes.HasPrefix(p, []byte("\x1f\x8b")):
		format = "gzip"
	case bytes.HasPrefix(p, []byte("\x28\xb5\x2f\xfd")):
		format = "zstd"
	default:
		return nil, "", fmt.Errorf("payload starts with % x: not xz, gzip or zstd", p[:min(6, len(p))])
	}
	return p, format, nil
}

// extractVmlinux decompresses a bzImage into the vmlinux ELF it carries.
// The kernel's build appends the decompressed size (4 bytes, little
// endian) to the compressed stream; it is cut off and checked.
func extractVmlinux(ctx context.Context, img []byte, w io.Writer) error {
	p, format, err := bzImagePayload(img)
	if err != nil {
		return fmt.Errorf("extracting vmlinux: %w", err)
	}
	if len(p) < 8 {
		return fmt.Errorf("extracting vmlinux: payload too short")
	}
	want := binary.LittleEndian.Uint32(p[len(p)-4:])
	var out bytes.Buffer
	out.Grow(int(want))
	tool := map[string][]string{"xz": {"xz", "-dc"}, "gzip": {"gzip", "-dc"}, "zstd": {"zstd", "-dcq"}}[format]
	if err := run.Run(ctx, run.Cmd{Args: tool, Stdin: bytes.NewReader(p[:len(p)-4]), Stdout: &out, Env: run.BaseEnv()}); err != nil {
		return fmt.Errorf("extracting vmlinux: decompressing the %s payload: %w (Debian package: %s)", format,
			err, map[string]string{"xz": "xz-utils", "gzip": "gzip", "zstd": "zstd"}[format])
	}
	got := out.Bytes()
	if uint32(len(got)) != want {
		return fmt.Errorf("extracting vmlinux: decompressed %d bytes, the image says %d", len(got), want)
	}
	if !bytes.HasPrefix(got, []byte("\x7fELF\x02")) {
		return fmt.Errorf("extracting vmlinux: the payload is not a 64-bit ELF")
	}
	_, err = w.Write(got)
	return err
}
