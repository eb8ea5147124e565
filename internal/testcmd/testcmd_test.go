package testcmd

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsTheTestCommand: .ci/run runs the command under the
// README's marker; it must be this package's, which sets the machine up.
func TestREADMEShowsTheTestCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- test-command -->\n")
	lines := strings.SplitN(after, "\n", 3)
	if !ok || len(lines) < 2 || lines[0] != "```sh" || lines[1] != "go run mage.go test" {
		t.Fatalf("README.md's test-command marker is not followed by ```sh and `go run mage.go test`: %q", lines)
	}
}

func TestNeedsTheWholeTable(t *testing.T) {
	s := Needs()
	for _, p := range []string{"nginx", "docker-registry", "lintian", "qemu-system-x86", "xen-utils-4.17", "sqv", "createrepo-c"} {
		if !strings.Contains(" "+strings.Join(s.Packages(), " ")+" ", " "+p+" ") {
			t.Errorf("the test set-up lacks %s", p)
		}
	}
}
