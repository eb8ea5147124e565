package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
