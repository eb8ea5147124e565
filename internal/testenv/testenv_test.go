package testenv

import "testing"

func TestCIFlag(t *testing.T) {
	for _, v := range []string{"true", "TRUE", "True", "1", "yes", "Yes", " true "} {
		t.Setenv("CI", v)
		if !CI() {
			t.Errorf("CI=%q not detected", v)
		}
	}
	for _, v := range []string{"", "false", "0", "no", "off", "truth"} {
		t.Setenv("CI", v)
		if CI() {
			t.Errorf("CI=%q detected as CI", v)
		}
	}
}
