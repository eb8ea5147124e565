// Package registry runs a throwaway OCI registry on a loopback port: the
// demo pushes its images there, the tests push and pull there, and a
// verification re-serves a release's saved images from one.
package registry

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a throwaway OCI registry on a loopback port (the demo's and
// the tests'): go-containerregistry's reference registry, manifests in
// memory, blobs on disk below a directory.
type Registry struct {
	Addr string // host:port, e.g. 127.0.0.1:40123
	dir  string
	srv  *http.Server
	done chan error
}

// Start serves a fresh registry on a free 127.0.0.1 port with
// blobs below blobDir (emptied first).
func Start(blobDir string) (*Registry, error) {
	if err := os.RemoveAll(blobDir); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)), ggcr.WithBlobHandler(ggcr.NewDiskBlobHandler(blobDir)))
	r := &Registry{Addr: ln.Addr().String(), dir: blobDir, srv: &http.Server{Handler: h}, done: make(chan error, 1)}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the registry and removes its blobs.
func (r *Registry) Close() error {
	err := r.srv.Close()
	if serr := <-r.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if rerr := os.RemoveAll(r.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
