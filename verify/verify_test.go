package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/verify/diff"
)

// missing is a real prerequisite that is never there.
var missing = NeedCommand("halvm-no-such-package", "halvm-no-such-program-3f9a")

func passing(name string, f Family) Check {
	return Check{Name: name, Family: f, Required: true, Doc: "passes",
		Run: func(ctx context.Context, env *Env) (Evidence, error) {
			if env.Scratch == "" {
				return Evidence{}, errors.New("no scratch directory")
			}
			if _, err := os.Stat(env.Scratch); err != nil {
				return Evidence{}, err
			}
			return Checked(3, "3 things verified"), nil
		}}
}

func byName(t *testing.T, rep *Report, name string) Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s", name)
	return Result{}
}

// TestReport runs the suite the issue describes: a passing check, a failing
// check, a required check whose prerequisite is missing, an optional
// not-run check, a check that exceeds its timeout and one that claims
// success without evidence.
func TestReport(t *testing.T) {
	checks := []Check{
		{Name: "boot-hello", Family: Boot, Required: true, Needs: []Prereq{missing},
			Run: func(context.Context, *Env) (Evidence, error) {
				t.Error("a check whose prerequisite is missing ran")
				return Checked(1, "ran"), nil
			}},
		passing("apt-signature", Signatures),
		{Name: "deb-rebuild", Family: Reproducibility, Required: true,
			Run: func(context.Context, *Env) (Evidence, error) {
				return Evidence{Checked: 2, Details: []string{"data.tar.xz > ./usr/bin/x: mtime: 1 != 2"}},
					errors.New("halvm_2.4.3-1_amd64.deb differs between builds\n  1 difference")
			}},
		{Name: "docker-run", Family: Image, Needs: []Prereq{missing},
			Run: func(context.Context, *Env) (Evidence, error) { return Checked(1, "ran"), nil }},
		{Name: "dnf-install", Family: Install, Required: true, Timeout: 100 * time.Millisecond,
			Run: func(ctx context.Context, _ *Env) (Evidence, error) {
				<-ctx.Done()
				return Evidence{}, fmt.Errorf("installing: %w", ctx.Err())
			}},
		{Name: "lazy", Family: Consistency, Required: true,
			Run: func(context.Context, *Env) (Evidence, error) { return Evidence{}, nil }},
		{Name: "lazy-summary", Family: Consistency,
			Run: func(context.Context, *Env) (Evidence, error) { return Evidence{Checked: 4}, nil }},
	}
	var progress bytes.Buffer
	rep, err := Run(context.Background(), &Env{}, checks, Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		status Status
		reason string
	}{
		{"apt-signature", Pass, ""},
		{"lazy", Fail, "without evidence (it checked 0 things; it gave no summary"},
		{"lazy-summary", Fail, "it gave no summary of what it verified"},
		{"deb-rebuild", Fail, "halvm_2.4.3-1_amd64.deb differs between builds"},
		{"dnf-install", Fail, "timed out after 100ms: installing: context deadline exceeded"},
		{"docker-run", NotRun, "needs halvm-no-such-program-3f9a: halvm-no-such-program-3f9a not found in PATH"},
		{"boot-hello", NotRun, "needs halvm-no-such-program-3f9a"},
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(want))
	}
	for i, w := range want {
		got := rep.Results[i]
		if got.Name != w.name || got.Status != w.status || !strings.Contains(got.Reason, w.reason) {
			t.Errorf("result %d = %s %s %q, want %s %s containing %q", i, got.Name, got.Status, got.Reason, w.name, w.status, w.reason)
		}
	}
	if r := byName(t, rep, "boot-hello"); r.Remedy != "apt-get install halvm-no-such-package" {
		t.Errorf("remedy = %q", r.Remedy)
	}
	if r := byName(t, rep, "dnf-install"); !r.TimedOut {
		t.Error("the timeout is not flagged")
	}
	if r := byName(t, rep, "deb-rebuild"); strings.Join(r.Details, "|") != "data.tar.xz > ./usr/bin/x: mtime: 1 != 2|  1 difference" {
		t.Errorf("details = %q", r.Details)
	}
	var fe *FailedError
	if err := rep.Err(); !errors.As(err, &fe) {
		t.Fatalf("Err() = %v, want a *FailedError", err)
	}
	if got := strings.Join(fe.Failed, ","); got != "lazy,lazy-summary,deb-rebuild,dnf-install" {
		t.Errorf("failed = %s", got)
	}
	if got := strings.Join(fe.RequiredNotRun, ","); got != "boot-hello" {
		t.Errorf("required not run = %s", got)
	}

	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	s := sum.String()
	t.Logf("summary:\n%s", s)
	for _, frag := range []string{
		"PASS    signatures/apt-signature",
		"3 things verified [3 checked]",
		"FAIL    reproducibility/deb-rebuild",
		"          data.tar.xz > ./usr/bin/x: mtime: 1 != 2",
		"NOT RUN boot/boot-hello",
		"(remedy: apt-get install halvm-no-such-package) [required]",
		"NOT RUN image/docker-run",
		"[optional]",
		"verify: FAIL: 7 checks, 1 passed, 4 failed, 2 not run (1 required)",
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("summary lacks %q", frag)
		}
	}
	if lines := strings.Count(s, "\n"); lines != 7+2+1 { // checks + detail lines + verdict
		t.Errorf("summary has %d lines", lines)
	}
	if !strings.Contains(progress.String(), "not run boot-hello") {
		t.Errorf("progress: %s", progress.String())
	}
}

// An optional check that cannot run does not fail a verification whose
// other checks pass.
func TestOptionalNotRunPasses(t *testing.T) {
	checks := []Check{
		passing("a", Signatures),
		{Name: "docker-run", Family: Image, Needs: []Prereq{missing},
			Run: func(context.Context, *Env) (Evidence, error) { return Checked(1, "ran"), nil }},
	}
	rep, err := Run(context.Background(), nil, checks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	if r := byName(t, rep, "docker-run"); r.Status != NotRun {
		t.Errorf("docker-run %s", r.Status)
	}
}

// Nothing passes when nothing ran.
func TestEmptySuiteFails(t *testing.T) {
	rep, err := Run(context.Background(), nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err() == nil {
		t.Fatal("an empty suite passed")
	}
}

// A check that ignores its context is abandoned after the grace period
// and reported as a timeout; the suite does not hang.
func TestTimeoutAbandonsStuckCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	checks := []Check{{Name: "stuck", Family: Boot, Timeout: 50 * time.Millisecond,
		Run: func(context.Context, *Env) (Evidence, error) {
			<-release
			return Checked(1, "done"), nil
		}}}
	start := time.Now()
	rep, err := Run(context.Background(), nil, checks, Options{Grace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	r := rep.Results[0]
	if r.Status != Fail || !r.TimedOut || !strings.Contains(r.Reason, "abandoned") {
		t.Errorf("got %s %q", r.Status, r.Reason)
	}
}

func TestPanicIsFailure(t *testing.T) {
	checks := []Check{{Name: "p", Family: Image,
		Run: func(context.Context, *Env) (Evidence, error) { panic("boom") }}}
	rep, _ := Run(context.Background(), nil, checks, Options{})
	if r := rep.Results[0]; r.Status != Fail || !strings.Contains(r.Reason, "panicked: boom") {
		t.Errorf("got %s %q", r.Status, r.Reason)
	}
}

// At most Concurrency checks run at once, and all of them run.
func TestConcurrencyLimit(t *testing.T) {
	var cur, peak, ran atomic.Int32
	var checks []Check
	for i := 0; i < 8; i++ {
		checks = append(checks, Check{Name: fmt.Sprintf("c%d", i), Family: Consistency,
			Run: func(ctx context.Context, _ *Env) (Evidence, error) {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				cur.Add(-1)
				ran.Add(1)
				return Checked(1, "ok"), nil
			}})
	}
	rep, err := Run(context.Background(), nil, checks, Options{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err() != nil || ran.Load() != 8 {
		t.Fatalf("err %v, ran %d", rep.Err(), ran.Load())
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
	for i, r := range rep.Results {
		if r.Name != fmt.Sprintf("c%d", i) {
			t.Errorf("result %d is %s: order not deterministic", i, r.Name)
		}
	}
}

// A check after a failed one does not run; after a passed one it does.
func TestAfter(t *testing.T) {
	bad := Check{Name: "bad", Family: Signatures, Required: true,
		Run: func(context.Context, *Env) (Evidence, error) { return Evidence{}, errors.New("bad signature") }}
	good := passing("good", Signatures)
	install := Check{Name: "install", Family: Install, Required: true, After: []string{"good", "bad"},
		Run: func(context.Context, *Env) (Evidence, error) {
			t.Error("install ran after a failed check")
			return Checked(1, "x"), nil
		}}
	image := Check{Name: "image", Family: Image, After: []string{"good"},
		Run: func(context.Context, *Env) (Evidence, error) { return Checked(1, "ran"), nil }}
	rep, err := Run(context.Background(), nil, []Check{install, image, bad, good}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := byName(t, rep, "install"); r.Status != NotRun || r.Reason != "depends on checks that did not pass: bad (fail)" {
		t.Errorf("install: %s %q", r.Status, r.Reason)
	}
	if r := byName(t, rep, "image"); r.Status != Pass {
		t.Errorf("image: %s %q", r.Status, r.Reason)
	}
}

func TestSelect(t *testing.T) {
	checks := []Check{passing("a", Signatures), passing("b", Boot)}
	rep, err := Run(context.Background(), nil, checks, Options{Select: func(c Check) bool { return c.Family == Signatures }})
	if err != nil {
		t.Fatal(err)
	}
	if r := byName(t, rep, "b"); r.Status != NotRun || r.Reason != "not selected in this run" {
		t.Errorf("b: %s %q", r.Status, r.Reason)
	}
	if rep.Err() == nil {
		t.Error("a run that left a required check out passed")
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, nil, []Check{passing("a", Signatures)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].Status != NotRun || rep.Err() == nil || !strings.Contains(rep.Err().Error(), "cancelled") {
		t.Errorf("got %s, err %v", rep.Results[0].Status, rep.Err())
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	run := func(context.Context, *Env) (Evidence, error) { return Checked(1, "x"), nil }
	err := Validate([]Check{
		{Name: "a", Family: Signatures, Run: run},
		{Name: "a", Family: Signatures, Run: run},
		{Name: "", Family: Boot, Run: run},
		{Name: "b", Family: 9, Run: run},
		{Name: "c", Family: Boot},
		{Name: "d", Family: Boot, Run: run, After: []string{"nope"}},
		{Name: "e", Family: Boot, Run: run, Needs: []Prereq{{What: "x"}}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, frag := range []string{
		"6 problems",
		"checks[1] (a): the name is also used by checks[0]",
		"checks[2]: no name",
		"checks[3] (b): family 9",
		"checks[4] (c): no Run function",
		`checks[5] (d): after "nope": no such check`,
		"checks[6] (e): needs[0]",
	} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error lacks %q:\n%v", frag, err)
		}
	}
	err = Validate([]Check{
		{Name: "x", Family: Boot, Run: run, After: []string{"y"}},
		{Name: "y", Family: Boot, Run: run, After: []string{"z"}},
		{Name: "z", Family: Boot, Run: run, After: []string{"x"}},
	})
	if err == nil || !strings.Contains(err.Error(), "cycle: x -> y -> z -> x") {
		t.Errorf("cycle: %v", err)
	}
}

// Verify loads the release, writes dist/verify.json with sorted keys and
// returns the verdict.
func TestVerifyWritesJSON(t *testing.T) {
	dist := t.TempDir()
	var l pipeline.Ledger
	if err := os.WriteFile(filepath.Join(dist, "halvm.deb"), []byte("deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddFile(pipeline.KindDeb, "halvm", "halvm", filepath.Join(dist, "halvm.deb"), "halvm.deb"); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(filepath.Join(dist, "ledger.json")); err != nil {
		t.Fatal(err)
	}
	env, err := LoadEnv(dist, "")
	if err != nil {
		t.Fatal(err)
	}
	checks := []Check{
		{Name: "deb-digest", Family: Consistency, Required: true, Doc: "the deb matches the ledger",
			Run: func(_ context.Context, env *Env) (Evidence, error) {
				debs, err := env.Artifacts(pipeline.KindDeb, "")
				if err != nil {
					return Evidence{}, err
				}
				for _, a := range debs {
					f, err := env.Open(a)
					if err != nil {
						return Evidence{}, err
					}
					f.Close()
				}
				return Checked(len(debs), "%d debs match the ledger", len(debs)), nil
			}},
		{Name: "rpm-digest", Family: Consistency,
			Run: func(_ context.Context, env *Env) (Evidence, error) {
				rpms, err := env.Artifacts(pipeline.KindRPM, "")
				return Checked(len(rpms), "rpms"), err
			}},
		{Name: "boot", Family: Boot, Needs: []Prereq{missing},
			Run: func(context.Context, *Env) (Evidence, error) { return Checked(1, "x"), nil }},
	}
	var log bytes.Buffer
	err = Verify(context.Background(), env, checks, Options{Log: &log})
	if err == nil {
		t.Fatal("verification passed with a failed check")
	}
	data, err := os.ReadFile(filepath.Join(dist, "verify.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Status string `json:"status"`
		Counts struct {
			Passed, Failed int
			NotRun         int `json:"not_run"`
		} `json:"counts"`
		Checks []struct {
			Name, Status, Reason string
			Duration             *float64 `json:"duration_seconds"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Status != "fail" || doc.Counts.Passed != 1 || doc.Counts.Failed != 1 || doc.Counts.NotRun != 1 || len(doc.Checks) != 3 {
		t.Fatalf("report:\n%s", data)
	}
	if c := doc.Checks[1]; c.Name != "rpm-digest" || c.Status != "fail" || !strings.Contains(c.Reason, "the ledger records no rpm artifact") || c.Duration == nil {
		t.Errorf("rpm-digest: %+v", c)
	}
	// Keys are sorted in every object: top level (indent 2) and checks (indent 6).
	for _, indent := range []string{"\n  \"", "\n      \""} {
		var keys []string
		for _, part := range strings.Split(string(data), indent)[1:] {
			k := part[:strings.IndexByte(part, '"')]
			if len(keys) > 0 && keys[len(keys)-1] > k && indent == "\n  \"" {
				t.Errorf("top-level key %s after %s", k, keys[len(keys)-1])
			}
			keys = append(keys, k)
		}
		if len(keys) < 5 {
			t.Errorf("found keys %v", keys)
		}
	}
	if !strings.Contains(string(data), "\"checked\": 1,\n      \"doc\": \"the deb matches the ledger\",\n      \"duration_seconds\"") {
		t.Errorf("check keys are not sorted:\n%s", data)
	}
	if !strings.Contains(log.String(), "report: "+filepath.Join(dist, "verify.json")) {
		t.Errorf("log: %s", log.String())
	}
	// Tampering with the deb makes the digest check fail.
	if err := os.WriteFile(filepath.Join(dist, "halvm.deb"), []byte("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), env, checks[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Status != Fail || !strings.Contains(r.Reason, "the ledger says 3 bytes sha256") {
		t.Errorf("tampered: %s %q", r.Status, r.Reason)
	}
}

func TestNeedDockerReportsMissingDaemon(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	reason, remedy := evalNeeds(context.Background(), []Prereq{NeedDocker(), NeedRoot(), NeedFile("/nonexistent/halvm", "")})
	if !strings.Contains(reason, "needs docker: docker not found in PATH") || !strings.Contains(reason, "needs /nonexistent/halvm") {
		t.Errorf("reason %q", reason)
	}
	if !strings.Contains(remedy, "apt-get install docker.io") || !strings.Contains(remedy, "provide /nonexistent/halvm") {
		t.Errorf("remedy %q", remedy)
	}
}

// A reproducibility check built on CompareBuilds passes on identical
// builds and fails with a listing of what differs.
func TestCompareBuilds(t *testing.T) {
	dir := t.TempDir()
	for _, side := range []string{"one", "two"} {
		if err := os.MkdirAll(filepath.Join(dir, side), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"SHA256SUMS": "abc  halvm.deb\n", "halvm.spdx.json": `{"name":"halvm"}`} {
			if err := os.WriteFile(filepath.Join(dir, side, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(second string) Check {
		return Check{Name: "rebuild", Family: Reproducibility, Required: true,
			Run: func(ctx context.Context, _ *Env) (Evidence, error) {
				return CompareBuilds(ctx, filepath.Join(dir, "one"), filepath.Join(dir, second), diff.Options{}, false)
			}}
	}
	rep, err := Run(context.Background(), nil, []Check{check("two")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Status != Pass || r.Summary != "2 files identical in both builds (directory)" {
		t.Errorf("identical: %s %q %q", r.Status, r.Summary, r.Reason)
	}
	if err := os.WriteFile(filepath.Join(dir, "two", "halvm.spdx.json"), []byte(`{"name":"halvm2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = Run(context.Background(), nil, []Check{check("two")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.Status != Fail || r.Reason != "the two builds differ: 1 difference in one" {
		t.Errorf("differ: %s %q", r.Status, r.Reason)
	}
	if len(r.Details) < 2 || r.Details[1] != `halvm.spdx.json: $.name: "halvm" != "halvm2"` {
		t.Errorf("details %q", r.Details)
	}
}
