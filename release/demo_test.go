package release

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/pins"
)

// TestDemo runs the whole release pipeline on the sample upstream, as
// `go run mage.go demo` does, and checks what users get: every stage passed
// or was skipped with its reason, both flavours and the keyring package
// built from the sample toolchain as .deb and .rpm, accepted by dpkg-deb,
// lintian and rpm's signature check, and the repositories published. Then
// it runs the demo again with nothing changed (every stage that can be is
// skipped as unchanged, every verdict reused), once more with publish
// failing, and resumes: only publish runs again. Last, the verify suite's
// tests that need a real release run on copies of it (demoChecks).
func TestDemo(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	testenv.NeedCommand(t, "lintian", "lintian")
	testenv.NeedCommand(t, "rpm", "rpm", "rpmkeys")
	testenv.NeedCommand(t, "autoconf", "autoconf")
	real, dir, cache := demoSetup(t)
	out := filepath.Join(dir, "dist")
	var log bytes.Buffer
	// A guard against a hang, not a speed target: the demo, mage verify and
	// the re-run took 9 minutes alone on 2 cores, longer beside the other
	// test packages of `go test ./...`.
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Minute)
	defer cancel()
	start := time.Now()
	addr := freeAddr(t)
	l, err := Demo(ctx, DemoOptions{OutDir: out, CacheDir: filepath.Join(cache, "demo"), WorkDir: filepath.Join(dir, "work"), RealLock: real,
		Addr: addr, Log: &log})
	t.Logf("demo took %s:\n%s", time.Since(start).Round(time.Millisecond), log.String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(log.String(), SampleNotice) != 2 {
		t.Error("the demo does not say at its start and end that this is the sample upstream")
	}
	for _, s := range l.Stages() {
		if s.Status != pipeline.Passed {
			t.Errorf("stage %s: %s (%s)", s.Name, s.Status, s.Reason)
		}
	}
	// The ledger on disk is the one returned.
	first, err := pipeline.ReadLedger(filepath.Join(out, "ledger.json"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Run() == "" || first.Run() != l.Run() {
		t.Fatalf("the ledger names run %q, the run was %q", first.Run(), l.Run())
	}
	var debs, rpms []string
	for _, a := range l.Find(pipeline.KindDeb, "") {
		debs = append(debs, filepath.Join(out, a.Path))
	}
	for _, a := range l.Find(pipeline.KindRPM, "") {
		rpms = append(rpms, filepath.Join(out, a.Path))
	}
	if len(debs) != 3 || len(rpms) != 3 {
		t.Fatalf("want halvm, halvm-gmp and halvm-archive-keyring as .deb and .rpm, got %v %v", debs, rpms)
	}
	cmd := func(args ...string) string {
		t.Helper()
		out, err := run.Output(ctx, run.Cmd{Args: args, Env: run.BaseEnv()})
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, d := range debs {
		info := cmd("dpkg-deb", "--info", d)
		if strings.HasPrefix(filepath.Base(d), "halvm_") && (!strings.Contains(info, "Conflicts: halvm-gmp") || !strings.Contains(info, "libxen-dev")) {
			t.Errorf("%s metadata:\n%s", d, info)
		}
		if contents := cmd("dpkg-deb", "--contents", d); strings.HasPrefix(filepath.Base(d), "halvm_") &&
			(!strings.Contains(contents, "./usr/bin/halvm-ghc") || !strings.Contains(contents, "HaLVM-2.4.3/rts-1.0/start.o") ||
				!strings.Contains(contents, "libHSrts_thr_debug.a") || !strings.Contains(contents, "examples/Verify/Hello/Hello.hs")) {
			t.Errorf("%s lacks the toolchain's files:\n%s", d, contents)
		}
	}
	cmd(append([]string{"lintian", "--fail-on", "error,warning"}, debs...)...)
	db := t.TempDir()
	keys := filepath.Join(cache, "demo", "dev-keys", "halvm-dev.pgp.pub")
	cmd("rpmkeys", "--dbpath", db, "--import", keys)
	for _, r := range rpms {
		if got := cmd("rpm", "--dbpath", db, "-K", r); !strings.Contains(got, "digests signatures OK") {
			t.Errorf("rpm -K %s: %s", r, got)
		}
	}
	if !strings.Contains(cmd("rpm", "-qp", "--requires", rpms[0]), "xen-devel") && !strings.Contains(cmd("rpm", "-qp", "--requires", rpms[1]), "xen-devel") {
		t.Error("the toolchain rpms do not require xen-devel")
	}
	for _, live := range []string{"repos/apt/current/dists/stable/InRelease", "repos/dnf/current/repodata/repomd.xml.asc"} {
		if _, err := os.Stat(filepath.Join(out, live)); err != nil {
			t.Errorf("not published: %v", err)
		}
	}

	// `go run mage.go verify` on the finished demo, as the demo's last line
	// says: the demo's registry is gone, so the images are re-served from
	// the signed images it saved; every check runs and passes.
	// Issue 16: anyone rebuilds the published demo from its URL with
	// public keys only; verify then compares with that rebuild instead of
	// rebuilding a second time.
	fromURL := rebuildFromURL(ctx, t, out, filepath.Join(cache, "demo"), addr)
	verifyDemoAgain(ctx, t, DemoOptions{OutDir: out, CacheDir: filepath.Join(cache, "demo")}, log.String(), "HALVM_REBUILD_FROM="+fromURL)

	// A second run with nothing changed skips every stage that can be
	// skipped ("unchanged since" the first run), reuses every verdict, and
	// leaves every artifact byte-identical.
	before := snapshot(t, out)
	demoAgain := func(what, breakStage string) *pipeline.Ledger {
		t.Helper()
		log.Reset()
		start := time.Now()
		l, err := Demo(ctx, DemoOptions{OutDir: out, CacheDir: filepath.Join(cache, "demo"), WorkDir: filepath.Join(dir, "work"), RealLock: real,
			Addr: addr, Log: &log, breakStage: breakStage})
		t.Logf("%s took %s:\n%s", what, time.Since(start).Round(time.Millisecond), log.String())
		if name, _ := pipeline.IsStageError(err); err != nil && name != breakStage {
			t.Fatalf("%s: %v", what, err)
		}
		return l
	}
	noop := demoAgain("no-op re-run", "")
	if strings.Contains(log.String(), "running (cache miss") {
		t.Errorf("the re-run rebuilt toolchain steps:\n%s", log.String())
	}
	assertReused(t, "no-op re-run", noop, first.Run())
	assertVerdictsReused(t, out, first.Run())
	after := snapshot(t, out)
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("%s changed on an unchanged re-run", name)
		}
	}

	// A failure at publish (forced), then the release resumed: it redoes
	// only publish.
	if l := demoAgain("a run failing at publish", "publish"); stageOf(l, "publish").Status != pipeline.Failed {
		t.Fatalf("publish: %+v", stageOf(l, "publish"))
	}
	resumed := demoAgain("the release resumed after the failure at publish", "")
	assertReused(t, "resumed release", resumed, first.Run(), "publish")
	if s := stageOf(resumed, "publish"); s.Status != pipeline.Passed || s.Unchanged != "" {
		t.Errorf("the resumed release did not redo publish: %+v", s)
	}
	assertVerdictsReused(t, out, first.Run())

	// The verify suite's tests that need a real release, each on a copy
	// of this one (no demo of their own).
	demoChecks(t, out, filepath.Join(cache, "demo"), cache)
}

// freeAddr is a free loopback address, the same for every run of a test:
// the repositories' URL is part of what they publish.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func stageOf(l *pipeline.Ledger, name string) pipeline.StageRecord {
	for _, s := range l.Stages() {
		if s.Name == name {
			return s
		}
	}
	return pipeline.StageRecord{}
}

// assertReused checks that every stage but those that always run
// (preflight, sources), verify (which reuses verdicts, not the stage) and
// the stages named in ran passed unchanged since run since.
func assertReused(t *testing.T, what string, l *pipeline.Ledger, since string, ran ...string) {
	t.Helper()
	always := map[string]bool{"preflight": true, "sources": true, "verify": true}
	for _, r := range ran {
		always[r] = true
	}
	for _, s := range l.Stages() {
		switch {
		case s.Status != pipeline.Passed:
			t.Errorf("%s: stage %s: %s (%s)", what, s.Name, s.Status, s.Reason)
		case !always[s.Name] && s.Unchanged != since:
			t.Errorf("%s: stage %s ran (unchanged since %q, want %q)", what, s.Name, s.Unchanged, since)
		case (s.Name == "preflight" || s.Name == "sources" || s.Name == "verify") && s.Unchanged != "":
			t.Errorf("%s: stage %s claims to be unchanged", what, s.Name)
		}
	}
}

// assertVerdictsReused checks that the verify stage reused every verdict
// of run since, and says so in verify.json.
func assertVerdictsReused(t *testing.T, dist, since string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dist, "verify.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Status string
		Checks []struct{ Name, Status, Reused_from string }
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "pass" {
		t.Errorf("verify.json: %s", rep.Status)
	}
	for _, c := range rep.Checks {
		if c.Status == "pass" && c.Reused_from != since {
			t.Errorf("check %s ran again (reused from %q, want run %s)", c.Name, c.Reused_from, since)
		}
	}
}

// snapshot hashes the packages and SBOM documents of a run.
func snapshot(t *testing.T, out string) map[string]string {
	m := map[string]string{}
	for _, pat := range []string{"packages/*", "sbom/*", "toolchain/*/*.manifest"} {
		files, _ := filepath.Glob(filepath.Join(out, pat))
		for _, f := range files {
			_, sum, err := fsutil.HashFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m[strings.TrimPrefix(f, out)] = sum
		}
	}
	if len(m) < 8 {
		t.Fatalf("only %d artifacts found under %s", len(m), out)
	}
	return m
}

// verifyDemoAgain runs the mage verify target, as a user does, on the
// finished demo in o.OutDir with the environment the demo printed.
func verifyDemoAgain(ctx context.Context, t *testing.T, o DemoOptions, demoLog string, extraEnv ...string) {
	t.Helper()
	env := DemoVerifyEnv(o, devkeys.In(filepath.Join(o.CacheDir, "dev-keys")))
	if !strings.Contains(demoLog, strings.Join(env, " ")+" go run mage.go verify") {
		t.Errorf("the demo does not print how to verify it again:\n%s", demoLog)
	}
	if err := os.Remove(filepath.Join(o.OutDir, "verify.json")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var outb bytes.Buffer
	err := run.Run(ctx, run.Cmd{Args: []string{"go", "run", "mage.go", "verify"}, Dir: "..", Env: run.Merge(os.Environ(), append(env, extraEnv...)...), Stdout: &outb, Stderr: &outb})
	t.Logf("go run mage.go verify took %s:\n%s", time.Since(start).Round(time.Millisecond), outb.String())
	if err != nil {
		t.Fatalf("go run mage.go verify on the demo: %v", err)
	}
	got := outb.String()
	for _, want := range []string{"serving the saved signed image oci/cosign/halvm at", "PASS    signatures/image-signatures",
		"PASS    reproducibility/rebuild-identical", "PASS    image/image-run-halvm-gmp", "PASS    boot/xen-boot-image-halvm", "verify: PASS"} {
		if !strings.Contains(got, want) {
			t.Errorf("mage verify's report lacks %q", want)
		}
	}
	rep := readVerifyReport(t, o.OutDir)
	if rep.Status != "pass" || rep.Counts.Total < 20 {
		t.Errorf("verify.json: status %s, %d of %d checks passed", rep.Status, rep.Counts.Passed, rep.Counts.Total)
	}
	for _, r := range rep.Checks {
		// A first release has nothing to upgrade from, and says so.
		firstRelease := strings.HasPrefix(r.Name, "apt-upgrade-") && r.Status == "not-run" && strings.Contains(r.Reason, "this is the first release")
		if r.Status != "pass" && !firstRelease {
			t.Errorf("check %s/%s: %s %s", r.Family, r.Name, r.Status, r.Reason)
		}
	}
}

// verifyReport is what the tests read of dist/verify.json.
type verifyReport struct {
	Status string
	Counts struct{ Total, Passed int }
	Checks []struct {
		Name, Family, Status, Reason string
		Details                      []string
	}
}

// readVerifyReport reads the verification report a run wrote in dist.
func readVerifyReport(t *testing.T, dist string) verifyReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dist, "verify.json"))
	if err != nil {
		t.Fatalf("no verification report: %v", err)
	}
	var rep verifyReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s/verify.json: %v", dist, err)
	}
	return rep
}

// demoSetup is what every demo test starts from: the real lock (its tool
// and image pins go into the sample lock), a temporary directory, and the
// shared test cache (rootfstest.CacheDir: warm between runs).
func demoSetup(t *testing.T) (real *pins.Lock, dir, cache string) {
	t.Helper()
	real, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatal(err)
	}
	return real, t.TempDir(), rootfstest.CacheDir()
}
