package checks_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
	"github.com/halvm/halvm-release/verify/checks/checkstest"
)

// fixture is the release the tests verify: the synthetic one
// (verify/checks/checkstest, built in seconds), built at most once per
// test binary. The tests that need a real release (pushed and saved
// images of a real toolchain, a unikernel that boots under Xen) run on
// the one full demo of release's TestDemo (release/demo_checks_test.go).
type fixture struct {
	dist string
	keys devkeys.Files
	lock *pins.Lock
	err  error
}

var (
	synthOnce sync.Once
	synthFix  fixture
	synthDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

func needTools(t *testing.T) {
	t.Helper()
	testenv.NeedCommand(t, "gpgv", "gpgv")
	testenv.NeedCommand(t, "rpm", "rpm", "rpmkeys")
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
}

// synth is the synthetic release (checkstest.Build of the project's lock).
func synth(t *testing.T) fixture {
	t.Helper()
	needTools(t)
	synthOnce.Do(func() {
		lock, err := pins.LoadFile("../../pins/halvm.lock")
		if err != nil {
			synthFix.err = err
			return
		}
		if synthDir, err = os.MkdirTemp("", "halvm-checks-synth-"); err != nil {
			synthFix.err = err
			return
		}
		r, err := checkstest.Build(context.Background(), synthDir, lock)
		if err != nil {
			synthFix.err = err
			return
		}
		synthFix = fixture{dist: r.Dist, keys: r.Keys, lock: r.Lock}
	})
	if synthFix.err != nil {
		t.Fatalf("the synthetic release: %v", synthFix.err)
	}
	return synthFix
}

// rel is a private copy of a release a test may tamper with.
type rel struct {
	dist     string
	apt, dnf string
	keys     devkeys.Files
	cfg      checks.Config
	env      *verify.Env
}

// copyRelease copies the synthetic release.
func copyRelease(t *testing.T) *rel {
	t.Helper()
	return copyOf(t, synth(t))
}

func copyOf(t *testing.T, f fixture) *rel {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dist")
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-a", f.dist, dst}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	env, err := verify.LoadEnv(dst, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &rel{dist: dst, env: env, keys: f.keys}
	for _, k := range []pipeline.Kind{pipeline.KindAptRepo, pipeline.KindDnfRepo} {
		as := env.Ledger.Find(k, "")
		if len(as) != 1 {
			t.Fatalf("ledger: %d %s artifacts", len(as), k)
		}
		// Publications are recorded relative to the publish root
		// (dist/repos).
		if filepath.IsAbs(as[0].Path) || !filepath.IsLocal(as[0].Path) {
			t.Fatalf("%s %s is not relative to the publish root", k, as[0].Path)
		}
		if k == pipeline.KindAptRepo {
			r.apt = env.RepoPath(as[0].Path)
		} else {
			r.dnf = env.RepoPath(as[0].Path)
		}
	}
	pub, err := os.ReadFile(f.keys.PGPPublic)
	if err != nil {
		t.Fatal(err)
	}
	cpub, err := os.ReadFile(f.keys.CosignPublic)
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = checks.Config{AptDir: r.apt, DnfDir: r.dnf, ArchiveKey: pub, CosignKey: cpub, Lock: f.lock,
		Flavours: []string{"halvm", "halvm-gmp"}}
	return r
}

// runCheck runs one check of the suite and returns its result.
func (r *rel) runCheck(t *testing.T, name string) verify.Result {
	t.Helper()
	return checkstest.RunCheck(t, r.env, r.cfg, name)
}

func wantStatus(t *testing.T, res verify.Result, want verify.Status, reasonHas ...string) {
	t.Helper()
	checkstest.WantStatus(t, res, want, reasonHas...)
}

func otherKey(t *testing.T) []byte {
	t.Helper()
	k, err := pgp.Generate("Someone Else", "else@example.org", true, time.Unix(1_600_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicArmored()
}

func TestAptSignatures(t *testing.T) {
	r := copyRelease(t)
	wantStatus(t, r.runCheck(t, checks.CheckAptSignatures), verify.Pass)

	t.Run("wrong key", func(t *testing.T) {
		r := copyRelease(t)
		r.cfg.ArchiveKey = otherKey(t)
		wantStatus(t, r.runCheck(t, checks.CheckAptSignatures), verify.Fail, "2 apt signature(s) do not verify", "gpgv rejects InRelease", "gpgv rejects Release.gpg over Release")
	})
	t.Run("tampered Release", func(t *testing.T) {
		r := copyRelease(t)
		p := filepath.Join(r.apt, "dists", "stable", "Release")
		appendTo(t, p, "Tampered: yes\n")
		wantStatus(t, r.runCheck(t, checks.CheckAptSignatures), verify.Fail, "1 apt signature(s) do not verify", "Release.gpg over Release")
	})
	t.Run("tampered InRelease", func(t *testing.T) {
		r := copyRelease(t)
		p := filepath.Join(r.apt, "dists", "stable", "InRelease")
		replaceIn(t, p, "Suite: stable", "Suite: stab1e")
		wantStatus(t, r.runCheck(t, checks.CheckAptSignatures), verify.Fail, "gpgv rejects InRelease")
	})
}

func TestRPMSignatures(t *testing.T) {
	r := copyRelease(t)
	res := r.runCheck(t, checks.CheckRPMSignatures)
	wantStatus(t, res, verify.Pass)
	if res.Checked != 6 { // 3 in the repository, 3 in the ledger
		t.Errorf("checked %d rpms, want 6", res.Checked)
	}
	t.Run("wrong key is NOKEY, a failure", func(t *testing.T) {
		r := copyRelease(t)
		r.cfg.ArchiveKey = otherKey(t)
		wantStatus(t, r.runCheck(t, checks.CheckRPMSignatures), verify.Fail, "6 of 6 rpm(s) do not verify", "6 unknown key", "NOKEY")
	})
	t.Run("tampered payload", func(t *testing.T) {
		r := copyRelease(t)
		a := r.env.Ledger.Find(pipeline.KindRPM, "halvm")
		if len(a) != 1 {
			t.Fatal("no halvm rpm in the ledger")
		}
		flipLastByte(t, r.env.Path(a[0].Path))
		// rpm says the digests are bad: the message says so, not "another
		// key".
		wantStatus(t, r.runCheck(t, checks.CheckRPMSignatures), verify.Fail, "1 of 6 rpm(s)", "1 digest mismatch", filepath.Base(a[0].Path)+": digest mismatch")
	})
}

func TestDnfRepomdSignature(t *testing.T) {
	r := copyRelease(t)
	wantStatus(t, r.runCheck(t, checks.CheckDnfRepomdSig), verify.Pass)
	replaceIn(t, filepath.Join(r.dnf, "repodata", "repomd.xml"), "<revision>", "<revision>1")
	wantStatus(t, r.runCheck(t, checks.CheckDnfRepomdSig), verify.Fail, "gpgv rejects repomd.xml.asc over repomd.xml")
}

// TestSumsSignatures signs SHA256SUMS of the copy with the development
// keys (the sign stage is not wired into the demo yet), then tampers.
func TestSumsSignatures(t *testing.T) {
	t.Run("missing from the ledger of a release without skips", func(t *testing.T) {
		r := copyRelease(t)
		var l pipeline.Ledger
		for _, a := range r.env.Ledger.Artifacts() {
			if a.Kind != pipeline.KindChecksums {
				l.Add(a)
			}
		}
		r.env.Ledger = &l
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Fail, "the ledger records no checksums artifact")
	})
	t.Run("not run in a snapshot that skipped signing", func(t *testing.T) {
		r := copyRelease(t)
		r.cfg.Skipped = map[string]string{"sign": "not wired"}
		res := r.runCheck(t, checks.CheckSumsSignatures)
		wantStatus(t, res, verify.NotRun, "stage sign was skipped")
		if res.Required {
			t.Error("a check of a skipped stage is still required")
		}
	})
	sign := func(t *testing.T) *rel {
		r := copyRelease(t)
		key, err := pgp.LoadKey(r.keys.PGPSource())
		if err != nil {
			t.Fatal(err)
		}
		ck := loadCosignKey(t, r.keys)
		var names []string
		for _, a := range r.env.Ledger.Find(pipeline.KindDeb, "") {
			names = append(names, a.Path)
		}
		if _, err := sbom.WriteSignedSums(r.dist, names, ck, key, r.cfg.Lock.Release.Epoch(), r.env.Ledger); err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("as released", func(t *testing.T) {
		r := copyRelease(t)
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Pass)
	})
	t.Run("signed", func(t *testing.T) {
		r := sign(t)
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Pass)
	})
	t.Run("wrong cosign key", func(t *testing.T) {
		r := sign(t)
		priv, pub, err := cosign.GenerateKey([]byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		_ = priv
		r.cfg.CosignKey = pub
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Fail, "SHA256SUMS.sig")
	})
	t.Run("wrong archive key", func(t *testing.T) {
		r := sign(t)
		r.cfg.ArchiveKey = otherKey(t)
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Fail, "gpgv rejects SHA256SUMS.asc")
	})
	t.Run("tampered listed file", func(t *testing.T) {
		r := sign(t)
		a := r.env.Ledger.Find(pipeline.KindDeb, "halvm-gmp")
		flipLastByte(t, r.env.Path(a[0].Path))
		wantStatus(t, r.runCheck(t, checks.CheckSumsSignatures), verify.Fail, filepath.Base(a[0].Path)+": sha256 is")
	})
}

// TestImageSignaturesRequireImages: with no image in the ledger the
// required image check fails (a snapshot that skipped the stages excepted).
func TestImageSignaturesRequireImages(t *testing.T) {
	r := copyRelease(t)
	r.env.Ledger = without(r.env.Ledger, pipeline.KindOCIImage)
	res := r.runCheck(t, checks.CheckImageSignatures)
	wantStatus(t, res, verify.Fail, "the ledger records no oci-image artifact")
	if !res.Required {
		t.Error("the image signature check is optional in a release without skips")
	}
}

func TestConsistency(t *testing.T) {
	r := copyRelease(t)
	for _, n := range []string{checks.CheckLedgerDigests, checks.CheckAptIndex, checks.CheckDnfIndex, checks.CheckSBOM("halvm"), checks.CheckSBOM("halvm-gmp")} {
		wantStatus(t, r.runCheck(t, n), verify.Pass)
	}
	t.Run("tampered deb in the pool", func(t *testing.T) {
		r := copyRelease(t)
		debs, _ := filepath.Glob(filepath.Join(r.apt, "pool", "*", "*", "*", "halvm-gmp_*.deb"))
		if len(debs) != 1 {
			t.Fatalf("pool: %v", debs)
		}
		flipLastByte(t, debs[0])
		wantStatus(t, r.runCheck(t, checks.CheckAptIndex), verify.Fail, "the apt repository is inconsistent", "halvm-gmp", "the ledger's halvm-gmp is")
	})
	t.Run("tampered rpm in the repository", func(t *testing.T) {
		r := copyRelease(t)
		rpms, _ := filepath.Glob(filepath.Join(r.dnf, "Packages", "*", "halvm-2*.rpm"))
		if len(rpms) == 0 {
			rpms, _ = filepath.Glob(filepath.Join(r.dnf, "Packages", "halvm-2*.rpm"))
		}
		if len(rpms) != 1 {
			t.Fatalf("Packages: %v", rpms)
		}
		flipLastByte(t, rpms[0])
		wantStatus(t, r.runCheck(t, checks.CheckDnfIndex), verify.Fail, "the dnf repository is inconsistent")
	})
	t.Run("tampered artifact", func(t *testing.T) {
		r := copyRelease(t)
		a := r.env.Ledger.Find(pipeline.KindSPDX, "halvm")
		appendTo(t, r.env.Path(a[0].Path), " ")
		wantStatus(t, r.runCheck(t, checks.CheckLedgerDigests), verify.Fail, "1 ledger artifact(s) differ", a[0].Path)
	})
	t.Run("SBOM that disagrees with the ledger", func(t *testing.T) {
		r := copyRelease(t)
		// A new .deb digest in the ledger: the SBOM no longer describes
		// the package the release ships.
		var l []pipeline.Artifact
		for _, a := range r.env.Ledger.Artifacts() {
			if a.Kind == pipeline.KindDeb && a.Flavour == "halvm" {
				a.SHA256 = strings.Repeat("0", 64)
			}
			l = append(l, a)
		}
		nl := &pipeline.Ledger{}
		for _, a := range l {
			nl.Add(a)
		}
		r.env.Ledger = nl
		wantStatus(t, r.runCheck(t, checks.CheckSBOM("halvm")), verify.Fail, "the SBOMs of halvm")
	})
}

// TestRebuildDiffers: a rebuild whose output differs (an injected
// non-reproducible input: a build timestamp in a tree manifest and an
// extra field in Packages) is caught per artifact, with verify/diff's
// listing of what differs.
func TestRebuildDiffers(t *testing.T) {
	orig := copyRelease(t)
	r2 := copyRelease(t) // the "rebuild"
	var m pipeline.Artifact
	for _, a := range r2.env.Ledger.Find(pipeline.KindTreeManifest, "halvm") {
		m = a
	}
	p := r2.env.Path(m.Path)
	appendTo(t, p, "# built at "+time.Now().Format(time.RFC3339Nano)+"\n")
	if _, err := r2.env.Ledger.AddFile(m.Kind, m.Name, m.Flavour, p, m.Path); err != nil {
		t.Fatal(err)
	}
	pk, _ := filepath.Glob(filepath.Join(r2.apt, "dists", "*", "main", "binary-*", "Packages"))
	replaceIn(t, pk[0], "Package: halvm\n", "Package: halvm\nBuilt-On: "+time.Now().Format(time.RFC3339)+"\n")
	// The rebuild's ledger records its repository where its files are.
	var l pipeline.Ledger
	for _, a := range r2.env.Ledger.Artifacts() {
		switch a.Kind {
		case pipeline.KindAptRepo:
			a.Path = r2.apt
		case pipeline.KindDnfRepo:
			a.Path = r2.dnf
		}
		l.Add(a)
	}
	ev, err := checks.CompareRebuild(context.Background(), orig.env, r2.dist, &l, orig.apt, orig.dnf)
	t.Logf("%v\n%s", err, strings.Join(ev.Details, "\n"))
	if err == nil {
		t.Fatal("a rebuild with different bytes passed")
	}
	all := err.Error() + "\n" + strings.Join(ev.Details, "\n")
	// 4: the two changed files, and the images the synthetic release
	// does not build (reported as missing).
	for _, want := range []string{"the rebuild differs: 4 of ", "the ledger records no oci-image artifact", "DIFFERS   tree-manifest toolchain (halvm)", "DIFFERS   apt-repo dists/stable/main/binary-amd64/Packages",
		"identical deb halvm ", "built at", "Built-On"} {
		if !strings.Contains(all, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t *testing.T, p, old, new string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", p, old)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipLastByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadCosignKey(t *testing.T, k devkeys.Files) signature.SignerVerifier {
	t.Helper()
	priv, err := os.ReadFile(k.CosignKey)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := os.ReadFile(k.CosignPassword)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := cosign.ParseSigner(priv, bytes.TrimSuffix(pass, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// republishHalvm unpacks the release's halvm .deb (dpkg-deb -R), lets
// modify change the tree, rebuilds it (dpkg-deb -b) and publishes it alone
// in a new apt repository signed with the release's archive key, which r's
// apt checks then use: a broken package as a real publication would ship it.
func (r *rel) republishHalvm(t *testing.T, modify func(tree string)) {
	t.Helper()
	ctx := context.Background()
	var deb pipeline.Artifact
	for _, x := range r.env.Ledger.Find(pipeline.KindDeb, "halvm") {
		if x.Name == "halvm" {
			deb = x
		}
	}
	if deb.Path == "" {
		t.Fatal("no halvm .deb in the ledger")
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "-R", r.env.Path(deb.Path), tree}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	modify(tree)
	broken := filepath.Join(t.TempDir(), filepath.Base(deb.Path))
	if err := run.Run(ctx, run.Cmd{Args: []string{"dpkg-deb", "--root-owner-group", "-b", tree, broken}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	key, err := pgp.LoadKey(r.keys.PGPSource())
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "apt")
	if _, err := debian.Write(repo, debian.Input{Repo: debian.Repo{URL: "http://127.0.0.1:8619/apt", Date: r.cfg.Lock.Release.Epoch(), Version: "2.4.3"},
		Key: key, Debs: []string{broken}}); err != nil {
		t.Fatal(err)
	}
	r.cfg.AptDir = repo
}

// TestAptInstall installs each flavour from the synthetic release's publication in a
// clean Debian 12 rootfs; then broken packages, republished and signed
// with the archive key, are caught: a postinst that leaves a file behind
// by the purge check, the leftover named; a dependency no repository has
// by apt-get install, apt's explanation in the report.
func TestAptInstall(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	r := copyRelease(t)
	r.env.CacheDir = rootfstest.CacheDir()
	res := r.runCheck(t, checks.CheckAptInstall("halvm"))
	wantStatus(t, res, verify.Pass)

	t.Run("leftover after purge", func(t *testing.T) {
		r := copyRelease(t)
		r.env.CacheDir = rootfstest.CacheDir()
		r.republishHalvm(t, func(tree string) {
			post := filepath.Join(tree, "DEBIAN", "postinst")
			if _, err := os.Stat(post); err != nil {
				if err := os.WriteFile(post, []byte("#!/bin/sh\nset -e\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Right after the interpreter line: the postinst ends with exit 0.
			b, err := os.ReadFile(post)
			if err != nil {
				t.Fatal(err)
			}
			first, rest, _ := strings.Cut(string(b), "\n")
			if err := os.WriteFile(post, []byte(first+"\ntouch /etc/halvm-leftover\n"+rest), 0o755); err != nil {
				t.Fatal(err)
			}
		})
		wantStatus(t, r.runCheck(t, checks.CheckAptInstall("halvm")), verify.Fail, "after apt-get purge halvm the rootfs differs: 1 path(s) left behind", "left behind: etc/halvm-leftover")
	})

	t.Run("a broken package (bad dependency)", func(t *testing.T) {
		r := copyRelease(t)
		r.env.CacheDir = rootfstest.CacheDir()
		r.republishHalvm(t, func(tree string) {
			// First in the list: the line may be folded after it.
			replaceIn(t, filepath.Join(tree, "DEBIAN", "control"), "\nDepends: ", "\nDepends: halvm-no-such-dependency (>= 9.9), ")
		})
		res := r.runCheck(t, checks.CheckAptInstall("halvm"))
		const why = "halvm : Depends: halvm-no-such-dependency (>= 9.9) but it is not installable"
		wantStatus(t, res, verify.Fail, "apt-get install -y halvm: unmet dependencies: "+why)
		if !strings.Contains(res.Reason, why) {
			t.Errorf("the reason does not name the missing dependency: %q", res.Reason)
		}
	})
}

func without(l *pipeline.Ledger, kind pipeline.Kind) *pipeline.Ledger {
	var nl pipeline.Ledger
	for _, a := range l.Artifacts() {
		if a.Kind != kind {
			nl.Add(a)
		}
	}
	return &nl
}

// TestDnfInstall: dnf resolves and the rpm installs and erases cleanly;
// with repomd.xml changed after signing, dnf (repo_gpgcheck=1) refuses the
// repository and the check fails.
func TestDnfInstall(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "dnf", "dnf")
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	r := copyRelease(t)
	r.env.CacheDir = rootfstest.CacheDir()
	wantStatus(t, r.runCheck(t, checks.CheckDnfInstall("halvm-gmp")), verify.Pass)

	r = copyRelease(t)
	r.env.CacheDir = rootfstest.CacheDir()
	replaceIn(t, filepath.Join(r.dnf, "repodata", "repomd.xml"), "<revision>", "<revision>1")
	wantStatus(t, r.runCheck(t, checks.CheckDnfInstall("halvm-gmp")), verify.Fail, "dnf (repo_gpgcheck=1) resolving halvm-gmp")
}

// TestImageChecksNeedTheRecordedImage: no image in the ledger fails the
// required image checks (a release without skips; release's demoChecks
// has the ref that is not the ledger's digest).
func TestImageChecksNeedTheRecordedImage(t *testing.T) {
	testenv.NeedCommand(t, "docker.io", "docker")
	r := copyRelease(t)
	r.env.Ledger = without(r.env.Ledger, pipeline.KindOCIImage)
	for _, n := range []string{checks.CheckImageRun("halvm"), checks.CheckImageDebs} {
		res := r.runCheck(t, n)
		if res.Status == verify.NotRun && strings.Contains(res.Reason, "docker") {
			testenv.Unavailable(t, "docker daemon: "+res.Reason, res.Remedy)
		}
		wantStatus(t, res, verify.Fail, "the ledger records no oci-image")
	}
}
