package repos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/rootfs"
	"github.com/halvm/halvm-release/internal/rootfs/rootfstest"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/internal/testpkg"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/rpm"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

var (
	keyOnce sync.Once
	key     *pgp.Key
	keyErr  error
)

func testKey(t testing.TB) *pgp.Key {
	keyOnce.Do(func() { key, keyErr = pgp.Generate("HaLVM test archive", "test@halvm.invalid", true, testEpoch) })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return key
}

// pkgs builds halvm-hello at the given release as .deb and .rpm.
func pkgs(t testing.TB, release string) (deb, rpmFile string) {
	dir := t.TempDir()
	s := testpkg.Spec{Name: "halvm-hello", Version: "1.0.0", Release: release, Payload: "release " + release, Epoch: testEpoch, Key: testKey(t)}
	return testpkg.Deb(t, dir, s), testpkg.RPM(t, dir, s)
}

func config(root, url string, k *pgp.Key) Config {
	return Config{Root: root, URL: url, Key: k, Epoch: testEpoch, Version: "2.4.3", Keep: 3}
}

func TestPrepareActivateRollback(t *testing.T) {
	ctx := context.Background()
	c := config(t.TempDir(), "http://127.0.0.1:8619", testKey(t))
	d1, r1 := pkgs(t, "1")
	s1, err := Prepare(ctx, c, []string{d1}, []string{r1})
	if err != nil {
		t.Fatal(err)
	}
	if Exists(c.Root) {
		t.Fatal("Prepare made a publication live")
	}
	if err := Activate(c, s1); err != nil {
		t.Fatal(err)
	}
	d2, r2 := pkgs(t, "2")
	s2, err := Prepare(ctx, c, []string{d2}, []string{r2})
	if err != nil {
		t.Fatal(err)
	}
	aptDir, dnfDir := c.StagedDirs(s2)
	res, err := debian.Verify(aptDir, c.Key.PublicBinary())
	if err != nil || len(res.Packages) != 2 {
		t.Fatalf("staged apt repository: %v, %+v", err, res)
	}
	if err := rpm.Verify(dnfDir, c.Key.PublicBinary()); err != nil {
		t.Fatal(err)
	}
	if rpms, _ := rpmFiles(dnfDir); len(rpms) != 2 {
		t.Fatalf("staged dnf repository holds %v, want both releases", rpms)
	}
	if err := Activate(c, s2); err != nil {
		t.Fatal(err)
	}
	// With the archive key a rollback publishes release 1's packages
	// again, newer-dated than both (apt ignores an older Release).
	back, err := Rollback(c)
	if err != nil || !strings.HasPrefix(back.Apt, "0003-") || !strings.HasPrefix(back.Dnf, "0003-") {
		t.Fatalf("rollback = %+v, %v (want new publications 0003-...)", back, err)
	}
	aptBack, dnfBack := c.StagedDirs(back)
	if res, err := debian.Verify(aptBack, c.Key.PublicBinary()); err != nil || len(res.Packages) != 1 || res.Packages[0].Version != "1.0.0-1" {
		t.Fatalf("rolled-back apt repository: %v, %+v (want release 1 alone)", err, res)
	}
	if rpms, _ := rpmFiles(dnfBack); len(rpms) != 1 {
		t.Fatalf("rolled-back dnf repository holds %v, want release 1 alone", rpms)
	}
	s1Apt, _ := c.StagedDirs(s1)
	for _, d := range []struct {
		dateOf func(string) (time.Time, error)
		dirs   []string
	}{{AptDate, []string{s1Apt, aptDir, aptBack}}, {DnfDate, []string{filepath.Join(c.DnfDir(), "publications", s1.Dnf), dnfDir, dnfBack}}} {
		var prev time.Time
		for i, dir := range d.dirs {
			got, err := d.dateOf(dir)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 && !got.Equal(c.Epoch) || i > 0 && !got.Equal(prev.Add(time.Second)) {
				t.Errorf("publication %s is dated %s (previous %s, epoch %s): want the epoch, then one second more each time", dir, got, prev, c.Epoch)
			}
			prev = got
		}
	}
	// With only the public key, current is switched back as it is.
	pubOnly := c
	pubOnly.PublicKey, pubOnly.Key = c.Key.PublicBinary(), nil
	if back, err := Rollback(pubOnly); err != nil || back != s2 {
		t.Fatalf("rollback with the public key = %+v, %v (want %+v)", back, err, s2)
	}
	// Same inputs and epoch: byte-identical trees.
	c2 := config(t.TempDir(), c.URL, c.Key)
	s1b, err := Prepare(ctx, c2, []string{d1}, []string{r1})
	if err != nil {
		t.Fatal(err)
	}
	if s1b != s1 {
		t.Fatalf("same inputs gave publications %+v and %+v", s1, s1b)
	}
}

func TestBadInputLeavesLiveUntouched(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	c := config(t.TempDir(), "http://127.0.0.1:8619", k)
	d1, r1 := pkgs(t, "1")
	s1, err := Prepare(ctx, c, []string{d1}, []string{r1})
	if err != nil {
		t.Fatal(err)
	}
	if err := Activate(c, s1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	other, err := pgp.Generate("Other", "o@halvm.invalid", true, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	changed := testpkg.Spec{Name: "halvm-hello", Version: "1.0.0", Release: "1", Payload: "different bytes", Epoch: testEpoch, Key: k}
	cases := map[string]struct {
		debs, rpms []string
		cfg        Config
		want       string
	}{
		"unsigned rpm":          {nil, []string{testpkg.RPM(t, dir+"/", testpkg.Spec{Name: "u", Version: "1", Release: "1", Epoch: testEpoch})}, c, "dnf repository"},
		"rpm signed by another": {nil, []string{testpkg.RPM(t, t.TempDir(), testpkg.Spec{Name: "o", Version: "1", Release: "1", Epoch: testEpoch, Key: other})}, c, "dnf repository"},
		"deb changed bytes":     {[]string{testpkg.Deb(t, t.TempDir(), changed)}, nil, c, "apt repository"},
		"missing key":           {[]string{d1}, nil, Config{Root: c.Root, URL: c.URL, Epoch: testEpoch}, "no archive signing key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare(ctx, tc.cfg, tc.debs, tc.rpms)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if cur, _ := publish.Current(c.AptDir()); cur != s1.Apt {
				t.Fatal("live apt publication changed")
			}
			if cur, _ := publish.Current(c.DnfDir()); cur != s1.Dnf {
				t.Fatal("live dnf publication changed")
			}
		})
	}
}

// clients runs the real apt and dnf against the served repositories.
type clients struct {
	t    *testing.T
	ctx  context.Context
	url  string
	root string // Debian rootfs for apt
	dnf  string // dnf installroot
	rd   string // dnf reposdir
}

func newClients(t *testing.T, ctx context.Context, url string) *clients {
	testenv.NeedCommand(t, "dnf", "dnf")
	testenv.NeedCommand(t, "rpm", "rpm")
	c := &clients{t: t, ctx: ctx, url: url, root: rootfstest.New(t), dnf: t.TempDir(), rd: t.TempDir()}
	repo := debian.Repo{URL: url + "/apt"}
	// The README's client setup: key and deb822 source at the conventional paths.
	must(t, os.Remove(filepath.Join(c.root, "etc/apt/sources.list")))
	c.fetch(repo.URL+"/"+repo.KeyringFile(), filepath.Join(c.root, repo.KeyringPath()))
	c.fetch(repo.URL+"/"+repo.SourcesFile(), filepath.Join(c.root, repo.SourcesPath()))
	c.fetch(url+"/dnf/halvm.repo", filepath.Join(c.rd, "halvm.repo"))
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (c *clients) fetch(url, dst string) {
	c.t.Helper()
	resp, err := http.Get(url)
	must(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(c.t, err)
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET %s: %s", url, resp.Status)
	}
	must(c.t, os.MkdirAll(filepath.Dir(dst), 0o755))
	must(c.t, os.WriteFile(dst, b, 0o644))
}

func (c *clients) apt(args ...string) (string, error) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	err := rootfs.Run(c.ctx, c.root, run.Cmd{Args: args, Stdout: w, Stderr: w})
	return out.String(), err
}

func (c *clients) dnfCmd(args ...string) (string, error) {
	full := append([]string{"dnf", "-y", "--installroot=" + c.dnf, "--releasever=12", "--setopt=reposdir=" + c.rd,
		"--setopt=cachedir=" + filepath.Join(c.dnf, "cache")}, args...)
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	err := run.Run(c.ctx, run.Cmd{Args: full, Env: run.BaseEnv(), Stdout: w, Stderr: w})
	return out.String(), err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// usable asserts that both clients accept the live repositories.
func (c *clients) usable(what string) {
	c.t.Helper()
	if out, err := c.apt("sh", "-c", "rm -rf /var/lib/apt/lists/* && apt-get update"); err != nil {
		c.t.Fatalf("%s: apt-get update failed: %v\n%s", what, err, out)
	}
	if out, err := c.dnfCmd("makecache"); err != nil {
		c.t.Fatalf("%s: dnf makecache failed: %v\n%s", what, err, out)
	}
}

func TestRealClientsInstallUpgradeRollback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := t.TempDir()
	srv, err := Serve(root, "127.0.0.1:0")
	must(t, err)
	defer srv.Close()
	c := config(root, srv.URL, testKey(t))
	d1, r1 := pkgs(t, "1")
	s1, err := Prepare(ctx, c, []string{d1}, []string{r1})
	must(t, err)
	must(t, Activate(c, s1))
	cl := newClients(t, ctx, srv.URL)

	cl.usable("first publication")
	if out, err := cl.apt("apt-get", "install", "-y", "halvm-hello"); err != nil {
		t.Fatalf("apt-get install: %v\n%s", err, out)
	}
	if out, err := cl.dnfCmd("install", "halvm-hello"); err != nil {
		t.Fatalf("dnf install: %v\n%s", err, out)
	}
	d2, r2 := pkgs(t, "2")
	s2, err := Prepare(ctx, c, []string{d2}, []string{r2})
	must(t, err)
	must(t, Activate(c, s2))
	if out, err := cl.apt("sh", "-c", "apt-get update && apt-get install -y halvm-hello && dpkg-query -W -f '${Version}' halvm-hello"); err != nil || !strings.HasSuffix(out, "1.0.0-2") {
		t.Fatalf("apt upgrade to 1.0.0-2: %v\n%s", err, out)
	}
	if out, err := cl.dnfCmd("upgrade", "--refresh", "halvm-hello"); err != nil {
		t.Fatalf("dnf upgrade: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(cl.dnf, "usr/share/halvm-hello/payload")); err != nil || string(b) != "release 2\n" {
		t.Fatalf("dnf installroot payload = %q, %v", b, err)
	}
	if _, err := Rollback(c); err != nil {
		t.Fatal(err)
	}
	out, err := cl.apt("sh", "-c", "apt-get update && apt-cache policy halvm-hello")
	if err != nil || strings.Contains(out, "1.0.0-2 500") || !strings.Contains(out, "1.0.0-1 500") {
		t.Fatalf("after rollback apt should offer only 1.0.0-1: %v\n%s", err, out)
	}
}

// The child half of the kill test: prepare and activate a publication of
// the packages named in the environment, as the release's publish does.
func TestMain(m *testing.M) {
	if root := os.Getenv("REPOS_CHILD_ROOT"); root != "" {
		k, err := pgp.ReadKey([]byte(os.Getenv("REPOS_CHILD_KEY")), nil)
		if err == nil {
			c := config(root, os.Getenv("REPOS_CHILD_URL"), k)
			killAt := os.Getenv("REPOS_CHILD_KILL_AT")
			c.AfterStep = func(repo, step string) {
				if repo+":"+step == killAt {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
			var s Staged
			s, err = Prepare(context.Background(), c, strings.Split(os.Getenv("REPOS_CHILD_DEBS"), ","), strings.Split(os.Getenv("REPOS_CHILD_RPMS"), ","))
			if err == nil {
				err = Activate(c, s)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKillDuringPublish kills the publisher (kill -9) at times spread over
// a whole publish and checks after each kill that real apt and dnf can use
// the live repositories.
func TestKillDuringPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root := t.TempDir()
	srv, err := Serve(root, "127.0.0.1:0")
	must(t, err)
	defer srv.Close()
	k := testKey(t)
	c := config(root, srv.URL, k)
	d1, r1 := pkgs(t, "1")
	s1, err := Prepare(ctx, c, []string{d1}, []string{r1})
	must(t, err)
	must(t, Activate(c, s1))
	cl := newClients(t, ctx, srv.URL)
	cl.usable("before the kills")

	armored, err := k.ArmoredPrivate(nil)
	must(t, err)
	var debs, rpms []string
	for i := 2; i < 12; i++ {
		d, r := pkgs(t, fmt.Sprint(i))
		debs, rpms = append(debs, d), append(rpms, r)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "REPOS_CHILD_ROOT="+root, "REPOS_CHILD_URL="+srv.URL, "REPOS_CHILD_KEY="+string(armored),
			"REPOS_CHILD_DEBS="+strings.Join(debs, ","), "REPOS_CHILD_RPMS="+strings.Join(rpms, ","))
		return cmd
	}
	var points []string
	for _, repo := range []string{"apt", "dnf"} {
		for _, step := range publish.Steps {
			points = append(points, repo+":"+step)
		}
	}
	check := func(what string) {
		t.Helper()
		if err := (Apt{c}).Verify(filepath.Join(c.AptDir(), "current")); err != nil {
			t.Fatalf("%s: live apt repository does not verify: %v", what, err)
		}
		if err := (Dnf{c}).Verify(filepath.Join(c.DnfDir(), "current")); err != nil {
			t.Fatalf("%s: live dnf repository does not verify: %v", what, err)
		}
		cl.usable(what)
	}
	// A kill -9 after each step of each repository's publish.
	for _, at := range points {
		cmd := child()
		cmd.Env = append(cmd.Env, "REPOS_CHILD_KILL_AT="+at)
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || !ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("the publisher was not killed at %s: %v", at, err)
		}
		check("kill after " + at)
	}
	// And at times spread over a whole publish (inside the writers too).
	start := time.Now()
	if out, err := child().CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted child publish: %v\n%s", err, out)
	}
	full := time.Since(start)
	const timed = 8
	for i := 0; i < timed; i++ {
		at := full * time.Duration(i) / timed
		cmd := child()
		must(t, cmd.Start())
		time.Sleep(at)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		check(fmt.Sprintf("kill at %s of %s", at.Round(time.Millisecond), full.Round(time.Millisecond)))
	}
	t.Logf("%d kill -9 points (%d after publisher steps, %d at times spread over a %s publish): apt-get update and dnf makecache succeeded after every one",
		len(points)+timed, len(points), timed, full.Round(time.Millisecond))
}
