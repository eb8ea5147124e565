package vsa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/cosign"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var sums = []byte("0a  halvm_2.4.3-1_amd64.deb\n")

func input(verdicts ...string) Input {
	in := Input{
		VerifierID: "https://github.com/halvm/halvm-release/rebuild", TimeVerified: time.Unix(1544117080, 0),
		ResourceURI: "http://127.0.0.1:8619/files/2.4.3-1/", PolicyURI: "https://github.com/halvm/halvm-release/blob/main/RELEASE.md#5-what-verify-checks",
		Passed:    true,
		Artifacts: []Artifact{{Name: "SHA256SUMS", SHA256: hexSum(sums), Verdict: "IDENTICAL"}},
	}
	for i, v := range verdicts {
		in.Artifacts = append(in.Artifacts, Artifact{Name: "halvm-" + string(rune('a'+i)) + ".rpm", SHA256: hexSum([]byte{byte(i)}), Verdict: v})
	}
	return in
}

func signed(t *testing.T, in Input) (envelope []byte, pubPath string) {
	t.Helper()
	priv, pub, err := cosign.GenerateKey([]byte("rebuilder"))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.ParseSigner(priv, []byte("rebuilder"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(st, sv)
	if err != nil {
		t.Fatal(err)
	}
	pubPath = filepath.Join(t.TempDir(), "rebuilder.pub")
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := cosign.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Verify(env, v)
	if err != nil {
		t.Fatalf("our own summary does not verify: %v", err)
	}
	if s.Predicate != PredicateType || s.Resource != in.ResourceURI || len(s.Verdicts) != len(in.Artifacts) {
		t.Errorf("read back %+v", s)
	}
	return env, pubPath
}

func TestSummaryVerdicts(t *testing.T) {
	for _, c := range []struct {
		verdicts []string
		passed   bool
		want     string
	}{
		{[]string{"IDENTICAL", "IDENTICAL"}, true, Passed},
		{[]string{"IDENTICAL", "DIFFERS"}, true, Failed}, // one artifact differs: FAILED whatever the caller says
		{[]string{"IDENTICAL"}, false, Failed},
	} {
		in := input(c.verdicts...)
		in.Passed = c.passed
		st, err := Statement(in)
		if err != nil {
			t.Fatal(err)
		}
		var got statement
		if err := json.Unmarshal(st, &got); err != nil {
			t.Fatal(err)
		}
		if got.Predicate.VerificationResult != c.want || got.Type != StatementType || got.PredicateType != PredicateType {
			t.Errorf("%v passed=%v: %s, want %s", c.verdicts, c.passed, got.Predicate.VerificationResult, c.want)
		}
		if len(got.Subject) != len(in.Artifacts) {
			t.Errorf("%d subjects, want one per artifact (%d)", len(got.Subject), len(in.Artifacts))
		}
	}
}

func TestSummaryBadInput(t *testing.T) {
	_, err := Statement(Input{Artifacts: []Artifact{{Name: "x", SHA256: "XYZ"}, {Name: "x", SHA256: strings.Repeat("0", 64)}}})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"no verifier id", "no resource URI", "no policy URI", "no verification time", `artifact "x": sha256 "XYZ"`, "repeated name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}

func TestTamperedSummaryDoesNotVerify(t *testing.T) {
	env, pubPath := signed(t, input("IDENTICAL"))
	var e map[string]any
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	st, _ := Statement(input("DIFFERS"))
	e["payload"] = st // a FAILED statement under the PASSED one's signature
	bad, _ := json.Marshal(e)
	pub, _ := os.ReadFile(pubPath)
	v, _ := cosign.ParsePublicKey(pub)
	if _, err := Verify(bad, v); err == nil {
		t.Error("a changed statement verifies")
	}
}

// The stock cosign CLI verifies the summary against the release's
// SHA256SUMS with the rebuilder's public key alone.
func TestStockCosignVerifiesTheSummary(t *testing.T) {
	bin := filepath.Join(rootfstest.CacheDir(), "gobin", "cosign")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "the stock cosign v2.6.5 CLI is not built", "go run mage.go testSetup")
	}
	env, pubPath := signed(t, input("IDENTICAL", "IDENTICAL"))
	dir := t.TempDir()
	for name, b := range map[string][]byte{"vsa.intoto.json": env, "SHA256SUMS": sums, "other": []byte("not in the release\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(blob string) (string, error) {
		var out strings.Builder
		err := run.Run(context.Background(), run.Cmd{Args: []string{bin, "verify-blob-attestation", "--key", pubPath, "--insecure-ignore-tlog",
			"--type", PredicateType, "--signature", filepath.Join(dir, "vsa.intoto.json"), filepath.Join(dir, blob)},
			Env: append(run.BaseEnv(), "HOME="+dir), Stdout: &out, Stderr: &out})
		return out.String(), err
	}
	if out, err := cli("SHA256SUMS"); err != nil {
		t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
	}
	if out, err := cli("other"); err == nil {
		t.Errorf("cosign accepted the summary for a file it does not name:\n%s", out)
	}
}

func report(status, rebuild string, verdicts ...Artifact) []byte {
	b, _ := json.Marshal(map[string]any{"status": status, "checks": []map[string]any{
		{"name": "apt-install-halvm", "status": "pass"},
		{"name": RebuildCheck, "status": rebuild, "reason": "the rebuild differs: 1 of 3 artifact(s)\nmore", "verdicts": verdicts},
	}})
	return b
}

func TestFromReport(t *testing.T) {
	debSum, rpmSum := strings.Repeat("a", 64), strings.Repeat("b", 64)
	sumsList := []Sum{{"halvm_2.4.3-1_amd64.deb", debSum}, {"halvm-2.4.3-1.x86_64.rpm", rpmSum}}
	sumsDigest := strings.Repeat("c", 64)
	verdicts := func(in Input) map[string]string {
		m := map[string]string{}
		for _, a := range in.Artifacts {
			m[a.Name] = a.Verdict
		}
		return m
	}
	judged := func(rpm, detail string) []Artifact {
		return []Artifact{{Name: "SHA256SUMS", SHA256: sumsDigest, Verdict: "IDENTICAL"}, {Name: "halvm_2.4.3-1_amd64.deb", SHA256: debSum, Verdict: "IDENTICAL"},
			{Name: "halvm-2.4.3-1.x86_64.rpm", SHA256: rpmSum, Verdict: rpm, Detail: detail}}
	}
	in, err := FromReport(input(), report("pass", "pass", judged("IDENTICAL", "")...), sumsList, sumsDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Passed || len(in.Artifacts) != 3 {
		t.Fatalf("a passing report: passed %v, %d artifacts", in.Passed, len(in.Artifacts))
	}
	for n, v := range verdicts(in) {
		if v != "IDENTICAL" {
			t.Errorf("%s: %s", n, v)
		}
	}
	// The rpm differs: only it.
	in, err = FromReport(input(), report("fail", "fail", judged("DIFFERS", "the rebuild differs: 1 of 3 artifact(s)")...), sumsList, sumsDigest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SHA256SUMS": "IDENTICAL", "halvm_2.4.3-1_amd64.deb": "IDENTICAL", "halvm-2.4.3-1.x86_64.rpm": "DIFFERS"}
	if got := verdicts(in); !equalMaps(got, want) || in.Passed {
		t.Errorf("verdicts %v (passed %v), want %v and not passed", got, in.Passed, want)
	}
	st, err := Statement(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), `"verificationResult":"FAILED"`) || !strings.Contains(string(st), "the rebuild differs: 1 of 3") {
		t.Errorf("the statement of a failed rebuild: %s", st)
	}
	// No rebuild check at all, one that did not run, or one that judged
	// nothing (its inputs out of reach): no verdict claimed, never PASSED.
	for _, r := range [][]byte{[]byte(`{"status":"pass","checks":[{"name":"x","status":"pass"}]}`), report("fail", "not-run"), report("fail", "fail")} {
		in, err := FromReport(input(), r, sumsList, sumsDigest)
		if err != nil {
			t.Fatal(err)
		}
		if in.Passed || verdicts(in)["halvm_2.4.3-1_amd64.deb"] != NotChecked || verdicts(in)["SHA256SUMS"] != NotChecked {
			t.Errorf("%s: passed %v, verdicts %v", r, in.Passed, verdicts(in))
		}
	}
	if _, err := FromReport(input(), []byte(`{"status":"running"}`), sumsList, sumsDigest); err == nil {
		t.Error("an unfinished report was summarised")
	}
	if _, err := FromReport(input(), []byte(`not json`), sumsList, sumsDigest); err == nil {
		t.Error("a broken report was summarised")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
