package toolchain

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/halvm/halvm-release/pins"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenConfig is the real recipe as a release runs it: the real lock, the
// fixed build dir and a fixed cache dir.
func goldenConfig(t *testing.T, flavour string) Config {
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	return Config{Lock: l, Flavour: flavour, CacheDir: "/var/cache/halvm-release", OutDir: "/srv/halvm/dist"}
}

// TestPlanGolden pins the real recipe's plan for both flavours: every
// command, working directory and the environment, readable by a reviewer.
// Run `go test ./toolchain -run TestPlanGolden -update` after a deliberate
// change and review the diff.
func TestPlanGolden(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		t.Run(fl, func(t *testing.T) {
			r, err := NewRecipe(goldenConfig(t, fl), Host{FilePrefixMap: true, Fingerprint: "golden"})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := r.WritePlan(&buf, PlanOptions{}); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "plan-"+fl+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("plan differs from %s (run with -update and review the diff):\n%s", golden, lineDiff(string(want), buf.String()))
			}
		})
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var out bytes.Buffer
	n := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			out.WriteString("line " + itoa(i+1) + ":\n  want: " + string(a) + "\n  got:  " + string(b) + "\n")
			if n++; n == 10 {
				break
			}
		}
	}
	return out.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
