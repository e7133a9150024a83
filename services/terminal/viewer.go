package terminal

import (
	"context"
	"sync"
)

// queueMinAlloc is a viewer queue's first allocation; most output comes
// in small chunks that are taken at once.
const queueMinAlloc = 4 << 10

// queueKeep is the most a drained viewer queue keeps allocated. A queue
// that needs more takes a flood buffer from the shared pool instead, and
// gives it back (or hands it out as a frame) once drained: a flood would
// otherwise allocate its own size in queue arrays, and the garbage
// collector's work cost more than the copying.
const queueKeep = 16 << 10

// directMax bounds what goes out through a DirectFunc: a frame that small, with that
// little unacknowledged, fits a socket's send buffer, so the write cannot
// block the reader even if the client has stopped reading.
const directMax = 4 << 10

// DirectFunc writes one small output frame to the client straight away,
// from the session's reader. It must not wait for anything: when the
// connection is busy it returns false and the bytes are queued instead.
// It writes p before returning and keeps no reference to it.
type DirectFunc func(p []byte) bool

// frameBufs holds the buffers data frames are handed out in: a flood of
// output would otherwise allocate its own size in frames, and the garbage
// collector's work would cost more than the copying.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// Frame is what a viewer gets next.
type Frame struct {
	// Data is terminal output; for a Resync frame, the ring snapshot. It
	// stays valid until the viewer's next call to Next, which takes the
	// buffer back: write it out, or copy it, before then.
	Data []byte
	// Resync: the client must reset its screen and write Data (first
	// frame, and after the viewer fell behind).
	Resync bool
	// Exit: the session ended; Reason says why; no more frames follow.
	Exit   bool
	Reason string
}

// Viewer is one client attached to a session.
type Viewer struct {
	s        *Session
	canWrite bool
	// wake holds at most one pending "something changed"; Next rechecks
	// its state after every wake, so none is ever lost.
	wake chan struct{}
	once sync.Once

	mu       sync.Mutex
	q        []byte // queued output, from off on
	off      int
	qbox     *[]byte // q's array when it came from floodBufs, else nil
	resync   bool    // the queue was dropped (or never started): send a snapshot next
	inflight int     // bytes handed out and not yet acknowledged
	detached bool
	ended    bool // the session ended; exit after the queue drains
	reason   string
	exitSent bool

	direct DirectFunc
	// lent is the buffer of the data frame handed out last; the next call
	// to Next puts it back in its pool: floodBufs if lentFlood, else
	// frameBufs.
	lent      *[]byte
	lentFlood bool
	// busy: Next handed out a frame the caller may not have written yet;
	// a direct write now would overtake it. The next call to Next means
	// it was written.
	busy bool

	// For tests: the most ever queued, how often the queue was dropped,
	// and how many frames went out directly.
	peak, drops, directs int
}

// CanWrite reports whether the viewer may send input and resize.
func (v *Viewer) CanWrite() bool { return v.canWrite }

// SetDirect lets the session's reader write small output straight to an
// idle client, which saves a hand-off to the goroutine calling Next (a
// thread wake-up per keystroke echo). Call it before the first Next.
func (v *Viewer) SetDirect(fn DirectFunc) {
	v.mu.Lock()
	v.direct = fn
	v.mu.Unlock()
}

func (v *Viewer) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// offer queues p, called by the reader under the session lock. It never
// blocks on the client: a queue that would grow past limit is dropped and
// the viewer resyncs from the ring, which already holds these bytes.
func (v *Viewer) offer(p []byte, limit int) {
	v.mu.Lock()
	if v.detached || v.resync || v.ended {
		v.mu.Unlock()
		return
	}
	queued := len(v.q) - v.off
	if queued == 0 && v.direct != nil && !v.busy && v.inflight+len(p) <= directMax && v.direct(p) {
		v.inflight += len(p)
		v.directs++
		v.mu.Unlock()
		return
	}
	if queued+len(p) > limit {
		// Released rather than kept: a viewer this far behind may stay
		// stalled for a long time.
		v.releaseQueueLocked()
		v.resync = true
		v.drops++
	} else {
		v.enqueue(p, limit)
		v.peak = max(v.peak, queued+len(p))
	}
	v.mu.Unlock()
	v.signal()
}

// enqueue appends p, reusing the backing array and never growing it past
// what limit needs, so a burst does not leave twice the limit allocated.
// Beyond queueKeep the array is a pooled flood buffer when one is large
// enough.
func (v *Viewer) enqueue(p []byte, limit int) {
	if len(v.q)+len(p) <= cap(v.q) {
		v.q = append(v.q, p...)
		return
	}
	queued := len(v.q) - v.off
	need := queued + len(p)
	if need <= cap(v.q) {
		copy(v.q, v.q[v.off:])
		v.q, v.off = append(v.q[:queued], p...), 0
		return
	}
	var nq []byte
	var box *[]byte
	size := min(max(need, 2*cap(v.q), queueMinAlloc), max(need, limit))
	if size > queueKeep && need <= floodBuf {
		box = floodBufs.Get().(*[]byte)
		nq = (*box)[:queued]
	} else {
		nq = make([]byte, queued, size)
	}
	copy(nq, v.q[v.off:])
	v.releaseQueueLocked()
	v.q, v.qbox = append(nq, p...), box
}

// releaseQueueLocked drops the queue, giving a pooled array back.
func (v *Viewer) releaseQueueLocked() {
	if v.qbox != nil {
		floodBufs.Put(v.qbox)
		v.qbox = nil
	}
	v.q, v.off = nil, 0
}

// sessionEnded is called under the session lock when the session ends.
func (v *Viewer) sessionEnded(reason string) {
	v.mu.Lock()
	v.ended, v.reason = true, reason
	v.mu.Unlock()
	v.signal()
}

// Next blocks until there is something for the viewer: everything queued
// (up to FrameMax) at once, a Resync, or the Exit frame. It waits while
// the bytes in flight fill the ack window. After the Exit frame, or
// Detach, it returns ErrClosed.
func (v *Viewer) Next(ctx context.Context) (Frame, error) {
	window := v.s.m.opts.AckWindow
	for {
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		v.mu.Lock()
		v.busy = false
		v.giveBackLocked()
		if v.detached || v.exitSent {
			v.mu.Unlock()
			return Frame{}, ErrClosed
		}
		open := v.inflight < window
		if open && v.resync {
			v.mu.Unlock()
			if f, ok := v.resyncFrame(window); ok {
				return f, nil
			}
			continue
		}
		if open && v.off < len(v.q) {
			f := v.takeLocked()
			v.mu.Unlock()
			return f, nil
		}
		if v.ended && !v.resync && v.off == len(v.q) {
			v.exitSent = true
			v.busy = true
			v.releaseQueueLocked()
			f := Frame{Exit: true, Reason: v.reason}
			v.mu.Unlock()
			return f, nil
		}
		v.mu.Unlock()
		select {
		case <-v.wake:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// takeLocked hands out up to FrameMax queued bytes as one frame, so a
// flood of small reads becomes few frames without waiting for more. A
// pooled queue array that goes out whole is lent as it is, not copied.
func (v *Viewer) takeLocked() Frame {
	n := min(len(v.q)-v.off, v.s.m.opts.FrameMax)
	v.inflight += n
	v.busy = true
	if v.qbox != nil && v.off+n == len(v.q) {
		data := v.q[v.off:]
		v.lent, v.lentFlood = v.qbox, true
		v.q, v.off, v.qbox = nil, 0, nil
		return Frame{Data: data}
	}
	bp := frameBufs.Get().(*[]byte)
	data := append((*bp)[:0], v.q[v.off:v.off+n]...)
	*bp = data
	v.lent, v.lentFlood = bp, false
	v.off += n
	if v.off == len(v.q) {
		// Drained. A backing array a burst grew is let go rather than
		// kept for the session's lifetime: hundreds of sessions each
		// keeping their largest burst would add up.
		if cap(v.q) > queueKeep {
			v.releaseQueueLocked()
		}
		v.q, v.off = v.q[:0], 0
	}
	return Frame{Data: data}
}

// giveBackLocked returns the last data frame's buffer to its pool.
func (v *Viewer) giveBackLocked() {
	if v.lent == nil {
		return
	}
	if v.lentFlood {
		floodBufs.Put(v.lent)
	} else {
		frameBufs.Put(v.lent)
	}
	v.lent = nil
}

// resyncFrame takes the snapshot under the session lock, which the reader
// appends under, and clears the flag in the same critical section: the
// next queued byte is the one right after the snapshot.
func (v *Viewer) resyncFrame(window int) (Frame, bool) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.detached || !v.resync || v.inflight >= window {
		return Frame{}, false
	}
	snap := s.ring.snapshot()
	v.resync = false
	v.busy = true
	if v.qbox != nil {
		v.releaseQueueLocked()
	}
	v.q, v.off = v.q[:0], 0
	v.inflight += len(snap)
	return Frame{Data: snap, Resync: true}, true
}

// Ack records that the client processed n more bytes.
func (v *Viewer) Ack(n int) {
	if n <= 0 {
		return
	}
	v.mu.Lock()
	v.inflight = max(0, v.inflight-n)
	v.mu.Unlock()
	v.signal()
}

// Input sends keystrokes to the shell. It counts as activity.
func (v *Viewer) Input(p []byte) error {
	if !v.canWrite {
		return ErrReadOnly
	}
	if v.isDetached() {
		return ErrClosed
	}
	return v.s.write(p)
}

// Resize sets the terminal size, clamped to 1..1000 cells each way, and
// remembers it as the session's size. Only writers may resize: the size is
// shared by every viewer.
func (v *Viewer) Resize(ctx context.Context, s Size) error {
	if !v.canWrite {
		return ErrReadOnly
	}
	if v.isDetached() {
		return ErrClosed
	}
	return v.s.resize(ctx, s)
}

// Detach leaves the session; it is idempotent. A Next blocked in another
// goroutine returns ErrClosed.
func (v *Viewer) Detach() {
	v.once.Do(func() {
		v.s.detach(v)
		v.mu.Lock()
		v.detached = true
		v.direct = nil
		v.releaseQueueLocked()
		// Not given back to the pool: a writer may still be sending the
		// last frame.
		v.lent = nil
		v.mu.Unlock()
		v.signal()
	})
}

func (v *Viewer) isDetached() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.detached
}

// queued is how many bytes wait for the viewer (for tests).
func (v *Viewer) queued() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.q) - v.off
}
