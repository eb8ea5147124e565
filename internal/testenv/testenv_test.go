package testenv

import "testing"

func TestCIFlag(t *testing.T) {
	t.Setenv("CI", "true")
	if !CI() {
		t.Fatal("CI=true not detected")
	}
	t.Setenv("CI", "")
	if CI() {
		t.Fatal("empty CI detected as CI")
	}
}
