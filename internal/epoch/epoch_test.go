package epoch

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := map[string]int64{"0": 0, "1544054400": 1544054400, "253402300799": 253402300799}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got.Unix() != want || got.Location() != time.UTC {
			t.Errorf("Parse(%q) = %v, %v; want %d UTC", in, got, err, want)
		}
	}
	for _, bad := range []string{"", " 1", "1 ", "-1", "+1", "1.5", "1e9", "0x10", "01", "253402300800", "99999999999999999999", "now"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted a malformed epoch", bad)
		}
	}
}

func TestClamp(t *testing.T) {
	e := time.Unix(100, 0)
	if !Clamp(time.Unix(200, 0), e).Equal(e) || !Clamp(time.Unix(50, 0), e).Equal(time.Unix(50, 0)) {
		t.Fatal("Clamp does not clamp to the epoch")
	}
}
