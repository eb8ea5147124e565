// Package epoch owns SOURCE_DATE_EPOCH: the one clock every artifact of a
// release is stamped with (https://reproducible-builds.org/specs/source-date-epoch/).
package epoch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Var is the environment variable that carries the epoch.
const Var = "SOURCE_DATE_EPOCH"

// Parse strictly parses a SOURCE_DATE_EPOCH value: a decimal integer number
// of seconds since 1970-01-01T00:00:00Z, no sign, no spaces, no fraction.
// Anything else is an error, never silently ignored.
func Parse(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is empty: want decimal seconds since 1970-01-01 UTC", Var)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return time.Time{}, fmt.Errorf("%s=%q: want only decimal digits (seconds since 1970-01-01 UTC)", Var, s)
		}
	}
	if len(s) > 1 && strings.HasPrefix(s, "0") {
		return time.Time{}, fmt.Errorf("%s=%q: leading zeros are not allowed", Var, s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 253402300799 { // 9999-12-31T23:59:59Z
		return time.Time{}, fmt.Errorf("%s=%q: out of range (at most 253402300799)", Var, s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Format renders t as a SOURCE_DATE_EPOCH value.
func Format(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Clamp returns t, or the epoch if t is later than it.
func Clamp(t, epoch time.Time) time.Time {
	if t.After(epoch) {
		return epoch
	}
	return t
}
