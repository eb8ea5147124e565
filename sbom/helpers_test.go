package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

func hexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// realLock loads the project's lock: the documents are tested on the pins
// a release really uses.
func realLock(t testing.TB) *pins.Lock {
	t.Helper()
	l, err := pins.LoadFile("../pins/halvm.lock")
	if err != nil {
		t.Fatalf("loading the lock: %v", err)
	}
	return l
}

// testLedger records what the packaging stages of a run would.
func testLedger() *pipeline.Ledger {
	var led pipeline.Ledger
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		// As packaging records them: named by package, the .deb and the
		// .rpm share the name; their files tell them apart.
		led.Add(pipeline.Artifact{Kind: pipeline.KindDeb, Name: fl, Flavour: fl, Path: "deb/" + fl + "_2.4.3-1_amd64.deb", Size: 1000, SHA256: hexOf("deb " + fl)})
		led.Add(pipeline.Artifact{Kind: pipeline.KindRPM, Name: fl, Flavour: fl, Path: "rpm/" + fl + "-2.4.3-1.x86_64.rpm", Size: 2000, SHA256: hexOf("rpm " + fl)})
		led.Add(pipeline.Artifact{Kind: pipeline.KindOCIImage, Name: "registry.example/halvm/" + fl + ":2.4.3", Flavour: fl, Size: 3000, SHA256: hexOf("image " + fl)})
		led.Add(pipeline.Artifact{Kind: pipeline.KindTreeManifest, Name: fl + "-tree.json", Flavour: fl, Path: "tree/" + fl + ".json", Size: 10, SHA256: hexOf("tree " + fl)})
	}
	led.Add(pipeline.Artifact{Kind: pipeline.KindAptRepo, Name: "apt", Size: 1, SHA256: hexOf("apt")})
	return &led
}

func testTree() []TreeFile {
	return []TreeFile{
		{Path: "bin/halvm-ghc", Mode: 0o755, Size: 120, SHA256: hexOf("halvm-ghc")},
		{Path: "lib/halvm-ghc-8.0.2/package.conf.d/base-4.9.1.0.conf", Mode: 0o644, Size: 50, SHA256: hexOf("base conf")},
		{Path: "lib/halvm-ghc-8.0.2/rts/libHSrts_thr.a", Mode: 0o644, Size: 9000, SHA256: hexOf("rts thr")},
	}
}

func testInput(t testing.TB, flavour string) Input {
	return Input{Lock: realLock(t), Flavour: flavour, Artifacts: testLedger().Artifacts(), Tree: testTree()}
}
