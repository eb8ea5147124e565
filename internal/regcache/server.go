package regcache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/halvm/halvm-release/internal/run"
)

// Server is Debian's docker-registry (the distribution registry) serving a
// storage directory on a free 127.0.0.1 port: the tests' and the local
// rehearsal's shared cache.
type Server struct {
	Addr    string // host:port
	Storage string // the filesystem storage's root directory
	cancel  context.CancelFunc
	done    chan error
}

// ServerCommand is the registry program (Debian package docker-registry).
const ServerCommand = "docker-registry"

// StartServer starts docker-registry with its storage below dir and waits
// until it answers /v2/.
func StartServer(ctx context.Context, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", ServerCommand, err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Addr: addr, Storage: filepath.Join(dir, "data"), done: make(chan error, 1)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting %s: %w", ServerCommand, err)
	}
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", s.Storage, addr)
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() {
		s.done <- run.Run(rctx, run.Cmd{Args: []string{ServerCommand, "serve", cfg}, Env: run.BaseEnv()})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case rerr := <-s.done:
			cancel()
			return nil, fmt.Errorf("%s exited before answering on %s: %v (is the Debian package docker-registry installed?)", ServerCommand, addr, rerr)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s did not answer on %s within 30s: %v", ServerCommand, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server and waits for it (idempotent).
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	<-s.done
}

// BlobPath is where the filesystem storage keeps a blob's bytes
// (sha256:<hex>), for tests that damage one.
func (s *Server) BlobPath(digest string) string {
	hex := digest[len("sha256:"):]
	return filepath.Join(s.Storage, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}
