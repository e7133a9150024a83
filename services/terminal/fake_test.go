package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeProc is a shell whose output the test writes into a pipe.
type fakeProc struct {
	pr *io.PipeReader
	pw *io.PipeWriter

	mu    sync.Mutex
	input bytes.Buffer
	sizes []Size

	writing    atomic.Int32
	overlapped atomic.Bool
	closeDelay time.Duration

	closes    atomic.Int32
	closeOnce sync.Once
	closed    chan struct{}
}

var errFakeClosed = errors.New("fake process closed")

func newFake() *fakeProc {
	pr, pw := io.Pipe()
	return &fakeProc{pr: pr, pw: pw, closed: make(chan struct{})}
}

func (f *fakeProc) Read(p []byte) (int, error) { return f.pr.Read(p) }

func (f *fakeProc) Write(p []byte) (int, error) {
	if f.writing.Add(1) > 1 {
		f.overlapped.Store(true)
	}
	defer f.writing.Add(-1)
	runtime.Gosched() // widen the window for an overlapping write
	select {
	case <-f.closed:
		return 0, errFakeClosed
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.input.Write(p)
}

func (f *fakeProc) Resize(ctx context.Context, s Size) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sizes = append(f.sizes, s)
	return nil
}

func (f *fakeProc) Close(ctx context.Context) error {
	f.closes.Add(1)
	f.closeOnce.Do(func() {
		if f.closeDelay > 0 {
			time.Sleep(f.closeDelay)
		}
		f.pr.CloseWithError(errFakeClosed)
		f.pw.CloseWithError(errFakeClosed)
		close(f.closed)
	})
	return nil
}

// out is shell output; it returns once the session's reader took it all.
func (f *fakeProc) out(p []byte) error {
	_, err := f.pw.Write(p)
	return err
}

// exit makes the shell exit: the reader sees io.EOF.
func (f *fakeProc) exit() { f.pw.Close() }

func (f *fakeProc) inputString() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.input.String()
}

func (f *fakeProc) lastSize() Size {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sizes) == 0 {
		return Size{}
	}
	return f.sizes[len(f.sizes)-1]
}

func (f *fakeProc) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// startWith returns a StartFunc handing out f, recording the start size.
func startWith(f *fakeProc, size *Size) StartFunc {
	return func(ctx context.Context, s Size) (Process, error) {
		if size != nil {
			*size = s
		}
		return f, nil
	}
}

// endLog records OnEnd calls.
type endLog struct {
	mu    sync.Mutex
	calls []endCall
}

type endCall struct {
	info   Info
	reason string
}

func (e *endLog) onEnd(i Info, r string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, endCall{i, r})
}

func (e *endLog) all() []endCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]endCall(nil), e.calls...)
}

func (e *endLog) forID(id string) []endCall {
	var out []endCall
	for _, c := range e.all() {
		if c.info.ID == id {
			out = append(out, c)
		}
	}
	return out
}

func open(t testing.TB, m *Manager, ws string) (*Session, *fakeProc) {
	t.Helper()
	f := newFake()
	s, err := m.Open(context.Background(), OpenSpec{WorkspaceID: ws, CreatedBy: "u1", CreatedByName: "alice"}, startWith(f, nil))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, f
}

func attach(t testing.TB, s *Session, canWrite bool) *Viewer {
	t.Helper()
	v, err := s.Attach(canWrite)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	return v
}

// next is Next with a deadline, failing the test on error.
func next(t testing.TB, v *Viewer) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := v.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return f
}

// firstResync reads the attach snapshot.
func firstResync(t testing.TB, v *Viewer) []byte {
	t.Helper()
	f := next(t, v)
	if !f.Resync {
		t.Fatalf("first frame is not a resync: %+v", f)
	}
	v.Ack(len(f.Data))
	return f.Data
}

// readN reads and acknowledges data frames until n bytes arrived. It fails
// on a resync or exit, which would mean a gap.
func readN(t testing.TB, v *Viewer, n int) (data []byte, frames int) {
	t.Helper()
	for len(data) < n {
		f := next(t, v)
		if f.Resync || f.Exit {
			t.Fatalf("unexpected frame after %d of %d bytes: resync=%v exit=%v %q", len(data), n, f.Resync, f.Exit, f.Reason)
		}
		v.Ack(len(f.Data))
		data = append(data, f.Data...)
		frames++
	}
	return data, frames
}

// readToExit reads everything up to the exit frame; a resync restarts the
// screen.
func readToExit(t testing.TB, v *Viewer) (screen []byte, exit Frame) {
	t.Helper()
	for {
		f := next(t, v)
		v.Ack(len(f.Data))
		switch {
		case f.Exit:
			return screen, f
		case f.Resync:
			screen = append([]byte(nil), f.Data...)
		default:
			screen = append(screen, f.Data...)
		}
	}
}

func waitDone(t testing.TB, s *Session, d time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(d):
		t.Fatalf("session %s did not end within %v", s.ID(), d)
	}
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func shutdown(t testing.TB, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Shutdown(ctx)
}

// waitRing waits until the session's ring holds n bytes: a pipe write
// returns once the reader has read the bytes, a moment before it has
// published them.
func waitRing(t testing.TB, s *Session, n int) {
	t.Helper()
	eventually(t, 5*time.Second, "output in the ring", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ring.size >= n
	})
}

// scriptedProc hands out output in reads of the sizes given, then io.EOF,
// and logs each read (with the buffer it was given) and each pause the
// session's reader takes, in order.
type scriptedProc struct {
	mu    sync.Mutex
	reads []int
	log   []string
}

func (p *scriptedProc) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reads) == 0 {
		return 0, io.EOF
	}
	n := min(p.reads[0], len(b))
	p.reads = p.reads[1:]
	for i := range b[:n] {
		b[i] = 'x'
	}
	p.log = append(p.log, fmt.Sprintf("read %d/%dK", n, len(b)>>10))
	return n, nil
}

func (p *scriptedProc) pause(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, "pause "+d.String())
}

func (p *scriptedProc) Write(b []byte) (int, error)              { return len(b), nil }
func (p *scriptedProc) Resize(ctx context.Context, s Size) error { return nil }
func (p *scriptedProc) Close(ctx context.Context) error          { return nil }
