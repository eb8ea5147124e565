package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Official parses HALVM_OFFICIAL strictly: 1, true, yes (any case) mark
// an official release; 0, false, no or unset a trial. Anything else is an
// error naming the value: a typo must never turn a release into a trial.
func Official(env Getenv) (bool, error) {
	return parseBool(env, "HALVM_OFFICIAL", false, "an official release", "a trial")
}

// parseBool is the one strict reading of a yes/no variable: 1, true, yes
// (any case) or 0, false, no; unset is def; anything else is an error
// naming the value and what each answer means.
func parseBool(env Getenv, name string, def bool, yes, no string) (bool, error) {
	v := env(name)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	case "":
		return def, nil
	}
	return false, fmt.Errorf("%s=%q: want 1, true or yes (%s) or 0, false or no (%s)", name, v, yes, no)
}

// Keep parses HALVM_KEEP, the number of live publications kept per
// repository (default 5, at least 2: the live one and the one a rollback
// returns to).
func Keep(env Getenv) (int, error) {
	v := get(env, "HALVM_KEEP")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 2 {
		return 0, fmt.Errorf("HALVM_KEEP=%q: want a whole number of publications, at least 2 (the live one and the one a rollback returns to)", v)
	}
	return n, nil
}

// VerifyCacheDir is where the verification keeps its downloads (the clean
// Debian rootfs template, the Xen machine): HALVM_VERIFY_CACHE, else
// <cacheDir>/verify.
func VerifyCacheDir(env Getenv, cacheDir string) string {
	if d := env("HALVM_VERIFY_CACHE"); d != "" {
		return d
	}
	return filepath.Join(cacheDir, "verify")
}
