package benchsum

import (
	"bytes"
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
