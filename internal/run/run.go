// Package run is the one way this project starts external programs (git,
// make, gpgv, rpm, qemu, docker, ...): context-cancellable, with an explicit
// environment, the whole process group killed on cancellation, stderr
// captured into errors, and secrets redacted from everything it reports.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd describes one program run. Env is the complete environment of the
// child: nothing is inherited from this process unless the caller put it
// there (see Inherit).
type Cmd struct {
	Args    []string  // program and arguments; Args[0] is looked up in Env's PATH
	Dir     string    // working directory; "" is the current one
	Env     []string  // complete environment, KEY=VALUE
	Stdin   io.Reader // nil is /dev/null
	Stdout  io.Writer // nil discards (use Output to capture)
	Stderr  io.Writer // also receives stderr when set; it is captured for errors anyway
	Secrets []string  // strings never to appear in errors or logs
	// WaitDelay bounds how long Run waits for output pipes after the process
	// was killed on cancellation; 0 means 5 seconds.
	WaitDelay time.Duration
}

// Error is a failed run: which command, where, how it ended and the tail
// of what it printed on stderr, with secrets redacted.
type Error struct {
	Command string
	Dir     string
	Err     error
	Stderr  string
	Exit    int // the exit status; -1 when killed by a signal or never started
}

// ExitCode is the program's exit status, -1 when it was killed or never ran.
func (e *Error) ExitCode() int { return e.Exit }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "running %s", e.Command)
	if e.Dir != "" {
		fmt.Fprintf(&b, " in %s", e.Dir)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// maxStderr is how much of the end of stderr an error keeps.
const maxStderr = 4096

// Run runs c and waits for it. On failure the error is an *Error.
func Run(ctx context.Context, c Cmd) error {
	if len(c.Args) == 0 {
		return errors.New("run: no program given")
	}
	path, err := lookPath(c.Args[0], c.Env)
	if err != nil {
		return &Error{Command: redact(quote(c.Args), c.Secrets), Dir: c.Dir, Err: err, Exit: -1}
	}
	cmd := exec.CommandContext(ctx, path, c.Args[1:]...)
	cmd.Args[0] = c.Args[0]
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	var tail tailBuffer
	if c.Stderr != nil {
		stderr := c.Stderr
		if c.Stdout != nil {
			// Both are copied from pipes by goroutines of their own; one
			// writer given for both (a bytes.Buffer, say) must not see
			// concurrent writes, which lose output.
			var mu sync.Mutex
			cmd.Stdout = &lockedWriter{mu: &mu, w: c.Stdout}
			stderr = &lockedWriter{mu: &mu, w: c.Stderr}
		}
		cmd.Stderr = io.MultiWriter(&tail, stderr)
	} else {
		cmd.Stderr = &tail
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole process group: make, qemu and friends fork.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = c.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	err = cmd.Run()
	if err == nil {
		return nil
	}
	exit := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	}
	runErr := errors.New(redact(err.Error(), c.Secrets))
	if ctxErr := ctx.Err(); ctxErr != nil {
		runErr = fmt.Errorf("%w (%v)", ctxErr, runErr)
	}
	return &Error{
		Command: redact(quote(c.Args), c.Secrets),
		Dir:     c.Dir,
		Err:     runErr,
		Stderr:  redact(tail.String(), c.Secrets),
		Exit:    exit,
	}
}

// Output runs c and returns its standard output.
func Output(ctx context.Context, c Cmd) ([]byte, error) {
	var out bytes.Buffer
	if c.Stdout != nil {
		c.Stdout = io.MultiWriter(&out, c.Stdout)
	} else {
		c.Stdout = &out
	}
	err := Run(ctx, c)
	return out.Bytes(), err
}

// Inherit returns the named variables of this process's environment that
// are set, as KEY=VALUE, for building an explicit child environment. It is
// the one place outside internal/config that reads the environment (see
// TestNoEnvironmentReadingOutsideConfig): what a child inherits is the
// runner's business.
func Inherit(names ...string) []string {
	var env []string
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			env = append(env, n+"="+v)
		}
	}
	return env
}

// BaseEnv is a small, predictable environment for tools that need only a
// PATH and a HOME: PATH and HOME inherited, LC_ALL=C, TZ=UTC.
func BaseEnv(extra ...string) []string {
	env := append(Inherit("PATH", "HOME"), "LC_ALL=C", "TZ=UTC")
	return Merge(env, extra...)
}

// Merge returns env with the KEY=VALUE pairs of extra set (replacing any
// earlier value of the same key), sorted by key so that the environment a
// child sees never depends on the order this process built it in.
func Merge(env []string, extra ...string) []string {
	m := map[string]string{}
	for _, kv := range append(append([]string{}, env...), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out
}

// Lookup returns the value of key in env.
func Lookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// LookPath finds a program as Run does for a child whose environment is
// env: a name with a slash as is, else in env's PATH.
func LookPath(name string, env []string) (string, error) { return lookPath(name, env) }

func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, _ := Lookup(env, "PATH")
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			continue
		}
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH %q: install it (see `go run mage.go preflight`)", name, path)
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>*?()[]{}") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// lockedWriter serializes writes to w with the writers sharing mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tailBuffer keeps the last maxStderr bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*maxStderr {
		t.b = append([]byte(nil), t.b[len(t.b)-maxStderr:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if len(t.b) > maxStderr {
		return "..." + string(t.b[len(t.b)-maxStderr:])
	}
	return string(t.b)
}
