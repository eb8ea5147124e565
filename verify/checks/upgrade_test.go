package checks_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

var versionLine = regexp.MustCompile(`(?m)^Version: .*$`)

// withPrevious lays r's apt publication out as publish keeps them, after
// an earlier release: <root>/publications/0001-… holds the halvm .deb at
// an older version (changed further by modify), 0002-… this release, live.
func withPrevious(t *testing.T, r *rel, modify func(tree string)) {
	t.Helper()
	release := r.cfg.AptDir
	r.republishHalvm(t, func(tree string) {
		replaceRe(t, filepath.Join(tree, "DEBIAN", "control"), versionLine, "Version: 2.4.3-0~previous")
		if modify != nil {
			modify(tree)
		}
	})
	root := filepath.Join(t.TempDir(), "apt")
	prev := filepath.Join(root, "publications", "0001-aaaaaaaaaaaa")
	cur := filepath.Join(root, "publications", "0002-bbbbbbbbbbbb")
	if err := os.MkdirAll(filepath.Dir(prev), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(r.cfg.AptDir, prev); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"cp", "-a", release, cur}, Env: run.BaseEnv()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("publications/0002-bbbbbbbbbbbb", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	r.cfg.AptDir = cur
	r.cfg.PreviousAptDir = checks.PreviousPublication(cur)
	if r.cfg.PreviousAptDir != prev {
		t.Fatalf("PreviousPublication(%s) = %q, want %s", cur, r.cfg.PreviousAptDir, prev)
	}
}

func replaceRe(t *testing.T, path string, re *regexp.Regexp, with string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !re.Match(b) {
		t.Fatalf("%s: no %s", path, re)
	}
	if err := os.WriteFile(path, re.ReplaceAll(b, []byte(with)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAptUpgrade: installing the previous release and upgrading to this
// one as a user's apt does gives this release's version, which runs, and
// purging it leaves nothing; a previous release whose maintainer script
// left state behind is caught, the path named; a first release has
// nothing to upgrade from, and the optional check says so.
func TestAptUpgrade(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mmdebstrap", "mmdebstrap")

	r := copyRelease(t)
	r.env.CacheDir = rootfstest.CacheDir()
	wantStatus(t, r.runCheck(t, checks.CheckAptUpgrade("halvm")), verify.NotRun, "this is the first release, nothing to upgrade from")

	r = copyRelease(t)
	r.env.CacheDir = rootfstest.CacheDir()
	withPrevious(t, r, nil)
	res := r.runCheck(t, checks.CheckAptUpgrade("halvm"))
	wantStatus(t, res, verify.Pass)
	if !strings.Contains(res.Summary, "halvm 2.4.3-0~previous from the previous publication 0001-aaaaaaaaaaaa, apt-get upgrade to 2.4.3-1") {
		t.Errorf("summary: %s", res.Summary)
	}

	t.Run("the previous release leaves state behind", func(t *testing.T) {
		r := copyRelease(t)
		r.env.CacheDir = rootfstest.CacheDir()
		withPrevious(t, r, func(tree string) {
			post := filepath.Join(tree, "DEBIAN", "postinst")
			b, err := os.ReadFile(post)
			if err != nil {
				b = []byte("#!/bin/sh\nset -e\n")
			}
			first, rest, _ := strings.Cut(string(b), "\n")
			if err := os.WriteFile(post, []byte(first+"\nmkdir -p /var/lib/halvm-previous\n"+rest), 0o755); err != nil {
				t.Fatal(err)
			}
		})
		wantStatus(t, r.runCheck(t, checks.CheckAptUpgrade("halvm")), verify.Fail,
			"after upgrading halvm from 2.4.3-0~previous to 2.4.3-1 and purging it the rootfs differs: 1 path(s) left behind", "left behind: var/lib/halvm-previous")
	})
}
