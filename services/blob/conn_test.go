package blob

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// recConn records the writes made to it.
type recConn struct {
	net.Conn
	writes []int
	buf    bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.buf.Write(p)
}

// A body held in memory goes out in one write, as net/http hands it over
// (a LimitedReader of the request's length around the body).
func TestBodyConnSendsBodyInOneWrite(t *testing.T) {
	body := bytes.Repeat([]byte("part"), 1<<20) // 4 MiB
	c := &recConn{}
	lr := &io.LimitedReader{R: io.NopCloser(bytes.NewReader(body)).(io.Reader), N: int64(len(body))}
	n, err := bodyConn{c}.ReadFrom(lr)
	if err != nil || n != int64(len(body)) || lr.N != 0 {
		t.Fatalf("ReadFrom: %d %v (left %d)", n, err, lr.N)
	}
	if len(c.writes) != 1 || !bytes.Equal(c.buf.Bytes(), body) {
		t.Fatalf("%d writes %v; sent %d bytes", len(c.writes), c.writes, c.buf.Len())
	}

	// A body longer than its length: exactly the length is sent, then
	// an error, so the request fails (as net/http fails it) rather than
	// spill into the next.
	c = &recConn{}
	lr = &io.LimitedReader{R: bytes.NewReader(body), N: 1000}
	n, err = bodyConn{c}.ReadFrom(lr)
	if !errors.Is(err, errBodyTooLong) || n != 1000 || c.buf.Len() != 1000 {
		t.Fatalf("long body: %d %v, sent %d", n, err, c.buf.Len())
	}

	// A reader without WriteTo is copied as io.Copy would.
	c = &recConn{}
	src := struct{ io.Reader }{strings.NewReader("abc" + strings.Repeat("x", 100<<10))}
	n, err = bodyConn{c}.ReadFrom(io.LimitReader(src, 50<<10))
	if err != nil || n != 50<<10 || c.buf.Len() != 50<<10 {
		t.Fatalf("plain reader: %d %v, sent %d", n, err, c.buf.Len())
	}
}
