package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"aicode/testutil/netproxy"
)

// EngineProxy forwards a unix socket to the real Docker socket and can cut
// every connection through it (Break, Restore), as an engine restart or a
// network fault would, without touching the engine other tests use.
type EngineProxy struct {
	Host string // DOCKER_HOST value for the app
	*netproxy.Proxy
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
	return &EngineProxy{Host: "unix://" + sock, Proxy: netproxy.Start(t, ln, "unix", target)}
}
