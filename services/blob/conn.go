package blob

import (
	"errors"
	"io"
	"net"
)

// bodyConn is a connection to the store that sends a request body held in
// memory (an upload part) with one write, straight from its buffer.
//
// net/http sends a body of known length as io.Copy(conn, LimitReader(body,
// ContentLength)); the LimitReader hides the body's WriteTo, so the copy
// goes through a 32 KiB buffer: a second pass over every byte uploaded,
// and a system call per 32 KiB. Here a limited body whose reader has
// WriteTo writes itself to the connection, through a guard that refuses
// to send more than the limit: a body longer than its stated length fails
// the request (net/http fails it too), and never spills into the next
// request on the connection.
type bodyConn struct{ net.Conn }

func (c bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if wt, ok := lr.R.(io.WriterTo); ok {
			g := &limitWriter{w: c.Conn, left: lr.N}
			n, err := wt.WriteTo(g)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// errBodyTooLong: a request body held more than its stated length.
var errBodyTooLong = errors.New("object store: request body longer than its length")

// limitWriter passes on at most left bytes.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (g *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > g.left {
		n, err := g.w.Write(p[:g.left])
		g.left -= int64(n)
		if err == nil {
			err = errBodyTooLong
		}
		return n, err
	}
	n, err := g.w.Write(p)
	g.left -= int64(n)
	return n, err
}
