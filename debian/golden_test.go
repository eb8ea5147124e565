package debian

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGoldenIndexes pins the exact text of Packages and Release for
// packages built in memory (no external tools): any change in field order,
// formatting or hashing shows as a readable diff. Regenerate with
// `go test ./debian -run Golden -update` and review the diff.
func TestGoldenIndexes(t *testing.T) {
	key, _ := testKeys(t)
	dir := t.TempDir()
	var debs []string
	for i, ctl := range []string{
		"Package: halvm\nVersion: 2.4.3-1\nArchitecture: amd64\nMaintainer: HaLVM Team <team@halvm.invalid>\nInstalled-Size: 12\nDepends: libc6 (>= 2.34)\nSection: devel\nPriority: optional\nHomepage: https://halvm.invalid\nDescription: HaLVM toolchain\n GHC 8.0.2 targeting Xen.\n .\n Second paragraph.\n",
		"Package: halvm\nVersion: 2.4.3-2\nArchitecture: amd64\nMaintainer: HaLVM Team <team@halvm.invalid>\nDescription: HaLVM toolchain\n",
		"Package: libhalvm-dev\nSource: halvm (2.4.3-1)\nVersion: 1:2.4.3-1\nArchitecture: all\nMaintainer: HaLVM Team <team@halvm.invalid>\nFilename: bogus\nSHA256: bogus\nDescription: dev files\n",
	} {
		p := filepath.Join(dir, string(rune('a'+i))+".deb")
		must(t, os.WriteFile(p, fakeDeb(t, "control.tar", ctl), 0o644))
		debs = append(debs, p)
	}
	out := filepath.Join(t.TempDir(), "repo")
	_, err := Write(out, Input{Repo: testRepo("https://halvm.invalid/apt"), Key: key, Debs: debs})
	must(t, err)
	for file, golden := range map[string]string{
		"dists/stable/main/binary-amd64/Packages": "testdata/Packages.golden",
		"dists/stable/Release":                    "testdata/Release.golden",
		"halvm.sources":                           "testdata/halvm.sources.golden",
	} {
		got, err := os.ReadFile(filepath.Join(out, file))
		must(t, err)
		if *update {
			must(t, os.MkdirAll("testdata", 0o755))
			must(t, os.WriteFile(golden, got, 0o644))
			continue
		}
		want, err := os.ReadFile(golden)
		must(t, err)
		if string(got) != string(want) {
			t.Errorf("%s differs from %s (run with -update and review):\n--- got\n%s\n--- want\n%s", file, golden, got, want)
		}
	}
}

// BenchmarkWrite measures a full publish of three small packages (indexes,
// compression, two signatures, copies): the fixed cost of a repository.
func BenchmarkWrite(b *testing.B) {
	key, _ := testKeys(b)
	dir := b.TempDir()
	var debs []string
	for i, v := range []string{"1.0-1", "1.0-2", "1.1-1"} {
		p := filepath.Join(dir, string(rune('a'+i))+".deb")
		ctl := "Package: halvm\nVersion: " + v + "\nArchitecture: amd64\nMaintainer: T <t@halvm.invalid>\nDescription: x\n"
		must(b, os.WriteFile(p, fakeDeb(b, "control.tar.gz", ctl), 0o644))
		debs = append(debs, p)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := Write(filepath.Join(dir, "out", fmt.Sprint(i)), Input{Repo: testRepo("http://x/"), Key: key, Debs: debs}); err != nil {
			b.Fatal(err)
		}
	}
}
