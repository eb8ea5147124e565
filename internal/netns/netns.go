// Package netns gives a process a network of its own that reaches only
// the servers it is given: a named network namespace (ip netns) with its
// own loopback, where chosen 127.0.0.1 addresses of the host are forwarded.
// Everything else of the host's network (other loopback ports, other
// interfaces, the internet) is out of reach from inside.
//
// The forwarders listen inside the namespace and dial the host's server,
// so the servers stay where they are and the addresses (which a release
// bakes into what it publishes) stay the same inside and out.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/halvm/halvm-release/internal/run"
)

// NS is a named network namespace with its loopback up.
type NS struct {
	Name string

	mu        sync.Mutex
	listeners []net.Listener
	wg        sync.WaitGroup
	closed    atomic.Bool
}

var seq atomic.Int64

// New makes a fresh namespace named after prefix and this process (needs
// root and iproute2's ip). Close removes it.
func New(ctx context.Context, prefix string) (*NS, error) {
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if err := run.Run(ctx, run.Cmd{Args: []string{"ip", "netns", "add", name}, Env: run.BaseEnv()}); err != nil {
		return nil, fmt.Errorf("making the network namespace %s (needs root and iproute2): %w", name, err)
	}
	ns := &NS{Name: name}
	if err := run.Run(ctx, run.Cmd{Args: []string{"ip", "-n", name, "link", "set", "lo", "up"}, Env: run.BaseEnv()}); err != nil {
		ns.Close()
		return nil, fmt.Errorf("bringing up the loopback of the network namespace %s: %w", name, err)
	}
	return ns, nil
}

// Exec is the prefix that runs a command inside the namespace.
func (ns *NS) Exec(args ...string) []string {
	return append([]string{"ip", "netns", "exec", ns.Name}, args...)
}

// Do runs f on an OS thread switched into the namespace: sockets f opens
// belong to the namespace for their whole life.
func (ns *NS) Do(f func() error) error {
	target, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("this thread's network namespace: %w", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the network namespace %s: %w", ns.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine: no
			// other goroutine ever runs in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leaving the network namespace %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Forward makes the host's TCP server at addr (127.0.0.1:port) answer at
// the same address inside the namespace.
func (ns *NS) Forward(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return fmt.Errorf("forwarding %q into %s: want an IP address and port", addr, ns.Name)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("forwarding %q into %s: bad port", addr, ns.Name)
	}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return fmt.Errorf("forwarding %s into %s: %w", addr, ns.Name, err)
	}
	ns.mu.Lock()
	ns.listeners = append(ns.listeners, ln)
	ns.mu.Unlock()
	ns.wg.Add(1)
	go func() {
		defer ns.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go pipe(c, addr)
		}
	}()
	return nil
}

// pipe joins a connection made inside the namespace to the host's server.
func pipe(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}

// Close stops the forwarders and removes the namespace.
func (ns *NS) Close() error {
	if ns.closed.Swap(true) {
		return nil
	}
	ns.mu.Lock()
	for _, ln := range ns.listeners {
		ln.Close()
	}
	ns.mu.Unlock()
	ns.wg.Wait()
	if err := run.Run(context.Background(), run.Cmd{Args: []string{"ip", "netns", "del", ns.Name}, Env: run.BaseEnv()}); err != nil {
		return fmt.Errorf("removing the network namespace %s: %w", ns.Name, err)
	}
	return nil
}
