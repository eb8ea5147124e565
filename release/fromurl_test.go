package release

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/netns"
	"github.com/halvm/halvm-release/internal/nginx"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/regcache/regtest"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/verify/vsa"
)

// rebuildFromURL is issue 16's done-when on the demo TestDemo published
// (out, its publish root out/repos, its repositories' URL http://addr):
// the release served by nginx (workers as www-data) at that URL and its
// images by Debian's docker-registry, a separate process in a network
// namespace that reaches only those two servers rebuilds it from the
// URL alone (`go run mage.go rebuild <URL>`) with the archive key's
// fingerprint and the public keys, no private key, another build root,
// umask, TZ, locale, USER and HOME: every artifact IDENTICAL, and the
// summary, signed with the rebuilder's own key, verifies with the stock
// cosign CLI. Then one byte of a published rpm's payload changed: that rpm
// alone DIFFERS and the summary says FAILED (still signed); and a
// SHA256SUMS whose signature fails is refused before any build. It returns
// the rebuild, which verify then compares with (HALVM_REBUILD_FROM)
// instead of rebuilding a second time.
func rebuildFromURL(ctx context.Context, t *testing.T, out, demoCache, addr string) string {
	t.Helper()
	cosignCLI := filepath.Join(rootfstest.CacheDir(), "gobin", "cosign")
	if _, err := os.Stat(cosignCLI); err != nil {
		testenv.Unavailable(t, "the stock cosign CLI is not built", "go run mage.go testSetup")
	}
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "nginx", "nginx")
	// nginx's workers (www-data) must reach the publish root: the test's
	// temporary directories are 0700.
	for d := filepath.Dir(out); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := nginx.Traversable(d); err != nil {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv, err := nginx.Start(ctx, nginx.RepoSite(addr, filepath.Join(out, "repos")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The images, from the signed images the demo saved, in one
	// docker-registry under the demo's repository path.
	l, err := pipeline.ReadLedger(filepath.Join(out, "ledger.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := regtest.Start(t)
	prefix := reg.Addr + "/halvm"
	for _, a := range l.Find(pipeline.KindOCISigned, "") {
		repo, err := name.NewRepository(prefix+"/"+a.Flavour, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cosign.Load(ctx, filepath.Join(out, filepath.FromSlash(a.Path)), repo); err != nil {
			t.Fatal(err)
		}
	}
	// The rebuilder: its own cosign key, the release's public keys.
	keys := devkeys.In(filepath.Join(demoCache, "dev-keys"))
	pubPGP, err := os.ReadFile(keys.PGPPublic)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := pgp.ReadKeyring(pubPGP)
	if err != nil {
		t.Fatal(err)
	}
	// The rebuilder's network: a namespace of its own that reaches the
	// web server and the registry, at their addresses, and nothing else.
	testenv.NeedCommand(t, "iproute2", "ip")
	ns, err := netns.New(ctx, "halvm-rebuilder")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, a := range []string{addr, reg.Addr} {
		if err := ns.Forward(a); err != nil {
			t.Fatal(err)
		}
	}
	me := t.TempDir()
	priv, pub, err := cosign.GenerateKey([]byte("rebuilder"))
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range map[string][]byte{"me.key": priv, "me.pub": pub, "me.password": []byte("rebuilder")} {
		if err := os.WriteFile(filepath.Join(me, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	goEnv, err := run.Output(ctx, run.Cmd{Args: []string{"go", "env", "GOMODCACHE", "GOCACHE", "GOPATH"}, Env: run.BaseEnv(run.Inherit("GOPATH", "GOMODCACHE", "GOCACHE", "HOME")...)})
	if err != nil {
		t.Fatal(err)
	}
	g := strings.Split(strings.TrimRight(string(goEnv), "\n"), "\n") // one line each, empty ones kept
	if len(g) != 3 {
		t.Fatalf("go env GOMODCACHE GOCACHE GOPATH: %q", goEnv)
	}
	url := "http://" + addr + "/files/" + filesID(t, out) + "/"
	rebuild := func(what, outDir string, extra ...string) (string, error) {
		t.Helper()
		home := filepath.Join(me, "home-"+filepath.Base(outDir))
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatal(err)
		}
		// No HALVM_PGP_KEY*, HALVM_COSIGN_KEY*: nothing private of the
		// release; another build root, umask, TZ, locale, USER and HOME.
		env := append(run.Inherit("PATH"), "HOME="+home, "USER=halvm-rebuilder", "LOGNAME=halvm-rebuilder",
			"TZ=Asia/Kathmandu", "LANG=ja_JP.UTF-8", "LC_ALL=ja_JP.UTF-8",
			"GOMODCACHE="+g[0], "GOCACHE="+g[1], "GOPATH="+g[2], "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local",
			"HALVM_OUT="+outDir, "HALVM_CACHE="+demoCache, "HALVM_WORK="+filepath.Join(me, "another-build-root"),
			"HALVM_PGP_FINGERPRINT="+kr.Fingerprints()[0], "HALVM_COSIGN_PUBLIC_KEY_FILE="+keys.CosignPublic,
			"HALVM_REBUILD_REGISTRY="+prefix, "HALVM_VSA_KEY_FILE="+filepath.Join(me, "me.key"), "HALVM_VSA_PASSWORD_FILE="+filepath.Join(me, "me.password"),
			"HALVM_VERIFIER_ID=https://example.org/rebuilder")
		env = append(env, extra...)
		var b bytes.Buffer
		start := time.Now()
		err := run.Run(ctx, run.Cmd{Args: ns.Exec("sh", "-c", `umask 0027 && exec go run mage.go rebuild "$0"`, url), Dir: "..", Env: env, Stdout: &b, Stderr: &b})
		t.Logf("%s: go run mage.go rebuild %s took %s:\n%s", what, url, time.Since(start).Round(time.Second), b.String())
		return b.String(), err
	}
	cosignVerify := func(summary, blob string) error {
		var o bytes.Buffer
		err := run.Run(ctx, run.Cmd{Args: []string{cosignCLI, "verify-blob-attestation", "--key", filepath.Join(me, "me.pub"), "--insecure-ignore-tlog",
			"--type", vsa.PredicateType, "--signature", summary, blob}, Env: append(run.BaseEnv(), "HOME="+me), Stdout: &o, Stderr: &o})
		if err != nil {
			t.Logf("cosign verify-blob-attestation: %s", o.String())
		}
		return err
	}
	readSummary := func(p string) vsa.Summary {
		t.Helper()
		envelope, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := cosign.ParsePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s, err := vsa.Verify(envelope, v)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// 1. The release as published: every artifact IDENTICAL.
	first := filepath.Join(t.TempDir(), "rebuilder")
	log, err := rebuild("the published release", first)
	if err != nil {
		t.Fatalf("rebuilding the published release from %s: %v", url, err)
	}
	report, err := os.ReadFile(filepath.Join(first, RemoteReportName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(report)), "\n")
	identical := 0
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "IDENTICAL "):
			identical++
		case strings.HasPrefix(l, "note: "), strings.HasPrefix(l, "    "):
		default:
			t.Errorf("not IDENTICAL: %s", l)
		}
	}
	for _, want := range []string{"IDENTICAL files/", ".rpm (the published signature header", ".deb (byte for byte)", "IDENTICAL apt/dists/stable/InRelease",
		"IDENTICAL dnf/repodata/repomd.xml", "IDENTICAL " + prefix + "/halvm@sha256:", "IDENTICAL " + prefix + "/halvm-gmp@sha256:", "lock/halvm.lock"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if identical < 30 {
		t.Errorf("only %d artifacts IDENTICAL", identical)
	}
	if b, _ := os.ReadFile(filepath.Join(first, remoteRebuildDir) + ".log"); !strings.Contains(string(b), "umask 0077, TZ=Pacific/Kiritimati") {
		t.Errorf("the rebuild's log does not show its conditions:\n%s", b)
	}
	sums := filepath.Join(first, "published", "files", filesID(t, out), "SHA256SUMS")
	summary := filepath.Join(first, RemoteSummaryName)
	if err := cosignVerify(summary, sums); err != nil {
		t.Errorf("the stock cosign CLI does not verify the summary: %v", err)
	}
	if s := readSummary(summary); s.Result != vsa.Passed || len(s.Verdicts) != identical {
		t.Errorf("summary: %s with %d verdicts, want PASSED with %d", s.Result, len(s.Verdicts), identical)
	}
	rebuilt := filepath.Join(first, remoteRebuildDir)

	// 2. One byte of a published rpm's payload changed after signing: that
	// rpm alone DIFFERS, and the summary says FAILED, still signed. (The
	// rebuild above is compared with again: HALVM_REBUILD_FROM.)
	rpms, _ := filepath.Glob(filepath.Join(out, "repos", "dnf", "current", "Packages", "*", "*.rpm"))
	if len(rpms) == 0 {
		t.Fatal("no published rpm")
	}
	restore := replaceFile(t, rpms[0], func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b })
	second := filepath.Join(t.TempDir(), "rebuilder")
	if _, err := rebuild("one byte of a published rpm changed", second, "HALVM_REBUILD_FROM="+rebuilt); err == nil {
		t.Error("the rebuild of a release with a changed rpm passed")
	}
	restore()
	report, _ = os.ReadFile(filepath.Join(second, RemoteReportName))
	var bad []string
	for _, l := range strings.Split(string(report), "\n")[1:] {
		if l != "" && !strings.HasPrefix(l, "IDENTICAL ") && !strings.HasPrefix(l, "note: ") && !strings.HasPrefix(l, "    ") {
			bad = append(bad, l)
		}
	}
	want := "DIFFERS   dnf/Packages/" + filepath.Base(filepath.Dir(rpms[0])) + "/" + filepath.Base(rpms[0])
	if len(bad) != 1 || !strings.HasPrefix(bad[0], want) {
		t.Errorf("want %q alone, got:\n%s", want, strings.Join(bad, "\n"))
	}
	summary = filepath.Join(second, RemoteSummaryName)
	if err := cosignVerify(summary, filepath.Join(second, "published", "files", filesID(t, out), "SHA256SUMS")); err != nil {
		t.Errorf("the stock cosign CLI does not verify the FAILED summary: %v", err)
	}
	if s := readSummary(summary); s.Result != vsa.Failed {
		t.Errorf("summary with a changed rpm: %s", s.Result)
	}

	// 3. A published SHA256SUMS whose signature fails: refused before any
	// build.
	sumsPath := filepath.Join(out, "repos", "files", "current", filesID(t, out), "SHA256SUMS")
	restore = replaceFile(t, sumsPath, func(b []byte) []byte { return append(b, []byte(strings.Repeat("0", 64)+"  extra\n")...) })
	third := filepath.Join(t.TempDir(), "rebuilder")
	log, err = rebuild("a SHA256SUMS whose signature fails", third)
	restore()
	if err == nil || !strings.Contains(log, "refusing to rebuild") || !strings.Contains(log, "SHA256SUMS.asc does not verify") {
		t.Errorf("a SHA256SUMS whose signature fails is not refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(third, remoteRebuildDir)); err == nil || strings.Contains(log, "rebuilding") {
		t.Error("a refused release was rebuilt")
	}
	return rebuilt
}

// filesID is the release files directory the demo published
// (<version>-<release>).
func filesID(t *testing.T, out string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(out, "repos", "files", "current"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("the published release files: %v %v", ents, err)
	}
	return ents[0].Name()
}

// replaceFile replaces p by a changed copy (a new file, so that no hard
// link to it changes) and returns what puts the original back.
func replaceFile(t *testing.T, p string, change func([]byte) []byte) func() {
	t.Helper()
	orig := p + ".orig-test"
	if err := os.Rename(p, orig); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, change(b), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(orig, p); err != nil {
			t.Fatal(err)
		}
	}
}
