package publish

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// Handler serves the live publication. Each request resolves the
// `current` symlink anew, so a switch is seen atomically by new requests.
func Handler(root string) http.Handler {
	return http.FileServer(http.Dir(filepath.Join(root, currentLink)))
}

// Server is a running HTTP server of a publish root.
type Server struct {
	URL string
	srv *http.Server
	err chan error
}

// Serve starts serving h on addr (e.g. 127.0.0.1:0) and returns at once;
// Handler(root) serves one publish root.
func Serve(h http.Handler, addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving on %s: %w", addr, err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, err: make(chan error, 1)}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.err; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
