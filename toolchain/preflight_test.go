package toolchain

import (
	"context"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/testenv"
)

func TestPreflightOnThisHost(t *testing.T) {
	err := Preflight(context.Background())
	if err != nil {
		testenv.Unavailable(t, err.Error(), "install the packages named above (CI installs them in .ci/run)")
	}
}

func TestPreflightListsEverythingAtOnce(t *testing.T) {
	saved := Prerequisites
	defer func() { Prerequisites = saved }()
	Prerequisites = []Prerequisite{
		{What: "no-such-program-1", Package: "pkg-b"},
		{What: "/no/such/header.h", File: true, Package: "pkg-a"},
		{What: "sh", Package: "dash"},
	}
	err := Preflight(context.Background())
	if err == nil {
		t.Fatal("missing prerequisites accepted")
	}
	for _, want := range []string{"2 host prerequisites are missing", "no-such-program-1 (Debian package pkg-b)", "/no/such/header.h (Debian package pkg-a)", "apt-get install -y pkg-a pkg-b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
