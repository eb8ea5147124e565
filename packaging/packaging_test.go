package packaging

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
)

// copyTree copies src to dst giving every path a different mtime and
// looser permission bits than the original, to show neither reaches the
// package.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	when := time.Date(2031, 7, 1, 12, 0, 0, 0, time.UTC)
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, to)
			return os.MkdirAll(to, 0o775)
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := info.Mode().Perm() | 0o664 // group-writable, as a 002 umask leaves it
			if err := os.WriteFile(to, b, mode); err != nil {
				return err
			}
			when = when.Add(97 * time.Second)
			return os.Chtimes(to, when, when)
		}
	})
	must(t, err)
	for _, d := range dirs {
		must(t, os.Chtimes(d, when, when))
	}
}

// TestReproducible builds every package twice, the second time from a copy
// of the inputs under another parent directory with other mtimes and modes
// and with GOMAXPROCS=1, and compares the bytes.
func TestReproducible(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			tc := toolchain(t, f, "halvm", 1)
			o := Options{Key: k, SignDeb: true}
			out1 := t.TempDir()
			p1, err := BuildToolchain(ctx, f, tc, o, out1)
			must(t, err)
			k1, err := BuildKeyring(ctx, f, Keyring{Version: testVersion, Release: 1, Epoch: testEpoch}, o, out1)
			must(t, err)

			other := filepath.Join(t.TempDir(), "a", "different", "parent")
			copyTree(t, filepath.Dir(tc.Tree.Root), other)
			tc2 := tc
			tc2.Tree.Root = filepath.Join(other, "destdir")
			tc2.Examples = filepath.Join(other, "examples")
			tc2.Hello = filepath.Join(other, "hello")
			out2 := t.TempDir()
			prev := runtime.GOMAXPROCS(1)
			p2, err := BuildToolchain(ctx, f, tc2, o, out2)
			runtime.GOMAXPROCS(prev)
			must(t, err)
			k2, err := BuildKeyring(ctx, f, Keyring{Version: testVersion, Release: 1, Epoch: testEpoch}, o, out2)
			must(t, err)
			if filepath.Base(p1) != FileName(f, "halvm", testVersion, 1, false) {
				t.Errorf("file name %s", filepath.Base(p1))
			}
			sameBytes(t, p1, p2)
			sameBytes(t, k1, k2)
			if names := listDir(t, out1); len(names) != 2 {
				t.Errorf("output dir holds %v, want exactly the two packages", names)
			}
		})
	}
}

// TestBadInput: every bad input is a clear error and leaves no file behind.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	o := Options{Key: k}
	cases := []struct {
		name  string
		f     Format
		edit  func(t *testing.T, tc *Toolchain)
		o     Options
		wants []string
	}{
		{"missing tree", Deb, func(t *testing.T, tc *Toolchain) { tc.Tree.Root = filepath.Join(t.TempDir(), "nope") }, o,
			[]string{"toolchain tree", "no such file", "build the toolchain first"}},
		{"empty tree", RPM, func(t *testing.T, tc *Toolchain) { tc.Tree.Root = t.TempDir() }, o,
			[]string{"no executable /usr/bin/halvm-ghc", "no executable /usr/bin/halvm-ghc-pkg", "has no /usr/lib64/HaLVM-2.4.3"}},
		{"build path leak", Deb, func(t *testing.T, tc *Toolchain) {
			p := filepath.Join(tc.Tree.Root, Layouts[Deb].HaLVMLibdir(testVersion), "package.conf.d", "halvmcore.conf")
			must(t, os.WriteFile(p, []byte("include-dirs: /build/halvm-release-work/src/HALVMCore/include\n"), 0o644))
			must(t, os.Symlink("/build/halvm-release-work/x", filepath.Join(tc.Tree.Root, "usr/bin/leaky")))
		}, o, []string{"leaks build paths", "(2 files)", "/usr/bin/leaky", "package.conf.d/halvmcore.conf contains \"/build/halvm-release-work\""}},
		{"other layout's libdir", RPM, func(t *testing.T, tc *Toolchain) {
			p := filepath.Join(tc.Tree.Root, "usr/bin/halvm-config")
			must(t, os.WriteFile(p, []byte("#!/bin/sh\necho /usr/lib/x86_64-linux-gnu/HaLVM-2.4.3\n"), 0o755))
		}, o, []string{"/usr/bin/halvm-config contains \"/usr/lib/x86_64-linux-gnu/HaLVM-2.4.3\""}},
		{"tree for the wrong format", RPM, func(t *testing.T, tc *Toolchain) {
			tc.Tree = fakeTree(t, filepath.Join(t.TempDir(), "d"), Layouts[Deb], "halvm")
		}, o, []string{"installed with prefix \"/usr\" libdir \"/usr/lib/x86_64-linux-gnu\" but rpm packages need", "libdir=/usr/lib64"}},
		{"unknown flavour", Deb, func(t *testing.T, tc *Toolchain) { tc.Flavour = "halvm-llvm" }, o,
			[]string{"unknown flavour \"halvm-llvm\": want one of halvm, halvm-gmp"}},
		{"no key", RPM, func(t *testing.T, tc *Toolchain) {}, Options{}, []string{"no signing key"}},
		{"several problems at once", Deb, func(t *testing.T, tc *Toolchain) {
			tc.Flavour = "x"
			tc.Version = "2.4.3-beta"
			tc.Release = 0
			tc.Epoch = time.Time{}
		}, o, []string{"unknown flavour", "version \"2.4.3-beta\"", "release 0", "epoch is not set"}},
		{"file outside the prefix", Deb, func(t *testing.T, tc *Toolchain) {
			must(t, os.MkdirAll(filepath.Join(tc.Tree.Root, "opt"), 0o755))
			must(t, os.WriteFile(filepath.Join(tc.Tree.Root, "opt/x"), nil, 0o644))
		}, o, []string{"/opt/x is outside the prefix /usr"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := toolchain(t, c.f, "halvm", 1)
			c.edit(t, &tc)
			out := t.TempDir()
			_, err := BuildToolchain(ctx, c.f, tc, c.o, out)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if names := listDir(t, out); len(names) != 0 {
				t.Errorf("output directory holds %v after a failed build", names)
			}
		})
	}
}

// TestBuildAllKeyErrors: a missing key file or a wrong passphrase stops the
// stage before anything is written; the passphrase never shows.
func TestBuildAllKeyErrors(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	dir := t.TempDir()
	armored, err := k.ArmoredPrivate([]byte("correct horse"))
	must(t, err)
	keyFile := filepath.Join(dir, "key.asc")
	must(t, os.WriteFile(keyFile, armored, 0o600))
	passFile := filepath.Join(dir, "pass")
	must(t, os.WriteFile(passFile, []byte("wrong battery\n"), 0o600))
	out := filepath.Join(dir, "dist")
	plan, err := pipeline.NewPlan(pipeline.Config{Version: testVersion, Release: 1, Epoch: testEpoch,
		LockPath: "halvm.lock", OutDir: out, CacheDir: dir, WorkDir: dir})
	must(t, err)
	trees := map[string]map[Format]Tree{}
	for _, fl := range []string{"halvm", "halvm-gmp"} {
		trees[fl] = map[Format]Tree{}
		for _, f := range Formats {
			trees[fl][f] = fakeTree(t, filepath.Join(dir, fl, string(f)), Layouts[f], fl)
		}
	}
	for _, c := range []struct {
		name string
		src  pgp.KeySource
		want string
	}{
		{"missing key file", pgp.KeySource{File: filepath.Join(dir, "absent.asc")}, "reading key file"},
		{"wrong passphrase", pgp.KeySource{File: keyFile, PassphraseFile: passFile}, "wrong passphrase"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l pipeline.Ledger
			err := BuildAll(ctx, plan, Inputs{Trees: trees, Key: c.src}, &l)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "wrong battery") {
				t.Errorf("error shows the passphrase: %v", err)
			}
			if names := listDir(t, out); len(names) != 0 {
				t.Errorf("output %v after a key error", names)
			}
		})
	}
	t.Run("good key", func(t *testing.T) {
		must(t, os.WriteFile(passFile, []byte("correct horse\n"), 0o600))
		var l pipeline.Ledger
		must(t, BuildAll(ctx, plan, Inputs{Trees: trees, Key: pgp.KeySource{File: keyFile, PassphraseFile: passFile}}, &l))
		got := map[string]bool{}
		for _, a := range l.Artifacts() {
			got[string(a.Kind)+" "+a.Name+" "+a.Path] = true
		}
		for _, w := range []string{
			"deb halvm packages/halvm_2.4.3-1_amd64.deb", "deb halvm-gmp packages/halvm-gmp_2.4.3-1_amd64.deb",
			"deb halvm-archive-keyring packages/halvm-archive-keyring_2.4.3-1_all.deb",
			"rpm halvm packages/halvm-2.4.3-1.x86_64.rpm", "rpm halvm-gmp packages/halvm-gmp-2.4.3-1.x86_64.rpm",
			"rpm halvm-archive-keyring packages/halvm-archive-keyring-2.4.3-1.noarch.rpm",
		} {
			if !got[w] {
				t.Errorf("ledger lacks %q; has %v", w, got)
			}
		}
		if n := len(listDir(t, filepath.Join(out, Dir))); n != 6 {
			t.Errorf("%d files in %s, want 6", n, Dir)
		}
	})
}
