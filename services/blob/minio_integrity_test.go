package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aicode/testutil/miniotest"
)

// corruptingProxy forwards loopback TCP to target, turning every 0xFF byte
// the client sends into 0xFE when corrupt is set. HTTP headers never hold
// 0xFF, so only bodies change and every signature still matches.
type corruptingProxy struct {
	ln      net.Listener
	target  string
	corrupt atomic.Bool
	altered atomic.Int64
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func startCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *corruptingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer s.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 && p.corrupt.Load() {
					for i, b := range buf[:n] {
						if b == 0xFF {
							buf[i] = 0xFE
							p.altered.Add(1)
						}
					}
				}
				if n > 0 {
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			_, _ = io.Copy(c, s)
		}()
	}
}

// TestMinIORefusesCorruptedUpload: uploads are not hashed into the
// signature, so the per-part CRC32C is what catches a body altered on the
// way. One byte changed in a 12 MiB object must fail the Put and leave
// no object; the same bytes through the same proxy, unaltered, store fine.
func TestMinIORefusesCorruptedUpload(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.BucketName(t)
	proxy := startCorruptingProxy(t, srv.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := NewMinIO(ctx, MinIOOptions{Endpoint: proxy.ln.Addr().String(), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: bucket, PartSize: minPartSize})
	if err != nil {
		t.Fatalf("NewMinIO: %v", err)
	}
	data := make([]byte, 12<<20) // three parts of 5 MiB at most
	data[7<<20+123] = 0xFF       // in the second part

	proxy.corrupt.Store(true)
	if _, err := m.Put(ctx, "integrity/bad", bytes.NewReader(data)); err == nil {
		t.Fatal("Put of an upload altered on the way succeeded")
	} else {
		t.Logf("altered upload refused: %v", err)
	}
	if proxy.altered.Load() == 0 {
		t.Fatal("the proxy altered nothing: the test proves nothing")
	}
	if _, err := m.Stat(ctx, "integrity/bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after a refused upload: %v, want ErrNotFound", err)
	}

	proxy.corrupt.Store(false)
	if _, err := m.Put(ctx, "integrity/good", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put through the proxy, unaltered: %v", err)
	}
	rc, err := m.Open(ctx, "integrity/good")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (equal %v): %v", len(got), bytes.Equal(got, data), err)
	}
}
