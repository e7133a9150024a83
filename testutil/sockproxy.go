package testutil

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// EngineProxy forwards a unix socket to the real Docker socket and can cut
// every connection through it, as an engine restart or a network fault
// would, without touching the engine other tests use.
type EngineProxy struct {
	Host string // DOCKER_HOST value for the app

	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// NewEngineProxy starts a proxy to /var/run/docker.sock.
func NewEngineProxy(t testing.TB) *EngineProxy {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); len(h) > 7 && h[:7] == "unix://" {
		target = h[7:]
	}
	p := &EngineProxy{Host: "unix://" + sock, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Break() })
	return p
}

func (p *EngineProxy) serve() {
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
		up, err := net.Dial("unix", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *EngineProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Break cuts every open connection and refuses new ones until Restore.
func (p *EngineProxy) Break() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore lets connections through again.
func (p *EngineProxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
