package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOutputAndExplicitEnv(t *testing.T) {
	t.Setenv("HALVM_LEAK", "should-not-reach-child")
	out, err := Output(context.Background(), Cmd{Args: []string{"sh", "-c", "echo $FOO; env"}, Env: BaseEnv("FOO=bar")})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.HasPrefix(s, "bar\n") || strings.Contains(s, "HALVM_LEAK") || !strings.Contains(s, "LC_ALL=C") {
		t.Fatalf("child saw an unexpected environment:\n%s", s)
	}
}

func TestErrorCarriesStderrAndRedactsSecrets(t *testing.T) {
	secret := "hunter2-passphrase"
	err := Run(context.Background(), Cmd{
		Args:    []string{"sh", "-c", "echo bad thing with " + secret + " >&2; exit 3"},
		Env:     BaseEnv(),
		Dir:     os.TempDir(),
		Secrets: []string{secret},
	})
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("want *Error, got %v", err)
	}
	msg := err.Error()
	if re.ExitCode() != 3 {
		t.Errorf("exit code = %d, want 3", re.ExitCode())
	}
	if strings.Contains(msg, secret) || !strings.Contains(msg, "[redacted]") || !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "bad thing") || !strings.Contains(msg, "in "+os.TempDir()) {
		t.Fatalf("error message wrong: %s", msg)
	}
}

func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "grandchild-survived")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The grandchild would write the marker after 2 s unless the group is killed.
	err := Run(ctx, Cmd{Args: []string{"sh", "-c", "(sleep 2; touch " + marker + ") & sleep 30"}, Env: BaseEnv()})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline error, got %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("cancellation did not stop the child promptly")
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a grandchild survived cancellation")
	}
}

func TestMissingProgram(t *testing.T) {
	err := Run(context.Background(), Cmd{Args: []string{"no-such-program-halvm"}, Env: []string{"PATH=/usr/bin"}})
	if err == nil || !strings.Contains(err.Error(), "no-such-program-halvm not found") {
		t.Fatalf("got %v", err)
	}
}

func TestMergeSortsAndOverrides(t *testing.T) {
	got := strings.Join(Merge([]string{"B=1", "A=2"}, "B=3", "C=4"), " ")
	if got != "A=2 B=3 C=4" {
		t.Fatalf("Merge = %s", got)
	}
}

// TestOneWriterForBoth: one buffer given as Stdout and Stderr receives
// both streams whole (its pipes are copied concurrently).
func TestOneWriterForBoth(t *testing.T) {
	for i := 0; i < 20; i++ {
		var b bytes.Buffer
		if err := Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo out; echo err >&2; echo err2 >&2"}, Env: BaseEnv(), Stdout: &b, Stderr: &b}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"out\n", "err\n", "err2\n"} {
			if !strings.Contains(b.String(), want) {
				t.Fatalf("run %d: output %q lacks %q", i, b.String(), want)
			}
		}
	}
}
