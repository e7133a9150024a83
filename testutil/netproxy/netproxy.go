// Package netproxy is a stream proxy for fault tests: it forwards every
// connection from a listener to an upstream address, and can cut them all,
// refuse new ones, or alter what clients send. It imports nothing of the
// app, so any package's tests can use it.
package netproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards connections to one upstream address.
type Proxy struct {
	ln              net.Listener
	network, target string
	rewrite         atomic.Pointer[func([]byte)]
	wg              sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// Start serves ln, dialling network/target for every connection. The proxy
// stops, and every connection through it is closed, when the test ends.
func Start(t testing.TB, ln net.Listener, network, target string) *Proxy {
	t.Helper()
	p := &Proxy{ln: ln, network: network, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Break()
		p.wg.Wait()
	})
	return p
}

// StartTCP listens on a free loopback port and forwards to target.
func StartTCP(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, ln, "tcp", target)
}

// Addr is where clients connect.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// SetRewrite makes f change, in place, every chunk a client sends before
// it goes upstream; nil stops it. Chunks are whatever one read returned.
func (p *Proxy) SetRewrite(f func([]byte)) {
	if f == nil {
		p.rewrite.Store(nil)
		return
	}
	p.rewrite.Store(&f)
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial(p.network, p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(up, c, true)
		go p.pipe(c, up, false)
	}
}

// pipe copies src to dst until either ends, then closes both.
func (p *Proxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	if fromClient {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if f := p.rewrite.Load(); f != nil {
					(*f)(buf[:n])
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	} else {
		_, _ = io.Copy(dst, src)
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Break cuts every open connection and refuses new ones until Restore.
func (p *Proxy) Break() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
