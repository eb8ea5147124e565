package release

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pipeline"
)

// TestVerifyBuiltAbortLeavesAFailingReport: a verification that stops
// before its checks (here: a ledger pointing outside HALVM_OUT) replaces
// an earlier passing verify.json with a failing one naming the cause.
func TestVerifyBuiltAbortLeavesAFailingReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "release-copy")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var l pipeline.Ledger
	l.Add(pipeline.Artifact{Kind: pipeline.KindDeb, Name: "halvm", Flavour: "halvm", Path: "../dist/packages/halvm_1_amd64.deb", Size: 1, SHA256: strings.Repeat("0", 64)})
	if err := l.WriteFile(filepath.Join(out, "ledger.json")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(out, "verify.json")
	if err := os.WriteFile(report, []byte(`{"status": "pass"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HALVM_OUT": out}
	err := VerifyBuilt(context.Background(), config.LoadVerification(func(k string) string { return env[k] }), nil)
	if err == nil || !strings.Contains(err.Error(), "points outside") {
		t.Fatalf("verify of a ledger pointing outside: %v", err)
	}
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var rep struct{ Status, Aborted string }
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "fail" || !strings.Contains(rep.Aborted, `deb halvm: path "../dist/packages/halvm_1_amd64.deb" leaves its tree`) || !strings.Contains(rep.Aborted, out) {
		t.Errorf("verify.json after the abort: %s", b)
	}
}
