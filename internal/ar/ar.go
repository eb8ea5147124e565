// Package ar walks the members of an ar archive (the container of a .deb):
// one reader for every place that looks inside a .deb without unpacking it.
package ar

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrNotAr is returned when the input does not start with the ar magic.
var ErrNotAr = errors.New("not an ar archive (no !<arch> header)")

// Stop, returned by a Walk callback, ends the walk without an error.
var Stop = errors.New("stop walking")

// Walk calls fn for each member of the ar archive r, in order, with its
// name (a GNU-style trailing "/" removed), its size and a reader of its
// body; fn need not read all of it. The walk ends at the end of the
// archive, when fn returns Stop (Walk then returns nil) or any other error
// (returned as is).
func Walk(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != "!<arch>\n" {
		return ErrNotAr
	}
	for {
		var hdr [60]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("reading ar header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return errors.New("corrupt ar member header")
		}
		name := strings.TrimSuffix(strings.TrimRight(string(hdr[0:16]), " "), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("ar member %q: bad size", name)
		}
		body := io.LimitReader(r, size)
		if err := fn(name, size, body); err != nil {
			if errors.Is(err, Stop) {
				return nil
			}
			return err
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("reading ar member %q: %w", name, err)
		}
		if size%2 == 1 {
			if _, err := io.ReadFull(r, make([]byte, 1)); err != nil && err != io.EOF {
				return fmt.Errorf("reading ar padding: %w", err)
			}
		}
	}
}
