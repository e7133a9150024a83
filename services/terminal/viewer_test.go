package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collect reads and acknowledges data frames until n bytes arrived. It is
// safe off the test goroutine; a resync or exit is an error (a gap).
func collect(ctx context.Context, v *Viewer, n int) ([]byte, int, error) {
	var data []byte
	frames := 0
	for len(data) < n {
		f, err := v.Next(ctx)
		if err != nil {
			return data, frames, fmt.Errorf("after %d of %d bytes: %w", len(data), n, err)
		}
		if f.Resync || f.Exit {
			return data, frames, fmt.Errorf("after %d of %d bytes: resync=%v exit=%v", len(data), n, f.Resync, f.Exit)
		}
		v.Ack(len(f.Data))
		data = append(data, f.Data...)
		frames++
	}
	return data, frames, nil
}

// lines is n bytes of numbered text lines, like a build log.
func lines(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d %s é\n", i, bytes.Repeat([]byte{'a' + byte(rng.IntN(26))}, rng.IntN(120)))
	}
	return b.Bytes()[:n]
}

// feed writes p to the fake in chunks of random size; it returns when the
// session's reader has read all of it.
func feed(f *fakeProc, p []byte, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 9))
	for len(p) > 0 {
		n := min(len(p), 1+rng.IntN(40<<10))
		if err := f.out(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func TestTwoViewersGetIdenticalStreams(t *testing.T) {
	m := NewManager(Options{ViewerQueue: 64 << 20}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	vs := []*Viewer{attach(t, s, true), attach(t, s, false)}
	for _, v := range vs {
		if len(firstResync(t, v)) != 0 {
			t.Fatal("fresh session has scrollback")
		}
	}
	want := lines(1, 2<<20)
	got := make([][]byte, len(vs))
	errs := make([]error, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got[i], _, errs[i] = collect(ctx, v, len(want))
		})
	}
	if err := feed(f, want, 2); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range vs {
		if errs[i] != nil {
			t.Fatalf("viewer %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], want) {
			t.Fatalf("viewer %d got %d bytes that differ from the %d written", i, len(got[i]), len(want))
		}
	}
}

func TestStalledViewerDoesNotBlockOthersAndResyncsWithoutGap(t *testing.T) {
	const queue = 512 << 10
	m := NewManager(Options{Scrollback: 64 << 10, ViewerQueue: queue}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	stalled := attach(t, s, true)
	firstResync(t, stalled)
	neverRead := attach(t, s, false) // not even its first frame
	live := attach(t, s, false)
	firstResync(t, live)

	want := lines(3, 4<<20)
	var got []byte
	var progress atomic.Int64
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for len(got) < len(want) {
			fr, err := live.Next(ctx)
			if err != nil || fr.Resync || fr.Exit {
				errc <- fmt.Errorf("live viewer after %d bytes: %v resync=%v exit=%v", len(got), err, fr.Resync, fr.Exit)
				return
			}
			live.Ack(len(fr.Data))
			got = append(got, fr.Data...)
			progress.Store(int64(len(got)))
		}
		errc <- nil
	}()
	// The feeder lets the live viewer trail by up to half its queue, so
	// only the stalled viewers can overflow, however slow the host is.
	deadline := time.Now().Add(10 * time.Second)
	for sent := 0; sent < len(want); {
		n := min(32<<10, len(want)-sent)
		if err := f.out(want[sent : sent+n]); err != nil {
			t.Fatal(err)
		}
		sent += n
		for int64(sent)-progress.Load() > queue/2 {
			if time.Now().After(deadline) {
				t.Fatalf("the live viewer stalled behind the stalled one (%d of %d)", progress.Load(), sent)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the live viewer stalled behind the stalled one")
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("live viewer got %d bytes that differ from the %d written", len(got), len(want))
	}
	stalled.mu.Lock()
	peak, drops := stalled.peak, stalled.drops
	stalled.mu.Unlock()
	if peak > queue || drops == 0 || stalled.queued() != 0 {
		t.Fatalf("stalled viewer: peak %d, drops %d, queued %d", peak, drops, stalled.queued())
	}

	// The stalled viewer resyncs to the ring's tail, from a line start.
	for _, v := range []*Viewer{stalled, neverRead} {
		fr := next(t, v)
		if !fr.Resync {
			t.Fatal("stalled viewer did not resync")
		}
		v.Ack(len(fr.Data))
		if !bytes.HasSuffix(want, fr.Data) || len(fr.Data) < 60<<10 {
			t.Fatalf("snapshot of %d bytes is not the tail of the output", len(fr.Data))
		}
		if cut := len(want) - len(fr.Data); want[cut-1] != '\n' {
			t.Fatal("snapshot does not start at a line")
		}
	}
	// And then continue with exactly what follows.
	more := []byte("after the flood\n")
	go f.out(more)
	for _, v := range []*Viewer{stalled, neverRead, live} {
		if got, _ := readN(t, v, len(more)); !bytes.Equal(got, more) {
			t.Fatalf("after resync got %q", got)
		}
	}
}

func TestStalledViewerMemoryStaysBounded(t *testing.T) {
	const queue = 64 << 10
	m := NewManager(Options{ViewerQueue: queue}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)

	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2<<10) // 32 KiB
	for sent := 0; sent < 10<<20; sent += len(chunk) {
		if err := f.out(chunk); err != nil {
			t.Fatal(err)
		}
		if q := v.queued(); q > queue {
			t.Fatalf("queued %d bytes, limit %d", q, queue)
		}
	}
	v.mu.Lock()
	peak, backing := v.peak, cap(v.q)
	v.mu.Unlock()
	if peak > queue || backing > queue {
		t.Fatalf("peak %d, backing array %d, limit %d", peak, backing, queue)
	}
	s.mu.Lock()
	ringBytes := len(s.ring.buf)
	s.mu.Unlock()
	if ringBytes > DefaultScrollback {
		t.Fatalf("ring holds %d bytes", ringBytes)
	}
}

func TestAckWindowPausesAndAckResumes(t *testing.T) {
	m := NewManager(Options{AckWindow: 1024, FrameMax: 256, ViewerQueue: 1 << 20}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	if err := f.out(bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "output queued", func() bool { return v.queued() == 4096 })

	inflight := 0
	for inflight < 1024 {
		fr := next(t, v) // not acknowledged
		if len(fr.Data) > 256 {
			t.Fatalf("frame of %d bytes, FrameMax 256", len(fr.Data))
		}
		inflight += len(fr.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next with a full window: %v", err)
	}

	got := make(chan Frame, 1)
	go func() {
		fr, err := v.Next(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- fr
	}()
	select {
	case <-got:
		t.Fatal("next returned with a full window")
	case <-time.After(30 * time.Millisecond):
	}
	v.Ack(300)
	select {
	case fr := <-got:
		if len(fr.Data) != 256 {
			t.Fatalf("resumed with %d bytes", len(fr.Data))
		}
	case <-time.After(time.Second):
		t.Fatal("ack did not resume next")
	}
}

func TestPausedViewerOverflowsToResync(t *testing.T) {
	m := NewManager(Options{AckWindow: 1024, ViewerQueue: 8 << 10}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	go f.out(bytes.Repeat([]byte("-"), 2048))
	fr := next(t, v) // fills the window; not acknowledged yet
	if fr.Resync || len(fr.Data) == 0 {
		t.Fatalf("first output: resync=%v, %d bytes", fr.Resync, len(fr.Data))
	}
	eventually(t, time.Second, "the rest of the output", func() bool { return v.queued()+len(fr.Data) == 2048 })
	out := lines(5, 64<<10)
	if err := feed(f, out, 6); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("-"), 2048), out...)
	waitRing(t, s, len(want))
	v.mu.Lock()
	dropped := v.resync && v.q == nil
	v.mu.Unlock()
	if !dropped {
		t.Fatal("the paused viewer kept its queue")
	}
	v.Ack(len(fr.Data))
	if fr := next(t, v); !fr.Resync || !bytes.Equal(fr.Data, want) {
		t.Fatalf("after ack: resync=%v, %d bytes", fr.Resync, len(fr.Data))
	}
}

func TestFramesBatchForSlowConsumers(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)

	const writes = 1000
	go func() {
		for i := range writes {
			f.out([]byte{'a' + byte(i%26)})
		}
	}()
	var data []byte
	frames := 0
	for len(data) < writes {
		fr := next(t, v)
		if fr.Resync || fr.Exit {
			t.Fatal("unexpected frame")
		}
		data = append(data, fr.Data...)
		frames++
		time.Sleep(2 * time.Millisecond) // a consumer slower than the shell
		v.Ack(len(fr.Data))
	}
	for i, b := range data {
		if b != 'a'+byte(i%26) {
			t.Fatalf("byte %d is %q", i, b)
		}
	}
	if frames > writes/5 {
		t.Fatalf("%d writes became %d frames", writes, frames)
	}
	t.Logf("%d one-byte writes arrived in %d frames", writes, frames)
}

func TestSmallWriteIsDeliveredPromptly(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)

	var lat []time.Duration
	for range 9 {
		got := make(chan time.Time, 1)
		go func() {
			fr, err := v.Next(context.Background())
			if err != nil || string(fr.Data) != "$" {
				t.Errorf("got %q, %v", fr.Data, err)
			}
			v.Ack(len(fr.Data))
			got <- time.Now()
		}()
		time.Sleep(5 * time.Millisecond) // let Next block
		start := time.Now()
		if err := f.out([]byte("$")); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	slices.Sort(lat)
	// The median, so one GC pause on a busy CI host does not fail it.
	if med := lat[len(lat)/2]; med >= 10*time.Millisecond {
		t.Fatalf("median latency %v (all %v)", med, lat)
	}
	t.Logf("latencies %v", lat)
}

func TestReattachGetsEarlierOutput(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	go f.out([]byte("$ make\nok\n"))
	readN(t, v, 10)
	v.Detach()
	if _, err := v.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("next after detach: %v", err)
	}
	if err := v.Input([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("input after detach: %v", err)
	}

	v2 := attach(t, s, false)
	if got := string(firstResync(t, v2)); got != "$ make\nok\n" {
		t.Fatalf("reattach snapshot %q", got)
	}
}

func TestDetachUnblocksNextAndCancelReturnsCtxErr(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, _ := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := v.Next(ctx); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled next: %v", err)
	}

	go func() { _, err := v.Next(context.Background()); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	v.Detach()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("next after detach: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("detach did not wake next")
	}
}

func TestReadOnlyViewer(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	ro := attach(t, s, false)
	rw := attach(t, s, true)
	firstResync(t, ro)
	firstResync(t, rw)
	if ro.CanWrite() || !rw.CanWrite() {
		t.Fatal("CanWrite")
	}

	if err := ro.Input([]byte("rm -rf /\n")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only input: %v", err)
	}
	if err := ro.Resize(context.Background(), Size{10, 10}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only resize: %v", err)
	}
	if got := f.inputString(); got != "" {
		t.Fatalf("read-only input reached the shell: %q", got)
	}
	if err := rw.Input([]byte("ls\n")); err != nil {
		t.Fatal(err)
	}
	if got := f.inputString(); got != "ls\n" {
		t.Fatalf("shell got %q", got)
	}
	if err := rw.Resize(context.Background(), Size{Cols: 0, Rows: 5000}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Info().Size, (Size{1, 1000}); got != want || f.lastSize() != want {
		t.Fatalf("size %v, process %v, want %v", got, f.lastSize(), want)
	}
	if err := rw.Resize(context.Background(), Size{120, 40}); err != nil {
		t.Fatal(err)
	}
	if s.Info().Size != (Size{120, 40}) {
		t.Fatal("size not remembered")
	}

	// The session keeps running for everyone.
	go f.out([]byte("still here"))
	for _, v := range []*Viewer{ro, rw} {
		if got, _ := readN(t, v, 10); string(got) != "still here" {
			t.Fatalf("got %q", got)
		}
	}
	if in := s.Info(); in.Ended || in.Viewers != 2 || in.Writers != 1 {
		t.Fatalf("info %+v", in)
	}
}

func TestInputIsSerialised(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	var wg sync.WaitGroup
	for w := range 4 {
		v := attach(t, s, true)
		wg.Go(func() {
			for range 100 {
				if err := v.Input([]byte{'0' + byte(w)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if f.overlapped.Load() {
		t.Fatal("two writes reached the process at once")
	}
	if n := len(f.inputString()); n != 400 {
		t.Fatalf("shell got %d bytes", n)
	}
}

func TestStalledViewerAtExitGetsResyncThenExit(t *testing.T) {
	m := NewManager(Options{ViewerQueue: 4 << 10}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	out := lines(8, 32<<10)
	if err := feed(f, out, 9); err != nil {
		t.Fatal(err)
	}
	f.exit()
	waitDone(t, s, time.Second)
	fr := next(t, v)
	if !fr.Resync || !bytes.Equal(fr.Data, out) {
		t.Fatalf("resync=%v with %d bytes", fr.Resync, len(fr.Data))
	}
	v.Ack(len(fr.Data))
	if fr := next(t, v); !fr.Exit || fr.Reason != "the shell exited" {
		t.Fatalf("got %+v", fr)
	}
}

// TestConcurrentViewersStress runs a flood while viewers come and go,
// read, acknowledge, type and resize; it is for the race detector.
func TestConcurrentViewersStress(t *testing.T) {
	m := NewManager(Options{Scrollback: 32 << 10, ViewerQueue: 8 << 10, AckWindow: 16 << 10, FrameMax: 4 << 10}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		p := lines(10, 1<<20)
		for ctx.Err() == nil {
			if feed(f, p, 11) != nil {
				return
			}
		}
	})
	for i := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for ctx.Err() == nil {
				v, err := s.Attach(i%2 == 0)
				if err != nil {
					t.Error(err)
					return
				}
				for range rng.IntN(50) {
					fr, err := v.Next(ctx)
					if err != nil {
						break
					}
					if rng.IntN(4) > 0 {
						v.Ack(len(fr.Data))
					}
					if v.CanWrite() {
						v.Input([]byte("x"))
						v.Resize(ctx, Size{uint16(rng.IntN(300)), 40})
					}
					_ = s.Info()
				}
				v.Detach()
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			m.Count()
			m.List("A")
			m.Rename("A", s.ID(), "busy")
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if s.Info().Ended {
		t.Fatalf("session ended: %s", s.Info().EndReason)
	}
	if _, n := m.Count(); n != 0 {
		t.Fatalf("%d viewers left attached", n)
	}
}

// BenchmarkThroughput pushes output through one session to viewers that
// acknowledge at once. With a queue that never overflows every byte
// reaches every viewer; with the default queue, viewers that the host
// cannot schedule fast enough resync instead (reported as resyncs).
func BenchmarkThroughput(b *testing.B) {
	for _, bc := range []struct {
		name    string
		viewers int
		queue   int
	}{
		{"1viewer", 1, 64 << 20},
		{"2viewers", 2, 64 << 20},
		{"2viewers-defaultqueue", 2, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchmarkThroughput(b, bc.viewers, bc.queue)
		})
	}
}

func benchmarkThroughput(b *testing.B, viewers, queue int) {
	m := NewManager(Options{ViewerQueue: queue}, nil)
	defer shutdown(b, m)
	s, f := open(b, m, "A")
	chunk := lines(12, 32<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	frames, resyncs := 0, 0
	for range viewers {
		v := attach(b, s, false)
		firstResync(b, v)
		wg.Go(func() {
			for {
				fr, err := v.Next(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				v.Ack(len(fr.Data))
				mu.Lock()
				frames++
				if fr.Resync {
					resyncs++
				}
				mu.Unlock()
				if fr.Exit {
					return
				}
			}
		})
	}
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if err := f.out(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.exit()
	wg.Wait()
	b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
	b.ReportMetric(float64(resyncs), "resyncs")
}

// TestScrollbackIsFreedWhenTheLastViewerLeavesAnEndedSession: a stalled
// viewer can still resync from the ring after the shell exited; once it
// leaves, the storage goes back at once, and a ring read then is empty,
// not a crash.
func TestScrollbackIsFreedWhenTheLastViewerLeavesAnEndedSession(t *testing.T) {
	m := NewManager(Options{ViewerQueue: 4 << 10}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	out := lines(3, 200<<10)
	if err := feed(f, out, 4); err != nil {
		t.Fatal(err)
	}
	f.exit()
	waitDone(t, s, time.Second)
	s.mu.Lock()
	held := len(s.ring.buf)
	s.mu.Unlock()
	if held < len(out) {
		t.Fatalf("ring released while a viewer may still resync (%d bytes held)", held)
	}
	if _, exit := readToExit(t, v); !exit.Exit {
		t.Fatal("no exit frame")
	}
	v.Detach()
	s.mu.Lock()
	buf, snap := s.ring.buf, s.ring.snapshot()
	s.mu.Unlock()
	if buf != nil || len(snap) != 0 {
		t.Fatalf("ring still holds %d bytes (snapshot %d) after the session ended and its viewer left", len(buf), len(snap))
	}
	if _, err := s.Attach(true); err != ErrClosed {
		t.Fatalf("attach to an ended session: %v", err)
	}
}

// TestDrainedQueueLetsGoOfBurstCapacity: a queue a burst grew does not
// keep its backing array once the viewer has caught up.
func TestDrainedQueueLetsGoOfBurstCapacity(t *testing.T) {
	m := NewManager(Options{ViewerQueue: 1 << 20, AckWindow: 1 << 20}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	out := lines(5, 200<<10)
	if err := feed(f, out, 6); err != nil {
		t.Fatal(err)
	}
	waitRing(t, s, len(out))
	v.mu.Lock()
	grown := cap(v.q)
	v.mu.Unlock()
	if grown <= queueKeep {
		t.Fatalf("the burst did not queue (cap %d)", grown)
	}
	if got, _ := readN(t, v, len(out)); !bytes.Equal(got, out) {
		t.Fatal("output differs")
	}
	v.mu.Lock()
	kept := cap(v.q)
	v.mu.Unlock()
	if kept > queueKeep {
		t.Fatalf("drained queue keeps %d bytes", kept)
	}
	// And it still works after letting go.
	more := []byte("more\n")
	go f.out(more)
	if got, _ := readN(t, v, len(more)); !bytes.Equal(got, more) {
		t.Fatalf("got %q", got)
	}
}

// TestFloodQueuesAllocateNothing: flood-sized output passes through a
// viewer's queue in pooled buffers. Releasing a drained queue array to the
// garbage collector instead cost a flood more CPU than the copying did.
func TestFloodQueuesAllocateNothing(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, _ := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	ctx := context.Background()
	chunk := lines(11, 40<<10)
	cycle := func() {
		// Two reads' worth queued before the writer takes them, as when
		// it is busy with the previous frame.
		s.publish(chunk[:len(chunk)/2])
		s.publish(chunk[len(chunk)/2:])
		f, err := v.Next(ctx)
		if err != nil || f.Resync || !bytes.Equal(f.Data, chunk) {
			t.Fatalf("frame: err %v, resync %v, %d bytes, equal %v", err, f.Resync, len(f.Data), bytes.Equal(f.Data, chunk))
		}
		v.Ack(len(f.Data))
	}
	for range 10 {
		cycle()
	}
	if a := testing.AllocsPerRun(200, cycle); a != 0 {
		t.Fatalf("%.0f allocations per 40 KiB frame", a)
	}
}

// wire stands for a client connection written by both the reader (direct)
// and the goroutine calling Next.
type wire struct {
	mu      sync.Mutex
	data    []byte
	refuse  atomic.Bool
	unacked int // bytes written directly and not yet acknowledged
}

func (w *wire) direct(p []byte) bool {
	if w.refuse.Load() {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data = append(w.data, p...)
	w.unacked += len(p)
	return true
}

func (w *wire) write(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data = append(w.data, p...)
}

func (w *wire) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.data)
}

func TestDirectWriteOnlyWhileTheWriterIsIdle(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	w := &wire{}
	v.SetDirect(w.direct)
	// Until the attach snapshot is taken, nothing may overtake it.
	if err := f.out([]byte("a")); err != nil {
		t.Fatal(err)
	}
	waitRing(t, s, 1)
	if w.len() != 0 {
		t.Fatal("direct write before the resync")
	}
	fr := next(t, v)
	if !fr.Resync || string(fr.Data) != "a" {
		t.Fatalf("first frame %+v", fr)
	}
	// The snapshot is handed out but, as far as the viewer knows, not yet
	// written: output now must queue behind it.
	if err := f.out([]byte("b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b queued", func() bool { return v.queued() == 1 })
	w.write(fr.Data)
	fr = next(t, v) // the resync is written; "b" comes from the queue
	if string(fr.Data) != "b" || w.len() != 1 {
		t.Fatalf("frame %q, wire %d bytes", fr.Data, w.len())
	}
	w.write(fr.Data)

	// Idle (blocked in Next): output goes straight to the wire.
	got := make(chan Frame, 1)
	go func() {
		fr, _ := v.Next(context.Background())
		got <- fr
	}()
	time.Sleep(20 * time.Millisecond)
	if err := f.out([]byte("c")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "direct write", func() bool { return w.len() == 3 })
	if v.queued() != 0 {
		t.Fatal("a direct write was queued too")
	}
	// More than fits unacknowledged goes through the queue.
	big := bytes.Repeat([]byte("x"), directMax)
	if err := f.out(big); err != nil {
		t.Fatal(err)
	}
	fr = <-got
	if len(fr.Data) != directMax || w.len() != 3 {
		t.Fatalf("frame of %d bytes, wire %d bytes", len(fr.Data), w.len())
	}
}

// waitIdle acknowledges what went out directly, as a browser does in
// time, and waits until v has nothing queued, its writer has come back for
// more, and little is unacknowledged: the state in which output may go out
// directly.
func waitIdle(t *testing.T, v *Viewer, w *wire) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		n := w.unacked
		w.unacked = 0
		w.mu.Unlock()
		v.Ack(n)
		v.mu.Lock()
		idle := len(v.q) == v.off && !v.busy && v.inflight < directMax/2
		v.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the viewer's writer did not catch up")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestDirectAndQueuedWritesKeepTheOrder(t *testing.T) {
	// A queue that never overflows: a resync would drop bytes by design.
	m := NewManager(Options{ViewerQueue: 64 << 20}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	w := &wire{}
	v.SetDirect(w.direct)
	want := lines(3, 1<<20)
	// The attach snapshot is taken before any output: were it taken
	// later, it would hold only the ring's last bytes, by design.
	if fr := next(t, v); !fr.Resync || len(fr.Data) != 0 {
		t.Fatalf("first frame %+v", fr)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			fr, err := v.Next(ctx)
			if err != nil {
				done <- err
				return
			}
			if fr.Exit {
				done <- nil
				return
			}
			if fr.Resync {
				done <- errors.New("resync")
				return
			}
			w.write(fr.Data)
			v.Ack(len(fr.Data))
			// Direct writes are acknowledged too, later, as by a browser.
			w.mu.Lock()
			n := w.unacked
			w.unacked = 0
			w.mu.Unlock()
			v.Ack(n)
		}
	}()
	rng := rand.New(rand.NewPCG(5, 5))
	for p := want; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(64))
		if rng.IntN(8) == 0 {
			n = min(len(p), 1+rng.IntN(8<<10))
		}
		w.refuse.Store(rng.IntN(4) == 0)
		if rng.IntN(64) == 0 {
			// Now and then the writer catches up before a small write,
			// as between keystrokes, so that some go out directly.
			n = min(n, 64)
			w.refuse.Store(false)
			waitIdle(t, v, w)
		}
		if err := f.out(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	f.exit()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.data, want) {
		t.Fatalf("wire differs from the output: %d bytes against %d", len(w.data), len(want))
	}
	v.mu.Lock()
	directs := v.directs
	v.mu.Unlock()
	if directs == 0 {
		t.Fatal("no output went out directly")
	}
	t.Logf("%d direct writes", directs)
}
