package netns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// TestOnlyForwardedServersAnswer: inside the namespace, the forwarded
// server answers at its host address, by a process started with Exec and
// by a socket opened in Do; another server of the host's loopback does
// not; the namespace is gone after Close.
func TestOnlyForwardedServersAnswer(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "iproute2", "ip")
	serve := func(text string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, text) }))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	shown, hidden := serve("shown"), serve("hidden")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := New(ctx, "halvm-test")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Forward(shown); err != nil {
		t.Fatal(err)
	}
	// bash's /dev/tcp: a plain client with nothing to install.
	get := func(addr string) ([]byte, error) {
		host, port, _ := net.SplitHostPort(addr)
		script := `exec 3<>/dev/tcp/` + host + `/` + port + ` && printf 'GET / HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && timeout 10 cat <&3`
		return run.Output(ctx, run.Cmd{Args: ns.Exec("bash", "-c", script), Env: run.BaseEnv()})
	}
	got, err := get(shown)
	if err != nil || !strings.HasSuffix(string(got), "\r\n\r\nshown") {
		t.Fatalf("the forwarded server from a process inside %s: %q, %v", ns.Name, got, err)
	}
	if out, err := get(hidden); err == nil {
		t.Fatalf("a server that was not forwarded answered inside %s: %q", ns.Name, out)
	}
	if err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", shown, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(string(b), "shown") {
			return fmt.Errorf("answer %q", b)
		}
		if _, err := net.DialTimeout("tcp", hidden, 2*time.Second); err == nil {
			return fmt.Errorf("%s was reachable", hidden)
		}
		return nil
	}); err != nil {
		t.Fatalf("a socket opened in Do: %v", err)
	}
	if err := ns.Forward("localhost:80"); err == nil {
		t.Error("Forward took a host name")
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(ctx, run.Cmd{Args: []string{"ip", "netns", "pids", ns.Name}, Env: run.BaseEnv()}); err == nil {
		t.Errorf("the namespace %s is still there after Close", ns.Name)
	}
}
