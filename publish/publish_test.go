package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileRepo is a tiny repository format: packages under pool/ and an INDEX
// of their sha256 written last. Verify checks every line of INDEX.
type fileRepo struct{ delay time.Duration }

func (r fileRepo) Write(_ context.Context, dst, live string, pkgs []string) error {
	os.MkdirAll(filepath.Join(dst, "pool"), 0o755)
	if live != "" {
		old, _ := filepath.Glob(filepath.Join(live, "pool", "*"))
		pkgs = append(old, pkgs...)
	}
	var index []string
	for _, p := range pkgs {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, "pool", filepath.Base(p))
		if old, err := os.ReadFile(target); err == nil && string(old) != string(data) {
			return fmt.Errorf("%s republished with different bytes", filepath.Base(p))
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		index = append(index, hex.EncodeToString(sum[:])+" "+filepath.Base(p))
		time.Sleep(r.delay)
	}
	sort.Strings(index)
	return os.WriteFile(filepath.Join(dst, "INDEX"), []byte(strings.Join(index, "\n")+"\n"), 0o644)
}

func (fileRepo) Verify(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "INDEX"))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		sum, name, _ := strings.Cut(line, " ")
		b, err := os.ReadFile(filepath.Join(dir, "pool", name))
		if err != nil {
			return err
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			return fmt.Errorf("%s: checksum mismatch", name)
		}
	}
	return nil
}

func pkg(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishAccumulatesAndRollsBack(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	if _, err := Current(root); err != ErrNothingPublished {
		t.Fatalf("empty root: %v", err)
	}
	p1, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "halvm_2.4.3-1", "one")}, Options{Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "halvm_2.4.3-2", "two")}, Options{Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(root, "current")
	if got, _ := filepath.Glob(filepath.Join(live, "pool", "*")); len(got) != 2 {
		t.Fatalf("second publication holds %v, want both versions", got)
	}
	// Republishing a name with different bytes is refused; live stays.
	if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "halvm_2.4.3-1", "changed")}, Options{Keep: 3}); err == nil || !strings.Contains(err.Error(), "different bytes") {
		t.Fatalf("republish with different bytes: %v", err)
	}
	if c, _ := Current(root); c != p2 {
		t.Fatalf("failed publish changed current to %s", c)
	}
	back, err := Rollback(root, fileRepo{})
	if err != nil || back != p1 {
		t.Fatalf("rollback = %s, %v (want %s)", back, err, p1)
	}
	if _, err := os.Stat(filepath.Join(live, "pool", "halvm_2.4.3-2")); err == nil {
		t.Fatal("rolled back tree still has the newer package")
	}
	if _, err := Rollback(root, fileRepo{}); err == nil || !strings.Contains(err.Error(), "nothing to roll back to") {
		t.Fatalf("rollback past the oldest: %v", err)
	}
	// Pruning keeps at most Keep publications and never the live one.
	for i := 3; i <= 6; i++ {
		if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, fmt.Sprintf("halvm_2.4.3-%d", i), "x")}, Options{Keep: 3}); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := List(root)
	if len(names) != 3 {
		t.Fatalf("kept %v, want 3", names)
	}
}

func TestUnverifiablePublicationIsNotPublished(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a", "a")}, Options{}); err != nil {
		t.Fatal(err)
	}
	before, _ := Current(root)
	_, err := Publish(ctx, root, brokenRepo{}, []string{pkg(t, "b", "b")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("err = %v", err)
	}
	if after, _ := Current(root); after != before {
		t.Fatal("an unverified publication went live")
	}
	if left, _ := filepath.Glob(filepath.Join(root, "publications", ".staging-*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
}

type brokenRepo struct{ fileRepo }

func (b brokenRepo) Write(ctx context.Context, dst, live string, pkgs []string) error {
	if err := b.fileRepo.Write(ctx, dst, live, pkgs); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, "pool", filepath.Base(pkgs[len(pkgs)-1])), []byte("tampered"), 0o644)
}

// The child half of the kill tests: publish, and SIGKILL ourselves at the
// named step (or let the parent kill us at a random time).
func TestMain(m *testing.M) {
	if root := os.Getenv("PUBLISH_CHILD_ROOT"); root != "" {
		at := os.Getenv("PUBLISH_CHILD_CRASH_AT")
		o := Options{Keep: 3, AfterStep: func(step string) {
			if step == at {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}}
		delay, _ := time.ParseDuration(os.Getenv("PUBLISH_CHILD_DELAY"))
		_, err := Publish(context.Background(), root, fileRepo{delay: delay}, strings.Split(os.Getenv("PUBLISH_CHILD_PKGS"), ","), o)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestKillAtEveryStepLeavesAUsableRepository(t *testing.T) {
	for _, at := range Steps {
		t.Run(at, func(t *testing.T) {
			root := t.TempDir()
			first, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "a_1", "a1")}, Options{Keep: 3})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PUBLISH_CHILD_ROOT="+root, "PUBLISH_CHILD_CRASH_AT="+at, "PUBLISH_CHILD_PKGS="+pkg(t, "a_2", "a2"))
			err = cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %s: %v", at, err)
			}
			live, err := Current(root)
			if err != nil {
				t.Fatal(err)
			}
			if err := (fileRepo{}).Verify(filepath.Join(root, "current")); err != nil {
				t.Fatalf("after kill at %s the live repository (%s) does not verify: %v", at, live, err)
			}
			switched := at == "switched" || at == "pruned"
			if switched == (live == first) {
				t.Fatalf("after kill at %s live is %s (first was %s)", at, live, first)
			}
			// The next publish cleans up and succeeds.
			if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "a_3", "a3")}, Options{Keep: 3}); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(root, "publications", ".staging-*")); len(left) != 0 {
				t.Fatalf("staging left behind: %v", left)
			}
		})
	}
}

func TestKillAtRandomTimes(t *testing.T) {
	root := t.TempDir()
	if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "base", "base")}, Options{Keep: 3}); err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for i := 0; i < 20; i++ {
		pkgs = append(pkgs, pkg(t, fmt.Sprintf("p%02d", i), fmt.Sprint(i)))
	}
	for trial := 0; trial < 12; trial++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PUBLISH_CHILD_ROOT="+root, "PUBLISH_CHILD_DELAY=2ms", "PUBLISH_CHILD_PKGS="+strings.Join(pkgs, ","))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(trial*5) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if err := (fileRepo{}).Verify(filepath.Join(root, "current")); err != nil {
			t.Fatalf("trial %d: live repository does not verify after kill: %v", trial, err)
		}
	}
}

func TestServeFollowsTheSwitch(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_1", "one")}, Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Serve(Handler(root), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/pool/a_1"); code != 200 || body != "one" {
		t.Fatalf("GET a_1 = %d %q", code, body)
	}
	if code, _ := get("/pool/a_2"); code != 404 {
		t.Fatalf("a_2 before publish: %d", code)
	}
	if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_2", "two")}, Options{}); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/pool/a_2"); code != 200 || body != "two" {
		t.Fatalf("GET a_2 after publish = %d %q", code, body)
	}
}

func TestSwitchesStampTheLiveTree(t *testing.T) {
	root := t.TempDir()
	clock := func(t time.Time) Options { return Options{clock: func() time.Time { return t }} }
	t1, t2, t3 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC)
	mtime := func() time.Time {
		fi, err := os.Stat(filepath.Join(root, "current", "INDEX"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "a", "a")}, clock(t1)); err != nil {
		t.Fatal(err)
	}
	if !mtime().Equal(t1) {
		t.Fatalf("INDEX mtime = %v, want the switch time %v (a web server's Last-Modified must change with each switch)", mtime(), t1)
	}
	if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "b", "b")}, clock(t2)); err != nil {
		t.Fatal(err)
	}
	if _, err := rollback(root, fileRepo{}, clock(t3)); err != nil {
		t.Fatal(err)
	}
	if !mtime().Equal(t3) {
		t.Fatalf("after rollback INDEX mtime = %v, want %v: clients holding t2 would get 304 Not Modified", mtime(), t3)
	}
}

// TestSwitchesWithinOneSecond: a rollback (or publish) in the same second
// as the switch before it still gets a later Last-Modified second, or
// clients holding the live publication would be told "304 Not Modified"
// and keep it (seen with real apt in repos.TestRealClientsInstallUpgradeRollback).
func TestSwitchesWithinOneSecond(t *testing.T) {
	root := t.TempDir()
	at := func(t time.Time) Options { return Options{clock: func() time.Time { return t }} }
	t1 := time.Date(2030, 1, 1, 0, 0, 0, 200_000_000, time.UTC)
	t2 := t1.Add(300 * time.Millisecond)
	t3 := t1.Add(600 * time.Millisecond)
	mtime := func() time.Time {
		fi, err := os.Stat(filepath.Join(root, "current", "INDEX"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "a", "a")}, at(t1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), root, fileRepo{}, []string{pkg(t, "b", "b")}, at(t2)); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC); !mtime().Equal(want) {
		t.Fatalf("second switch within the second: INDEX mtime = %v, want %v", mtime(), want)
	}
	if _, err := rollback(root, fileRepo{}, at(t3)); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 1, 0, 0, 2, 0, time.UTC); !mtime().Equal(want) {
		t.Fatalf("rollback within the same second: INDEX mtime = %v, want %v", mtime(), want)
	}
}

// TestHistoryIsOnlyWhatWentLive: a publication prepared but never made
// live is never a rollback target nor the previous release, the next
// Prepare removes it, and Prune keeps the last N live publications, the
// live one and the rollback target.
func TestHistoryIsOnlyWhatWentLive(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	o := Options{Keep: 10}
	p1, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_1", "1")}, o)
	must(t, err)
	p2, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_2", "2")}, o)
	must(t, err)
	staged, err := Prepare(ctx, root, fileRepo{}, []string{pkg(t, "a_3", "3")}, o)
	must(t, err)
	if un, _ := Unpublished(root); len(un) != 1 || un[0] != staged {
		t.Fatalf("unpublished = %v, want [%s]", un, staged)
	}
	if prev, _ := Previous(root, staged); prev != p2 {
		t.Fatalf("previous of the staged %s = %s, want the live %s", staged, prev, p2)
	}
	// Roll back to p1, then forward again: the staged one is skipped both ways.
	back, err := Rollback(root, fileRepo{})
	if err != nil || back != p1 {
		t.Fatalf("rollback = %s, %v; want %s", back, err, p1)
	}
	must(t, Activate(root, fileRepo{}, p2, o))
	if prev, _ := Previous(root, p2); prev != p1 {
		t.Fatalf("previous of %s = %s, want %s (never the staged %s)", p2, prev, p1, staged)
	}
	// The next Prepare removes the never-live publication.
	p3, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_4", "4")}, o)
	must(t, err)
	if _, err := os.Stat(filepath.Join(root, "publications", staged)); err == nil {
		t.Fatalf("the never-live %s survived the next publish", staged)
	}
	if live, _ := Live(root); strings.Join(live, " ") != strings.Join([]string{p1, p2, p3}, " ") {
		t.Fatalf("live history %v, want %s %s %s", live, p1, p2, p3)
	}
	// Prune to 2: p1 goes; p2 (the rollback target) and p3 (live) stay.
	var more []string
	for i := 5; i <= 6; i++ {
		n, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, fmt.Sprintf("a_%d", i), "x")}, o)
		must(t, err)
		more = append(more, n)
	}
	// Roll back once: live is more[0], the rollback target p3.
	if back, err := Rollback(root, fileRepo{}); err != nil || back != more[0] {
		t.Fatalf("rollback = %s, %v", back, err)
	}
	removed, err := Prune(root, 2)
	must(t, err)
	names, _ := List(root)
	want := []string{p3, more[0], more[1]}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("after prune to 2 (removed %v) kept %v, want %v: the rollback target %s and the live %s must stay", removed, names, want, p3, more[0])
	}
	if _, err := Prune(root, 1); err == nil {
		t.Fatal("prune to 1 accepted")
	}
}

// TestModesWhateverTheUmask: publish, switch, rollback and prune under
// umask 077 leave every file 0644 and every directory 0755.
func TestModesWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "root")
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, fmt.Sprintf("a_%d", i), "x")}, Options{Keep: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// An old publication made 0700 (before modes were explicit) is fixed
	// when a rollback switches to it.
	prev, _ := Previous(root, mustCurrent(t, root))
	must(t, os.Chmod(filepath.Join(root, "publications", prev), 0o700))
	if _, err := Rollback(root, fileRepo{}); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		if d.IsDir() && fi.Mode().Perm() != DirMode || d.Type().IsRegular() && fi.Mode().Perm() != FileMode {
			t.Errorf("%s is %04o", p, fi.Mode().Perm())
		}
		return nil
	})
	must(t, err)
}

func mustCurrent(t *testing.T, root string) string {
	c, err := Current(root)
	must(t, err)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestKillBeforeRecordingTheSwitch: a publisher killed after switching
// but before recording the switch in the history leaves a live publication
// the next publish records, never removes, and rolls back to.
func TestKillBeforeRecordingTheSwitch(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	p1, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_1", "1")}, Options{})
	must(t, err)
	p2, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_2", "2")}, Options{})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, "history"), []byte(p1+"\n"), 0o644))
	if _, err := Publish(ctx, root, fileRepo{}, []string{pkg(t, "a_3", "3")}, Options{}); err != nil {
		t.Fatal(err)
	}
	if back, err := Rollback(root, fileRepo{}); err != nil || back != p2 {
		t.Fatalf("rollback = %s, %v; want %s, live before the last publish", back, err, p2)
	}
}
