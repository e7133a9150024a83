package stats

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"aicode/services/engine"
)

// fakeSource hands out streams the test feeds by hand, and records every
// open attempt.
type fakeSource struct {
	mu       sync.Mutex
	streams  map[string][]*fakeStream
	attempts map[string][]time.Time
	openErr  func(id string, attempt int) error // nil: opens succeed
	running  map[string]bool                    // absent: not running
	runErr   error
	inspects int
	open     map[string]int // streams open now, per container
	maxOpen  map[string]int // most ever open at once, per container
	changed  chan struct{}  // pinged after every open
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		streams:  map[string][]*fakeStream{},
		attempts: map[string][]time.Time{},
		running:  map[string]bool{},
		open:     map[string]int{},
		maxOpen:  map[string]int{},
		changed:  make(chan struct{}, 1),
	}
}

type item struct {
	st  engine.Stats
	err error
}

type fakeStream struct {
	src    *fakeSource
	id     string
	ch     chan item
	closed chan struct{}
	once   sync.Once
}

func (f *fakeSource) StatsStream(ctx context.Context, id string) (Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[id] = append(f.attempts[id], time.Now())
	if f.openErr != nil {
		if err := f.openErr(id, len(f.attempts[id])); err != nil {
			f.ping()
			return nil, err
		}
	}
	s := &fakeStream{src: f, id: id, ch: make(chan item), closed: make(chan struct{})}
	f.streams[id] = append(f.streams[id], s)
	f.open[id]++
	f.maxOpen[id] = max(f.maxOpen[id], f.open[id])
	f.ping()
	return s, nil
}

func (f *fakeSource) Running(ctx context.Context, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects++
	if f.runErr != nil {
		return false, f.runErr
	}
	return f.running[id], nil
}

func (f *fakeSource) ping() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeSource) setRunning(id string, r bool) {
	f.mu.Lock()
	f.running[id] = r
	f.mu.Unlock()
}

func (f *fakeSource) opened(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams[id])
}

func (f *fakeSource) attemptTimes(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.attempts[id]...)
}

func (f *fakeSource) maxConcurrent(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxOpen[id]
}

// stream waits for the n-th stream (1-based) opened for id.
func (f *fakeSource) stream(t testing.TB, id string, n int) *fakeStream {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		if len(f.streams[id]) >= n {
			s := f.streams[id][n-1]
			f.mu.Unlock()
			return s
		}
		f.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("stream %d of %s never opened", n, id)
		}
		select {
		case <-f.changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *fakeStream) Next() (engine.Stats, error) {
	select {
	case it := <-s.ch:
		return it.st, it.err
	case <-s.closed:
		return engine.Stats{}, io.ErrClosedPipe
	}
}

func (s *fakeStream) Close() error {
	s.once.Do(func() {
		s.src.mu.Lock()
		s.src.open[s.id]--
		s.src.mu.Unlock()
		close(s.closed)
	})
	return nil
}

func (s *fakeStream) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// send hands st to the hub's reader and returns once it took it.
func (s *fakeStream) send(t testing.TB, st engine.Stats) {
	t.Helper()
	select {
	case s.ch <- item{st: st}:
	case <-s.closed:
		t.Fatalf("send to a closed stream of %s", s.id)
	case <-time.After(5 * time.Second):
		t.Fatalf("the hub did not read stream %s", s.id)
	}
}

// fail makes the reader's next Next return err.
func (s *fakeStream) fail(t testing.TB, err error) {
	t.Helper()
	select {
	case s.ch <- item{err: err}:
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the hub did not read stream %s", s.id)
	}
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// raw is sample i of a synthetic container: one second apart, half a CPU
// busy on a 4-CPU host, i MiB of memory, so MemUsed tells samples apart.
// Each carries its precpu block, as streamed samples after the first do.
func raw(i int) engine.Stats {
	return engine.Stats{
		Read:   t0.Add(time.Duration(i) * time.Second),
		CPU:    engine.CPUStats{TotalUsage: uint64(i) * 5e8, SystemUsage: uint64(i+10) * 4e9, OnlineCPUs: 4},
		PreCPU: engine.CPUStats{TotalUsage: uint64(i-1) * 5e8, SystemUsage: uint64(i+9) * 4e9, OnlineCPUs: 4},
		Memory: engine.MemoryStats{
			Usage: uint64(i) << 20,
			Limit: 1 << 30,
		},
	}
}

func mib(s Sample) int { return int(s.MemUsed >> 20) }

func next(t testing.TB, s *Subscription) Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	smp, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return smp
}

// ended reads until Next fails and returns the error, failing unless it is
// an *EndedError.
func ended(t testing.TB, s *Subscription) *EndedError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := s.Next(ctx)
		if err == nil {
			continue
		}
		var ee *EndedError
		if !errors.As(err, &ee) || !errors.Is(err, ErrEnded) {
			t.Fatalf("next: %v, want an EndedError", err)
		}
		return ee
	}
}

func subscribe(t testing.TB, h *Hub, id string) *Subscription {
	t.Helper()
	s, err := h.Subscribe(context.Background(), id)
	if err != nil {
		t.Fatalf("subscribe %s: %v", id, err)
	}
	return s
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
