package benchsum

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestSummaryGathersBlocksInOrder(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("goos: linux\nBenchmarkX 1 2 ns/op\n")
	Print(&b, "demo re-runs", "cold 100 s\nno-op 1 s\n")
	b.WriteString("PASS\nok pkg 1s\nnoise\n")
	Print(&b, "compression", "| deb | xz |")
	want := "\ndemo re-runs:\ncold 100 s\nno-op 1 s\n\ncompression:\n| deb | xz |\n"
	if got := Summary(b.String()); got != want {
		t.Fatalf("Summary = %q, want %q", got, want)
	}
	if got := Summary("no blocks\n"); got != "" {
		t.Fatalf("Summary without blocks = %q", got)
	}
}

// BenchmarkSummaryBlock prints one block, for TestRunPrintsSideBySide.
func BenchmarkSummaryBlock(b *testing.B) {
	for b.Loop() {
	}
	Print(os.Stdout, "self-test", "  one line")
}

// TestRunPrintsSideBySide runs this package's benchmark through Run (a real
// `go test -bench`) and finds its block again after the side-by-side header.
func TestRunPrintsSideBySide(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"."}, os.Environ(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	_, after, ok := strings.Cut(out.String(), "==== side by side ====\n")
	if !ok || after != "\nself-test:\n  one line\n" {
		t.Fatalf("no side-by-side summary with the block:\n%s", out.String())
	}
}
