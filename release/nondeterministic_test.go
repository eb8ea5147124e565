package release

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/sample"
)

// stampingBuildMk is the sample's build.mk (included by halvm-ghc's
// Makefile) with one rule more: install writes the wall-clock time into
// the installed tree, as a careless upstream build does. No path leaks, so
// the toolchain stage accepts the tree; only a second build can tell.
func stampingBuildMk(t *testing.T) map[string]fs.FS {
	t.Helper()
	const path = "src/misc/build.mk.in"
	orig, err := os.ReadFile(filepath.Join("..", "sample", "tree", sample.RepoHaLVM, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	stamp := "\ninstall: halvm-build-stamp\n.PHONY: halvm-build-stamp\nhalvm-build-stamp: all\n" +
		"\tmkdir -p $(DESTDIR)$(ghclibdir)\n\tdate +%s%N > $(DESTDIR)$(ghclibdir)/build-stamp\n"
	return map[string]fs.FS{sample.RepoHaLVM: fstest.MapFS{path: {Data: append(orig, stamp...), Mode: 0o644, ModTime: time.Unix(sample.Epoch, 0)}}}
}

// TestNondeterministicBuildIsCaught: an upstream whose build is not
// reproducible (a time stamp in an installed file) goes through every
// build stage, and the verify stage's rebuild catches it: the release fails
// at verify, the report names the artifacts that differ and the file that
// makes them differ, and nothing is published. (Images and signatures are
// skipped: TestDemo covers them; here they would only add time.)
func TestNondeterministicBuildIsCaught(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "autoconf", "autoconf")
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")
	real, dir, cache := demoSetup(t)
	out := filepath.Join(dir, "dist")
	// A guard against a hang: about 5 minutes alone on 2 cores.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var log bytes.Buffer
	skip := map[string]string{"image": "covered by TestDemo", "sign": "covered by TestDemo"}
	l, err := Demo(ctx, DemoOptions{OutDir: out, CacheDir: filepath.Join(cache, "demo"), WorkDir: filepath.Join(dir, "work"), RealLock: real,
		Skip: skip, Addr: "127.0.0.1:0", Log: &log, sampleOverlay: stampingBuildMk(t), skipRequired: true})
	t.Logf("demo of a nondeterministic upstream:\n%s", log.String())
	if name, ok := pipeline.IsStageError(err); !ok || name != "verify" {
		t.Fatalf("want the verify stage to fail, got err = %v", err)
	}
	for _, s := range l.Stages() {
		if s.Name == "publish" && s.Status != pipeline.NotRun {
			t.Errorf("publish is %s after a failed verification, want not-run", s.Status)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "repos", "apt", "current")); err == nil {
		t.Error("a repository went live")
	}
	// History is only what went live: the failed run removed what it staged.
	for _, repo := range []string{"apt", "dnf"} {
		if names, _ := publish.List(filepath.Join(out, "repos", repo)); len(names) != 0 {
			t.Errorf("the failed verification left %s publications %v", repo, names)
		}
	}

	rep := readVerifyReport(t, out)
	if rep.Status != "fail" {
		t.Errorf("verify.json status %s, want fail", rep.Status)
	}
	for _, c := range rep.Checks {
		if c.Name != "rebuild-identical" {
			// Everything else about this release is fine.
			if c.Status == "fail" {
				t.Errorf("check %s failed too: %s", c.Name, c.Reason)
			}
			continue
		}
		all := c.Reason + "\n" + strings.Join(c.Details, "\n")
		t.Logf("rebuild-identical: %s", all)
		if c.Status != "fail" {
			t.Fatalf("rebuild-identical: %s, want fail", c.Status)
		}
		for _, want := range []string{"the rebuild differs: ", "DIFFERS   tree-manifest toolchain (halvm)", "DIFFERS   tree-manifest toolchain (halvm-gmp)",
			"DIFFERS   deb halvm-gmp", "DIFFERS   rpm halvm", "build-stamp"} {
			if !strings.Contains(all, want) {
				t.Errorf("the report does not say %q", want)
			}
		}
		return
	}
	t.Fatal("verify.json has no rebuild-identical check")
}
