package preflight

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckListsEverythingMissingAtOnce(t *testing.T) {
	look := func(c string) (string, error) {
		if c == "git" {
			return "/usr/bin/git", nil
		}
		return "", errors.New("not found")
	}
	exists := func(p string) bool { return p == "/usr/include/zlib.h" }
	err := check(Requirements{
		Tools: []Tool{{"git", "git", "sources"}, {"autoconf", "autoconf", "toolchain"}, {"gpgv", "gpgv", "verify"}, {"autoconf", "autoconf", "again"}},
		Files: []File{{"/usr/include/xen/xen.h", "libxen-dev", "toolchain (RTS)"}, {"/usr/include/zlib.h", "zlib1g-dev", "toolchain"}},
	}, look, exists)
	if err == nil {
		t.Fatal("missing prerequisites not reported")
	}
	msg := err.Error()
	for _, w := range []string{"3 prerequisite(s) missing", "autoconf (Debian package autoconf) — needed by toolchain", "gpgv", "/usr/include/xen/xen.h (Debian package libxen-dev)", "apt-get install autoconf gpgv libxen-dev"} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "git (") || strings.Contains(msg, "zlib") {
		t.Errorf("present prerequisites reported:\n%s", msg)
	}
}

func TestCheckOnThisHost(t *testing.T) {
	if err := Check(Requirements{Tools: []Tool{{"sh", "dash", "everything"}}}); err != nil {
		t.Fatal(err)
	}
}
