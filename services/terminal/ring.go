package terminal

import (
	"bytes"
	"unicode/utf8"
)

// ringMinAlloc is the first allocation of a ring. Most sessions print a
// prompt and a few commands, so the full scrollback is only paid for by
// sessions that actually produce that much output.
const ringMinAlloc = 4 << 10

// cleanStartWindow is how far into a wrapped ring a snapshot looks for a
// line start. Beyond it the output is probably one endless line (a
// progress bar, binary noise) and cutting mid-line is the lesser evil.
const cleanStartWindow = 4 << 10

// ring keeps the last max bytes of a session's output so a viewer that
// attaches later, or fell behind, can redraw the screen. It is not safe
// for concurrent use; the session lock guards it, and release must be the
// last call: the storage may be unmapped (ringmem_unix.go).
type ring struct {
	max    int
	buf    []byte // linear while growing; circular once it has reached max
	mapped bool   // buf is a mapping of its own
	head   int    // index of the oldest byte
	size   int
	// dropped is set once bytes have fallen off the front: from then on the
	// oldest byte is an arbitrary cut, not the start of the output.
	dropped bool
}

func newRing(limit int) ring { return ring{max: limit} }

// write appends p, discarding the oldest bytes beyond max.
func (r *ring) write(p []byte) {
	if len(p) == 0 || r.max <= 0 {
		return
	}
	if len(p) >= r.max {
		if r.size > 0 || len(p) > r.max {
			r.dropped = true
		}
		r.grow(r.max)
		copy(r.buf, p[len(p)-r.max:])
		r.head, r.size = 0, r.max
		return
	}
	if need := r.size + len(p); need > len(r.buf) && len(r.buf) < r.max {
		r.grow(min(max(need, 2*len(r.buf), ringMinAlloc), r.max))
	}
	c := len(r.buf)
	tail := r.head + r.size
	if tail >= c {
		tail -= c
	}
	n := copy(r.buf[tail:], p)
	copy(r.buf, p[n:])
	r.size += len(p)
	if r.size > c {
		r.head = (r.head + r.size - c) % c
		r.size = c
		r.dropped = true
	}
}

// grow reallocates to n bytes, linearising the contents.
func (r *ring) grow(n int) {
	if n <= len(r.buf) {
		return
	}
	nb, mapped := allocRingBuf(n)
	r.copyFrom(nb, 0)
	freeRingBuf(r.buf, r.mapped)
	r.buf, r.head, r.mapped = nb, 0, mapped
}

// release gives the storage back; the ring is empty afterwards.
func (r *ring) release() {
	freeRingBuf(r.buf, r.mapped)
	*r = ring{max: r.max}
}

// at returns the i-th oldest byte.
func (r *ring) at(i int) byte {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return r.buf[j]
}

// copyFrom copies the contents from logical offset off on into dst.
func (r *ring) copyFrom(dst []byte, off int) int {
	if off >= r.size {
		return 0
	}
	start := r.head + off
	if start >= len(r.buf) {
		start -= len(r.buf)
	}
	end := start + r.size - off
	if end <= len(r.buf) {
		return copy(dst, r.buf[start:end])
	}
	n := copy(dst, r.buf[start:])
	return n + copy(dst[n:], r.buf[:end-len(r.buf)])
}

// cleanStart is where a snapshot should begin. Untouched output starts
// where the shell started it. Once the front was cut off, skip to after
// the first newline near the front (so the screen does not start with half
// a line or half an escape sequence), and never start on a UTF-8
// continuation byte.
func (r *ring) cleanStart() int {
	if !r.dropped {
		return 0
	}
	off := 0
	window := min(r.size, cleanStartWindow)
	first := min(window, len(r.buf)-r.head)
	if i := bytes.IndexByte(r.buf[r.head:r.head+first], '\n'); i >= 0 {
		off = i + 1
	} else if i := bytes.IndexByte(r.buf[:window-first], '\n'); i >= 0 {
		off = first + i + 1
	}
	// A continuation byte can only be skipped up to UTFMax-1 times before
	// the bytes are not UTF-8 anyway.
	for k := 0; k < utf8.UTFMax-1 && off < r.size && r.at(off)&0xC0 == 0x80; k++ {
		off++
	}
	return off
}

// snapshot returns a fresh copy of the contents from a clean start.
func (r *ring) snapshot() []byte {
	off := r.cleanStart()
	out := make([]byte, r.size-off)
	r.copyFrom(out, off)
	return out
}
