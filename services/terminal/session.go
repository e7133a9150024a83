package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// readBufSize is the reader's buffer: a PTY hands out at most a few KiB
// at once, and the engine passes that on (more only when the reader was
// late). Every session holds one, so it is kept small.
const readBufSize = 16 << 10

// maxEmptyReads is how many reads in a row may return nothing, as bufio
// allows.
const maxEmptyReads = 100

// Reads of at least floodRead each that add up to floodStreak in a row
// (one small read between two is a lull, two end the streak) mean output
// is pouring out (a build log, cat of a big file), not an
// echo, a prompt or a screen redraw. The reader then
//   - lets floodWait pass before its next read when this one did not fill
//     the buffer, so the next one takes what piled up meanwhile rather than
//     the few KiB the TTY hands over at a time;
//   - reads into a floodBuf-sized buffer from a shared pool once a read
//     fills its own small one, and gives it back when output calms down.
//
// That cuts the reads, frames, wake-ups and acknowledgements per MB
// several times over, which is what a flood costs on a busy machine (with
// pooled queue arrays and 128 KiB frames, it took the server from 28% to
// about 20% of a core on a 25 MB/s flood, and the client from 7% to 4%).
// Interactive output (keystroke echoes, prompts, a full-screen
// redraw) stays below the streak and is never delayed, what a read got is
// published before any wait, and an idle session holds only its small
// buffer.
const (
	floodRead   = 4 << 10
	floodStreak = 64 << 10
	floodWait   = 4 * time.Millisecond
	floodBuf    = 128 << 10
)

var floodBufs = sync.Pool{New: func() any { b := make([]byte, floodBuf); return &b }}

// Session is one shell and the viewers watching it.
//
// Lock order: Manager.mu, then Session.mu, then Viewer.mu. The reader
// appends to the ring and to every viewer queue under Session.mu, so a
// snapshot taken under the same lock lines up exactly with what is queued
// after it.
type Session struct {
	m                        *Manager
	id, ws                   string
	createdBy, createdByName string
	createdAt                time.Time
	seq                      uint64
	proc                     Process

	// lastActive is the time of the last input or output, as nanoseconds
	// since createdAt; atomic so the hot read path takes no extra lock.
	lastActive atomic.Int64
	// ending mirrors ended for paths that must not take mu (input).
	ending atomic.Bool

	wmu sync.Mutex // serialises writes to the process
	rmu sync.Mutex // serialises resizes, so the remembered size is the last one applied

	mu         sync.Mutex
	name       string
	size       Size
	ring       ring
	viewers    []*Viewer
	writers    int
	ended      bool
	endReason  string
	graceGen   uint64 // invalidates a grace timer that fired while being stopped
	graceTimer *time.Timer
	idleTimer  *time.Timer

	done chan struct{} // closed once the session has fully ended
}

// ID is the session's id.
func (s *Session) ID() string { return s.id }

// WorkspaceID is the workspace the session belongs to.
func (s *Session) WorkspaceID() string { return s.ws }

// Done is closed once the session has ended: the process is closed and
// OnEnd has run.
func (s *Session) Done() <-chan struct{} { return s.done }

// Info describes the session now.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

func (s *Session) infoLocked() Info {
	return Info{
		ID: s.id, WorkspaceID: s.ws, Name: s.name,
		CreatedBy: s.createdBy, CreatedByName: s.createdByName, CreatedAt: s.createdAt,
		Viewers: len(s.viewers), Writers: s.writers,
		Size:  s.size,
		Ended: s.ended, EndReason: s.endReason,
	}
}

// Attach adds a viewer. Its first frame is a Resync with the scrollback,
// even if that is empty, so a reattaching browser restores its screen.
func (s *Session) Attach(canWrite bool) (*Viewer, error) {
	v := &Viewer{s: s, canWrite: canWrite, wake: make(chan struct{}, 1), resync: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, ErrClosed
	}
	s.viewers = append(s.viewers, v)
	if canWrite {
		s.writers++
	}
	s.disarmGraceLocked()
	return v, nil
}

// detach removes v; the last viewer out starts the grace timer.
func (s *Session) detach(v *Viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := -1
	for j, w := range s.viewers {
		if w == v {
			i = j
			break
		}
	}
	if i < 0 {
		return
	}
	last := len(s.viewers) - 1
	s.viewers[i] = s.viewers[last]
	s.viewers[last] = nil
	s.viewers = s.viewers[:last]
	if v.canWrite {
		s.writers--
	}
	if len(s.viewers) == 0 && !s.ended {
		s.armGraceLocked()
	}
	s.releaseRingLocked()
}

// releaseRingLocked frees the scrollback once the session has ended and
// no viewer is left to resync from it.
func (s *Session) releaseRingLocked() {
	if s.ended && len(s.viewers) == 0 {
		s.ring.release()
	}
}

// readLoop is the session's only long-lived goroutine. It reuses its
// buffer; the bytes are copied into the ring and the viewer queues.
func (s *Session) readLoop() {
	defer s.m.readers.Done()
	small := make([]byte, readBufSize)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			floodBufs.Put(big)
		}
	}()
	var err error
	streak := 0   // bytes of the reads of floodRead or more in a row
	lull := false // the last read was a small one
	for empty := 0; ; {
		var n int
		n, err = s.proc.Read(buf)
		if n > 0 {
			s.publish(buf[:n])
			empty = 0
			full := n == len(buf)
			switch {
			case full && big == nil:
				big = floodBufs.Get().(*[]byte)
				buf = *big
			case n < floodRead && big != nil:
				floodBufs.Put(big)
				big, buf = nil, small
			}
			// One small read inside a flood is a lull (the read right
			// after a full one finds little); two in a row end it.
			switch {
			case n >= floodRead:
				streak += n
				lull = false
			case lull:
				streak = 0
			default:
				lull = true
			}
			if n >= floodRead && streak >= floodStreak && !full && err == nil {
				s.m.sleep(floodWait)
			}
		} else if err == nil {
			// A broken adapter returning (0, nil) forever would spin a CPU.
			if empty++; empty >= maxEmptyReads {
				err = io.ErrNoProgress
			}
		}
		if err != nil {
			break
		}
	}
	reason := "the shell exited"
	if !errors.Is(err, io.EOF) {
		reason = err.Error()
	}
	// If someone else ended the session (and so caused this error), this
	// waits for them to finish, so the Manager's reader count covers every
	// Process.Close and OnEnd.
	_ = s.close(context.Background(), reason)
}

// publish hands p to the ring and to every viewer, never waiting for one.
func (s *Session) publish(p []byte) {
	s.touch()
	limit := s.m.opts.ViewerQueue
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		// Output after the end (the hang-up's echo, say) has no one to go
		// to: the exit frame may already be out.
		return
	}
	s.ring.write(p)
	for _, v := range s.viewers {
		v.offer(p, limit)
	}
}

// write sends input to the process. Writes are serialised so concurrent
// viewers never interleave inside one another's input.
func (s *Session) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.touch()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ending.Load() {
		return ErrClosed
	}
	// A failed write ends nothing: if the shell is gone the reader sees it.
	if _, err := s.proc.Write(p); err != nil {
		return fmt.Errorf("write to terminal: %w", err)
	}
	return nil
}

func (s *Session) resize(ctx context.Context, size Size) error {
	size = clampSize(size)
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return ErrClosed
	}
	s.size = size
	s.mu.Unlock()
	if err := s.proc.Resize(ctx, size); err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

func (s *Session) touch() { s.lastActive.Store(int64(time.Since(s.createdAt))) }

func (s *Session) idleFor() time.Duration {
	return time.Since(s.createdAt) - time.Duration(s.lastActive.Load())
}

// close ends the session and returns once it has fully ended, or ctx
// ends. Only the first call's reason counts.
func (s *Session) close(ctx context.Context, reason string) error {
	if !s.end(ctx, reason, nil) {
		select {
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// end ends the session once, if cond (checked under the lock) allows. It
// reports whether this call did it. Viewers learn the reason at once;
// then the process is closed, the manager forgets the session, and OnEnd
// runs.
func (s *Session) end(ctx context.Context, reason string, cond func() bool) bool {
	s.mu.Lock()
	if s.ended || (cond != nil && !cond()) {
		s.mu.Unlock()
		return false
	}
	s.ended = true
	s.ending.Store(true)
	s.endReason = reason
	s.disarmGraceLocked()
	if s.idleTimer != nil {
		s.idleTimer.Stop()
		s.idleTimer = nil
	}
	for _, v := range s.viewers {
		v.sessionEnded(reason)
	}
	s.releaseRingLocked()
	info := s.infoLocked()
	s.mu.Unlock()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	if err := s.proc.Close(cctx); err != nil {
		s.m.log.Warn("close terminal process", "workspace", s.ws, "session", s.id, "err", err)
	}
	cancel()
	// Forgotten only now, so the slot stays taken while the shell may
	// still exist, and a Close racing this one finds the session and waits.
	s.m.forget(s)
	s.m.log.Info("terminal session ended", "workspace", s.ws, "session", s.id, "reason", reason)
	if fn := s.m.opts.OnEnd; fn != nil {
		fn(info, reason)
	}
	close(s.done)
	return true
}

func (s *Session) armGraceLocked() {
	s.disarmGraceLocked()
	gen := s.graceGen
	grace := s.m.opts.Grace
	s.graceTimer = time.AfterFunc(grace, func() {
		s.end(context.Background(), "no one was attached for "+human(grace), func() bool {
			return s.graceGen == gen && len(s.viewers) == 0
		})
	})
}

func (s *Session) disarmGraceLocked() {
	s.graceGen++
	if s.graceTimer != nil {
		s.graceTimer.Stop()
		s.graceTimer = nil
	}
}

func (s *Session) armIdleLocked() {
	d := s.m.opts.IdleTimeout
	if d <= 0 {
		return
	}
	s.idleTimer = time.AfterFunc(d, s.checkIdle)
}

// checkIdle runs when the session may have been idle for the timeout.
// Activity only stamps a time (the hot path stays cheap), so the timer
// re-arms for the remainder when there was some.
func (s *Session) checkIdle() {
	d := s.m.opts.IdleTimeout
	s.end(context.Background(), "idle for "+human(d), func() bool {
		idle := s.idleFor()
		if idle >= d {
			return true
		}
		if s.idleTimer != nil {
			s.idleTimer.Reset(d - idle)
		}
		return false
	})
}
