package checks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/release"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// linkRelease hard-links f's dist/ into a fresh directory named name (cp
// -al: cheap, no copy of the bytes). A test changes a file only by
// replacing it (replaceFile), never by writing into it: the fixture's
// inode is shared.
func linkRelease(t *testing.T, f fixture, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-al", f.dist, dst}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// replaceFile writes data to a new file renamed over p (breaking any hard
// link to the fixture's copy).
func replaceFile(t *testing.T, p string, data []byte) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func editFile(t *testing.T, p string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, p, edit(append([]byte(nil), b...)))
}

type report struct {
	Status  string            `json:"status"`
	Aborted string            `json:"aborted"`
	Paths   map[string]string `json:"paths"`
	Inputs  []verify.Input    `json:"inputs"`
	Checks  []struct {
		Name    string   `json:"name"`
		Status  string   `json:"status"`
		Reason  string   `json:"reason"`
		Details []string `json:"details"`
	} `json:"checks"`
}

func (r report) check(t *testing.T, name string) (status, text string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Status, c.Reason + "\n" + strings.Join(c.Details, "\n")
		}
	}
	t.Fatalf("verify.json has no check %s", name)
	return "", ""
}

// verifyBuilt runs `go run mage.go verify` (release.VerifyBuiltWith) on
// out, a copy of f, with f's public keys and the signature and
// consistency checks only, and returns its error and the verify.json it
// wrote.
func verifyBuilt(t *testing.T, f fixture, out string) (error, report) {
	t.Helper()
	env := map[string]string{"HALVM_OUT": out, "HALVM_CACHE": filepath.Dir(f.keys.Dir), "HALVM_LOCK": filepath.Join(out, sbom.LockPath),
		"HALVM_PGP_PUBLIC_KEY_FILE": f.keys.PGPPublic, "HALVM_COSIGN_PUBLIC_KEY_FILE": f.keys.CosignPublic}
	var log bytes.Buffer
	err := release.VerifyBuiltWith(context.Background(), config.LoadVerification(func(k string) string { return env[k] }), &log, release.VerifyOptions{
		Select: func(c verify.Check) bool { return c.Family == verify.Signatures || c.Family == verify.Consistency },
	})
	t.Logf("verify %s: %v\n%s", out, err, log.String())
	b, rerr := os.ReadFile(filepath.Join(out, "verify.json"))
	if rerr != nil {
		t.Fatalf("no report: %v", rerr)
	}
	var rep report
	if jerr := json.Unmarshal(b, &rep); jerr != nil {
		t.Fatalf("verify.json: %v", jerr)
	}
	return err, rep
}

func wantCheck(t *testing.T, rep report, name, status string, has ...string) {
	t.Helper()
	got, text := rep.check(t, name)
	if got != status {
		t.Errorf("%s: %s, want %s:\n%s", name, got, status, text)
	}
	for _, h := range has {
		if !strings.Contains(text, h) {
			t.Errorf("%s does not say %q:\n%s", name, h, text)
		}
	}
}

// filesDir is the served files/current/<version>/ directory of a copy.
func filesDir(t *testing.T, out string) string {
	t.Helper()
	cur, err := checks.ServedPublication(filepath.Join(out, "repos", "files"))
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := filepath.Glob(filepath.Join(cur, "*"))
	if len(vs) != 1 {
		t.Fatalf("%s holds %d release directories, want 1", cur, len(vs))
	}
	return vs[0]
}

// TestVerifyServedTree: `go run mage.go verify` verifies the tree users
// are served, resolving every path against HALVM_OUT and the publish root,
// trusting only signatures; each tampering of the served (synthetic)
// release fails, naming the file.
func TestVerifyServedTree(t *testing.T) {
	f := synth(t)
	t.Run("a copy not named dist is read, its paths reported", func(t *testing.T) {
		out := linkRelease(t, f, "release-copy")
		err, rep := verifyBuilt(t, f, out)
		if err == nil || rep.Status != "fail" {
			t.Fatalf("a selection of checks passed as a whole (%v, %s)", err, rep.Status)
		}
		for _, n := range []string{checks.CheckAptSignatures, checks.CheckRPMSignatures, checks.CheckSumsSignatures,
			checks.CheckLedgerDigests, checks.CheckAptIndex, checks.CheckDnfIndex, checks.CheckSBOM("halvm"),
			checks.CheckServedPublications, checks.CheckServedFiles} {
			wantCheck(t, rep, n, "pass")
		}
		// The synthetic release skipped the image stage, as its ledger
		// says: the image checks are optional and not run.
		for _, n := range []string{checks.CheckImageSignatures, checks.CheckImageDebs} {
			wantCheck(t, rep, n, "not-run", "stage image was skipped")
		}
		if rep.Paths["release"] != out || !strings.HasPrefix(rep.Paths["apt-publication"], out+"/repos/apt/publications/") ||
			!strings.HasPrefix(rep.Paths["dnf-publication"], out+"/repos/dnf/publications/") {
			t.Errorf("the report's paths are not the copy's: %v", rep.Paths)
		}
		roles := map[string]bool{}
		for _, in := range rep.Inputs {
			roles[in.Role] = len(in.SHA256) == 64 && filepath.IsAbs(in.Path)
		}
		for _, r := range []string{"ledger", "lock", "archive-public-key", "cosign-public-key"} {
			if !roles[r] {
				t.Errorf("the report does not record the %s with its absolute path and sha256: %+v", r, rep.Inputs)
			}
		}

		// A byte flipped in the copy's served Packages.xz fails.
		pk, _ := filepath.Glob(filepath.Join(rep.Paths["apt-publication"], "dists", "*", "main", "binary-*", "Packages.xz"))
		if len(pk) == 0 {
			t.Fatal("no Packages.xz in the served apt publication")
		}
		editFile(t, pk[0], func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b })
		_, rep = verifyBuilt(t, f, out)
		wantCheck(t, rep, checks.CheckAptIndex, "fail", filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(pk[0]))))), "Packages.xz")
	})

	t.Run("the ledger points outside HALVM_OUT", func(t *testing.T) {
		out := linkRelease(t, f, "dist")
		lp := filepath.Join(out, "ledger.json")
		l, err := pipeline.ReadLedger(lp)
		if err != nil {
			t.Fatal(err)
		}
		var sb pipeline.Artifact
		for _, a := range l.Find(pipeline.KindSPDX, "halvm") {
			sb = a
		}
		sb.Path = "../../../elsewhere/dist/" + sb.Path
		l.Add(sb)
		if err := l.WriteFile(lp); err != nil {
			t.Fatal(err)
		}
		err, rep := verifyBuilt(t, f, out)
		if err == nil || rep.Status != "fail" || !strings.Contains(rep.Aborted, "points outside") || !strings.Contains(rep.Aborted, sb.Path) || !strings.Contains(rep.Aborted, lp) {
			t.Errorf("a ledger pointing outside: %v; report %s, aborted %q", err, rep.Status, rep.Aborted)
		}
	})

	t.Run("files area", func(t *testing.T) {
		pub, err := os.ReadFile(f.keys.PGPPublic)
		if err != nil {
			t.Fatal(err)
		}
		cpub, err := os.ReadFile(f.keys.CosignPublic)
		if err != nil {
			t.Fatal(err)
		}
		runServed := func(t *testing.T, out string) verify.Result {
			t.Helper()
			env, err := verify.LoadEnv(out, "")
			if err != nil {
				t.Fatal(err)
			}
			apt, _ := checks.ServedPublication(filepath.Join(out, "repos", "apt"))
			dnf, _ := checks.ServedPublication(filepath.Join(out, "repos", "dnf"))
			cfg := checks.Config{AptDir: apt, DnfDir: dnf, ArchiveKey: pub, CosignKey: cpub, Lock: f.lock, Flavours: []string{"halvm", "halvm-gmp"}, ServedRoot: env.RepoRoot}
			r := &rel{dist: out, env: env, cfg: cfg}
			return r.runCheck(t, checks.CheckServedFiles)
		}
		t.Run("an SBOM edited, SHA256SUMS regenerated unsigned", func(t *testing.T) {
			out := linkRelease(t, f, "dist")
			dir := filesDir(t, out)
			editFile(t, filepath.Join(dir, "sbom", "halvm.spdx.json"), func(b []byte) []byte { return append(b, ' ') })
			sumsPath := filepath.Join(dir, sbom.SumsName)
			data, _ := os.ReadFile(sumsPath)
			list, err := sbom.ParseSums(data)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range list {
				names = append(names, s.Name)
			}
			sums, err := sbom.SumFiles(dir, names)
			if err != nil {
				t.Fatal(err)
			}
			b, err := sbom.FormatSums(sums)
			if err != nil {
				t.Fatal(err)
			}
			replaceFile(t, sumsPath, b)
			wantStatus(t, runServed(t, out), verify.Fail, sumsPath, "gpgv rejects")
		})
		t.Run("an extra file", func(t *testing.T) {
			out := linkRelease(t, f, "dist")
			extra := filepath.Join(filesDir(t, out), "README.unsigned")
			if err := os.WriteFile(extra, []byte("trust me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, runServed(t, out), verify.Fail, extra+": not listed in the signed")
		})
	})

	t.Run("current switched to an older publication", func(t *testing.T) {
		out := linkRelease(t, f, "dist")
		key, err := pgp.LoadKey(f.keys.PGPSource())
		if err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(out, "repos")
		c := repos.Config{Root: root, URL: "http://127.0.0.1:8619", Key: key, Epoch: f.lock.Release.Epoch(), Version: f.lock.Release.Version}
		oldApt, err := checks.ServedPublication(c.AptDir())
		if err != nil {
			t.Fatal(err)
		}
		oldDnf, _ := checks.ServedPublication(c.DnfDir())
		s, err := repos.Prepare(context.Background(), c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := repos.Activate(c, s); err != nil {
			t.Fatal(err)
		}
		env, err := verify.LoadEnv(out, "")
		if err != nil {
			t.Fatal(err)
		}
		r := &rel{dist: out, env: env, cfg: checks.Config{ServedRoot: root}}
		wantStatus(t, r.runCheck(t, checks.CheckServedPublications), verify.Pass)
		for _, p := range []string{oldApt, oldDnf} {
			link := filepath.Join(filepath.Dir(filepath.Dir(p)), "current")
			tmp := link + ".tmp"
			if err := os.Symlink(filepath.Join("publications", filepath.Base(p)), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Fatal(err)
			}
		}
		wantStatus(t, r.runCheck(t, checks.CheckServedPublications), verify.Fail, "apt: current ("+filepath.Base(oldApt)+",", "is older than publication "+s.Apt, "dnf: current ("+filepath.Base(oldDnf)+",")
	})

	t.Run("an SBOM licence changed, the ledger edited to match", func(t *testing.T) {
		r := copyRelease(t)
		var a pipeline.Artifact
		for _, x := range r.env.Ledger.Find(pipeline.KindSPDX, "halvm") {
			a = x
		}
		lic := r.cfg.Lock.Release.License
		if lic == "" {
			t.Fatal("the release's lock names no licence")
		}
		p := r.env.Path(a.Path)
		replaceIn(t, p, `"licenseDeclared": "`+lic+`"`, `"licenseDeclared": "MIT"`)
		if _, err := r.env.Ledger.AddFile(a.Kind, a.Name, a.Flavour, p, a.Path); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r.runCheck(t, checks.CheckSBOM("halvm")), verify.Fail, "licenseDeclared", "wrong licence", "MIT")
	})
}
