package sbom

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

func TestCheckAcceptsGeneratedDocuments(t *testing.T) {
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		d := generate(t, testInput(t, fl))
		if ps := Check(realLock(t), testLedger(), d.SPDX, d.CycloneDX, d.Provenance); ps != nil {
			t.Errorf("%s: %d problem(s):\n%s", fl, len(ps), joinProblems(ps))
		}
	}
}

// findProblem returns the problems of doc about what.
func findProblem(ps []Problem, doc, what string) []Problem {
	var out []Problem
	for _, p := range ps {
		if p.Doc == doc && p.What == what {
			out = append(out, p)
		}
	}
	return out
}

func TestCheckReportsAnEditedSBOM(t *testing.T) {
	d := generate(t, testInput(t, "halvm"))
	const real = "85c7800461ddd4054ccc086cb3ade5e20edf857b"
	const fake = "0000000461ddd4054ccc086cb3ade5e20edf857b"
	spdx := bytes.Replace(d.SPDX, []byte(`"versionInfo": "`+real+`"`), []byte(`"versionInfo": "`+fake+`"`), 1)
	ps := Check(realLock(t), testLedger(), spdx, d.CycloneDX, d.Provenance)
	if len(ps) != 1 {
		t.Fatalf("want exactly one problem, got:\n%s", joinProblems(ps))
	}
	want := Problem{Doc: DocSPDX, Where: "packages[SPDXRef-source-halvm-ghc].versionInfo", What: "source/halvm-ghc", Msg: "wrong commit", Want: real, Got: fake}
	if ps[0] != want {
		t.Errorf("got  %s\nwant %s", ps[0], want)
	}

	// A tampered deb hash in the CycloneDX BOM.
	gcc := "bb63b0fb2797e2a3a294dab8a02614930c557ec1f4ea96637c244b8b5f87e630"
	cdx := bytes.Replace(d.CycloneDX, []byte(gcc), []byte(strings.Repeat("f", 64)), 1)
	ps = Check(realLock(t), testLedger(), d.SPDX, cdx, d.Provenance)
	got := findProblem(ps, DocCycloneDX, "deb/build-env/gcc:amd64")
	if len(ps) != 1 || len(got) != 1 || got[0].Where != "components[deb/build-env/gcc:amd64].hashes.SHA-256" || got[0].Want != gcc {
		t.Errorf("tampered gcc hash in CycloneDX:\n%s", joinProblems(ps))
	}

	// A provenance whose bootstrap compiler digest was changed.
	ghc := "5ee68290db00ca0b79d57bc3a5bdce470de9ce9da0b098a7ce6c504605856c8f"
	prov := bytes.Replace(d.Provenance, []byte(ghc), []byte(strings.Repeat("e", 64)), 1)
	ps = Check(realLock(t), testLedger(), d.SPDX, d.CycloneDX, prov)
	got = findProblem(ps, DocProvenance, "file/ghc-8.0.2-x86_64-deb8-linux")
	if len(ps) != 1 || len(got) != 1 || !strings.HasSuffix(got[0].Where, "[file/ghc-8.0.2-x86_64-deb8-linux].digest.sha256") {
		t.Errorf("tampered bootstrap digest in provenance:\n%s", joinProblems(ps))
	}
}

func TestCheckReportsAMissingPin(t *testing.T) {
	d := generate(t, testInput(t, "halvm"))
	l := realLock(t)
	l.Debs = append(l.Debs, pins.Deb{Name: "m4", Version: "1.4.19-3", Arch: "amd64", Role: "build-env", Archive: "debian",
		Filename: "pool/main/m/m4/m4_1.4.19-3_amd64.deb", Size: 1, SHA256: strings.Repeat("4", 64)})
	ps := Check(l, testLedger(), d.SPDX, d.CycloneDX, d.Provenance)
	for _, doc := range []string{DocSPDX, DocCycloneDX, DocProvenance} {
		got := findProblem(ps, doc, "deb/build-env/m4:amd64")
		if len(got) != 1 || !strings.Contains(got[0].Msg, "missing") {
			t.Errorf("%s: want one 'missing' problem for the new pin, got:\n%s", doc, joinProblems(ps))
		}
	}
	// The lock's own digest in the provenance changed too.
	if got := findProblem(ps, DocProvenance, lockKey); len(got) != 1 {
		t.Errorf("the changed lock digest is not reported:\n%s", joinProblems(ps))
	}

	// And the other way round: a pin dropped from the lock is reported as
	// unexpected in every document.
	l = realLock(t)
	l.Sources = l.Sources[:len(l.Sources)-1] // openlibm
	ps = Check(l, testLedger(), d.SPDX, d.CycloneDX, d.Provenance)
	for _, doc := range []string{DocSPDX, DocCycloneDX, DocProvenance} {
		found := false
		for _, p := range ps {
			if p.Doc == doc && strings.Contains(p.Where, "openlibm") && strings.Contains(p.Msg, "not in the lock") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: dropped pin openlibm not reported:\n%s", doc, joinProblems(ps))
		}
	}
}

func TestCheckReportsAChangedArtifact(t *testing.T) {
	d := generate(t, testInput(t, "halvm-gmp"))
	led := testLedger()
	a := led.Find(pipeline.KindRPM, "halvm-gmp")[0]
	old := a.SHA256
	a.SHA256 = hexOf("rebuilt rpm")
	led.Add(a)
	ps := Check(realLock(t), led, d.SPDX, d.CycloneDX, d.Provenance)
	key := "artifact/rpm/" + a.Name
	wantWhere := map[string]string{
		DocSPDX:       "packages[SPDXRef-" + spdxID(key) + "].checksums.SHA256",
		DocCycloneDX:  "components[" + key + "].hashes.SHA-256",
		DocProvenance: "subject[" + path.Base(a.Path) + "].digest.sha256",
	}
	if len(ps) != 3 {
		t.Errorf("want 3 problems, got:\n%s", joinProblems(ps))
	}
	for doc, where := range wantWhere {
		got := findProblem(ps, doc, key)
		if len(got) != 1 || got[0].Where != where || got[0].Want != a.SHA256 || got[0].Got != old {
			t.Errorf("%s: want %s want=%s got=%s, got:\n%s", doc, where, a.SHA256, old, joinProblems(got))
		}
	}

	// An artifact the documents never heard of.
	led = testLedger()
	led.Add(pipeline.Artifact{Kind: pipeline.KindDeb, Name: "halvm-gmp-doc_2.4.3-1_all.deb", Flavour: "halvm-gmp", Size: 1, SHA256: hexOf("doc")})
	ps = Check(realLock(t), led, d.SPDX, d.CycloneDX, d.Provenance)
	if n := len(findProblem(ps, DocProvenance, "artifact/deb/halvm-gmp-doc_2.4.3-1_all.deb")); n != 1 {
		t.Errorf("unrecorded artifact not reported as a missing subject:\n%s", joinProblems(ps))
	}
}

func TestCheckReportsMixedFlavours(t *testing.T) {
	a := generate(t, testInput(t, "halvm"))
	b := generate(t, testInput(t, "halvm-gmp"))
	ps := Check(realLock(t), testLedger(), a.SPDX, b.CycloneDX, b.Provenance)
	found := false
	for _, p := range ps {
		if p.Doc == DocSPDX && p.Where == "flavour" && p.Want == "halvm-gmp" && p.Got == "halvm" {
			found = true
		}
	}
	if !found {
		t.Errorf("documents of two flavours not reported:\n%s", joinProblems(ps))
	}
}

func TestWriteFlavourThenCheckFromDisk(t *testing.T) {
	out := t.TempDir()
	led := testLedger()
	if _, err := WriteFlavour(out, testInput(t, "halvm"), led); err != nil {
		t.Fatal(err)
	}
	// The ledger now also lists the documents: Check ignores them.
	ledgerPath := out + "/ledger.json"
	if err := led.WriteFile(ledgerPath); err != nil {
		t.Fatal(err)
	}
	led2, err := pipeline.ReadLedger(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if ps := Check(realLock(t), led2, read(SPDXPath("halvm")), read(CycloneDXPath("halvm")), read(ProvenancePath("halvm"))); ps != nil {
		t.Errorf("documents read back from disk:\n%s", joinProblems(ps))
	}
	if n := len(led2.Find(pipeline.KindSPDX, "halvm")) + len(led2.Find(pipeline.KindCycloneDX, "halvm")) + len(led2.Find(pipeline.KindProvenance, "halvm")); n != 3 {
		t.Errorf("ledger records %d documents, want 3", n)
	}
}

// The lock published with the release is the one the SBOMs and the
// provenance name: its sha256 is their lock digest.
func TestPublishedLockIsTheOneTheDocumentsName(t *testing.T) {
	out := t.TempDir()
	led := testLedger()
	d, err := WriteFlavour(out, testInput(t, "halvm"), led)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLock(out, realLock(t), led); err != nil {
		t.Fatal(err)
	}
	locks := led.Find(pipeline.KindLock, "")
	if len(locks) != 1 || locks[0].Path != LockPath {
		t.Fatalf("ledger records %+v, want one lock at %s", locks, LockPath)
	}
	b, err := os.ReadFile(filepath.Join(out, LockPath))
	if err != nil {
		t.Fatal(err)
	}
	back, err := pins.Parse(LockPath, b)
	if err != nil {
		t.Fatalf("the published lock does not parse: %v", err)
	}
	if !bytes.Equal(pins.Bytes(back), b) {
		t.Error("the published lock is not in canonical form")
	}
	for name, doc := range map[string][]byte{"SPDX": d.SPDX, "CycloneDX": d.CycloneDX, "provenance": d.Provenance} {
		if !bytes.Contains(doc, []byte(locks[0].SHA256)) {
			t.Errorf("the %s document does not name the published lock's sha256 %s", name, locks[0].SHA256)
		}
	}
}
