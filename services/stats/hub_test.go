package stats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"aicode/services/engine"
)

func TestSubscribersShareOneUpstream(t *testing.T) {
	src := newFakeSource()
	h := NewHub(src, Options{Grace: time.Hour}, nil)
	defer h.Close()

	subs := []*Subscription{subscribe(t, h, "c1"), subscribe(t, h, "c1"), subscribe(t, h, "c1")}
	other := subscribe(t, h, "c2")
	st := src.stream(t, "c1", 1)
	src.stream(t, "c2", 1)
	eventually(t, 5*time.Second, "two upstreams", func() bool { return h.Upstreams() == 2 })
	if n := h.Subscribers(); n != 4 {
		t.Fatalf("Subscribers = %d, want 4", n)
	}

	for i := 1; i <= 3; i++ {
		st.send(t, raw(i))
	}
	for j, s := range subs {
		for i := 1; i <= 3; i++ {
			if got := mib(next(t, s)); got != i {
				t.Fatalf("subscriber %d got sample %d, want %d", j, got, i)
			}
		}
	}
	// Samples of one container reach no one watching another.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if smp, err := other.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("c2 subscriber got %+v, %v", smp, err)
	}

	subs[0].Close()
	subs[1].Close()
	subs[1].Close() // idempotent
	if n := h.Subscribers(); n != 2 {
		t.Fatalf("Subscribers after two left = %d, want 2", n)
	}
	st.send(t, raw(4))
	if got := mib(next(t, subs[2])); got != 4 {
		t.Fatalf("remaining subscriber got %d", got)
	}
	if src.opened("c1") != 1 || src.maxConcurrent("c1") != 1 || st.isClosed() {
		t.Fatalf("c1 opened %d streams (max %d at once), first closed: %v", src.opened("c1"), src.maxConcurrent("c1"), st.isClosed())
	}
}

func TestGraceStopsUpstreamAndResubscribeReusesIt(t *testing.T) {
	const grace = 150 * time.Millisecond
	src := newFakeSource()
	h := NewHub(src, Options{Grace: grace}, nil)
	defer h.Close()

	s := subscribe(t, h, "c")
	st := src.stream(t, "c", 1)
	st.send(t, raw(1))
	next(t, s)
	s.Close()
	if h.Subscribers() != 0 {
		t.Fatal("closed subscription still counted")
	}

	// Back within the grace period: the same stream serves.
	time.Sleep(grace / 3)
	s = subscribe(t, h, "c")
	st.send(t, raw(2))
	if got := mib(next(t, s)); got != 2 {
		t.Fatalf("got %d after resubscribing", got)
	}
	time.Sleep(grace) // would have expired had the first grace not been cancelled
	if st.isClosed() || src.opened("c") != 1 || h.Upstreams() != 1 {
		t.Fatalf("resubscribe within grace: closed %v, opened %d, upstreams %d", st.isClosed(), src.opened("c"), h.Upstreams())
	}

	// Gone for longer than the grace period: the stream stops.
	left := time.Now()
	s.Close()
	eventually(t, 5*time.Second, "the upstream to stop", func() bool { return h.Upstreams() == 0 && st.isClosed() })
	if d := time.Since(left); d < grace {
		t.Fatalf("upstream stopped after %v, before the %v grace", d, grace)
	}
	if smp, ok := h.Latest("c"); !ok || mib(smp) != 2 {
		t.Fatalf("Latest after stop = %+v, %v", smp, ok)
	}

	// A later subscriber opens a new stream and still sees the history.
	s = subscribe(t, h, "c")
	defer s.Close()
	st2 := src.stream(t, "c", 2)
	if hist := s.History(); len(hist) != 2 || mib(hist[0]) != 1 || mib(hist[1]) != 2 {
		t.Fatalf("history after reopen: %+v", hist)
	}
	st2.send(t, raw(3))
	if got := mib(next(t, s)); got != 3 {
		t.Fatalf("got %d from the new stream", got)
	}
}

func TestZeroGraceStopsAtOnce(t *testing.T) {
	src := newFakeSource()
	h := NewHub(src, Options{Grace: -1}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	st := src.stream(t, "c", 1)
	s.Close()
	eventually(t, 5*time.Second, "the upstream to stop", func() bool { return st.isClosed() && h.Upstreams() == 0 })
}

// A subscriber that never reads must not slow the reader or anyone else.
// The live subscriber reads each sample before the next is sent, so every
// round trip is measured; a blocking fan-out would hang at the stalled
// subscriber's 65th sample instead.
func TestStalledSubscriberDelaysNoOne(t *testing.T) {
	const n = 2000
	src := newFakeSource()
	h := NewHub(src, Options{Buffer: 64}, nil)
	defer h.Close()

	stalled := subscribe(t, h, "c")
	defer stalled.Close()
	live := subscribe(t, h, "c")
	defer live.Close()
	st := src.stream(t, "c", 1)

	var worst time.Duration
	start := time.Now()
	for i := 1; i <= n; i++ {
		t1 := time.Now()
		st.send(t, raw(i))
		if got := mib(next(t, live)); got != i {
			t.Fatalf("live subscriber got sample %d, want %d", got, i)
		}
		worst = max(worst, time.Since(t1))
	}
	total := time.Since(start)
	t.Logf("%d round trips in %v (%.1f µs each), slowest %v; the stalled subscriber dropped %d", n, total, float64(total.Microseconds())/n, worst, stalled.Dropped())
	// Generous bounds for a loaded machine under -race.
	if total > 5*time.Second || worst > 500*time.Millisecond {
		t.Fatalf("delayed: %v in total, slowest round trip %v", total, worst)
	}
	if d := stalled.Dropped(); d != n-64 {
		t.Fatalf("stalled subscriber dropped %d, want %d", d, n-64)
	}
	if d := live.Dropped(); d != 0 {
		t.Fatalf("live subscriber dropped %d", d)
	}
	// What the stalled one finally reads is the newest 64.
	if got := mib(next(t, stalled)); got != n-63 {
		t.Fatalf("stalled subscriber's oldest kept sample is %d, want %d", got, n-63)
	}
}

func TestFullBufferDropsOldest(t *testing.T) {
	src := newFakeSource()
	h := NewHub(src, Options{Buffer: 4}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	defer s.Close()
	st := src.stream(t, "c", 1)
	for i := 1; i <= 10; i++ {
		st.send(t, raw(i))
	}
	eventually(t, 5*time.Second, "drops", func() bool { return s.Dropped() == 6 })
	for want := 7; want <= 10; want++ {
		if got := mib(next(t, s)); got != want {
			t.Fatalf("got sample %d, want %d (the newest four)", got, want)
		}
	}
	st.send(t, raw(11))
	if got := mib(next(t, s)); got != 11 {
		t.Fatalf("after draining got %d, want 11", got)
	}
	if s.Dropped() != 6 {
		t.Fatalf("Dropped = %d, want 6", s.Dropped())
	}
}

func TestBrokenUpstreamReopensWithBackoff(t *testing.T) {
	const (
		minB = 20 * time.Millisecond
		maxB = 160 * time.Millisecond
	)
	src := newFakeSource()
	var failing sync.Mutex
	fail := true
	src.openErr = func(id string, attempt int) error {
		failing.Lock()
		defer failing.Unlock()
		if fail {
			return &engine.Error{Op: "container stats", Kind: engine.ErrUnavailable, Msg: "engine away"}
		}
		return nil
	}
	h := NewHub(src, Options{BackoffMin: minB, BackoffMax: maxB}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	defer s.Close()

	eventually(t, 10*time.Second, "7 attempts", func() bool { return len(src.attemptTimes("c")) >= 7 })
	at := src.attemptTimes("c")
	want := []time.Duration{minB, 2 * minB, 4 * minB, maxB, maxB, maxB}
	for i, w := range want {
		got := at[i+1].Sub(at[i])
		// Timers never fire early; allow for a slow machine above.
		if got < w || got > w+400*time.Millisecond {
			t.Errorf("wait before attempt %d = %v, want about %v", i+2, got, w)
		}
	}
	// Engine errors are no reason to end the subscription.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next while the engine is away: %v", err)
	}

	// Back: samples flow, and a sample resets the backoff.
	failing.Lock()
	fail = false
	failing.Unlock()
	st := src.stream(t, "c", 1)
	st.send(t, raw(1))
	next(t, s)
	broke := time.Now()
	st.fail(t, errors.New("connection reset"))
	st2 := src.stream(t, "c", 2)
	if d := time.Since(broke); d > maxB {
		t.Errorf("reopened after %v; the backoff was not reset by a sample", d)
	}
	st2.send(t, raw(2))
	if got := mib(next(t, s)); got != 2 {
		t.Fatalf("after reopening got %d", got)
	}
}

func TestEOFWhileStoppedEndsSubscriptions(t *testing.T) {
	src := newFakeSource()
	src.setRunning("c", true)
	h := NewHub(src, Options{Grace: time.Hour}, nil)
	defer h.Close()
	a, b := subscribe(t, h, "c"), subscribe(t, h, "c")
	st := src.stream(t, "c", 1)
	st.send(t, raw(1))
	st.send(t, raw(2))
	src.setRunning("c", false)
	st.fail(t, io.EOF)

	// Queued samples first, then the end.
	for _, s := range []*Subscription{a, b} {
		if mib(next(t, s)) != 1 || mib(next(t, s)) != 2 {
			t.Fatal("queued samples lost at the end")
		}
		if e := ended(t, s); e.Reason != ReasonStopped || e.ContainerID != "c" {
			t.Fatalf("ended with %+v", e)
		}
		// And it stays ended.
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrEnded) {
			t.Fatalf("second next: %v", err)
		}
	}
	if err := a.Err(); !errors.Is(err, ErrEnded) {
		t.Fatalf("Err after the end: %v", err)
	}
	// No grace after an end: nobody can be served any more.
	eventually(t, 5*time.Second, "upstream to close", func() bool { return h.Upstreams() == 0 && st.isClosed() })
	if h.Subscribers() != 0 {
		t.Fatalf("Subscribers after end = %d", h.Subscribers())
	}
	a.Close()
	if smp, ok := h.Latest("c"); !ok || mib(smp) != 2 {
		t.Fatalf("Latest after end = %+v %v", smp, ok)
	}
}

func TestEOFWhileRunningReopens(t *testing.T) {
	src := newFakeSource()
	src.setRunning("c", true)
	h := NewHub(src, Options{BackoffMin: time.Millisecond}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	defer s.Close()
	st := src.stream(t, "c", 1)
	st.send(t, raw(1))
	st.fail(t, io.EOF)
	st2 := src.stream(t, "c", 2)
	st2.send(t, raw(2))
	if mib(next(t, s)) != 1 || mib(next(t, s)) != 2 {
		t.Fatal("samples lost across the reopen")
	}
	if src.maxConcurrent("c") != 1 {
		t.Fatalf("%d streams open at once", src.maxConcurrent("c"))
	}
}

// The engine keeps a stream open for a stopped container and sends empty
// samples; the hub recognises them.
func TestEmptySamplesOfStoppedContainerEnd(t *testing.T) {
	src := newFakeSource()
	src.setRunning("c", true)
	h := NewHub(src, Options{}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	defer s.Close()
	st := src.stream(t, "c", 1)
	st.send(t, engine.Stats{}) // a running container's odd empty sample is skipped
	st.send(t, raw(1))
	if got := mib(next(t, s)); got != 1 {
		t.Fatalf("got %d", got)
	}
	src.setRunning("c", false)
	st.send(t, engine.Stats{})
	if e := ended(t, s); e.Reason != ReasonStopped {
		t.Fatalf("reason %q", e.Reason)
	}
}

func TestMissingContainerEnds(t *testing.T) {
	src := newFakeSource()
	src.openErr = func(id string, attempt int) error {
		return fmt.Errorf("open: %w", &engine.Error{Op: "container stats", Kind: engine.ErrNotFound, Msg: "No such container: " + id})
	}
	h := NewHub(src, Options{}, nil)
	defer h.Close()
	s := subscribe(t, h, "gone")
	if e := ended(t, s); e.Reason != ReasonRemoved {
		t.Fatalf("reason %q", e.Reason)
	}
	if n := len(src.attemptTimes("gone")); n != 1 {
		t.Fatalf("%d open attempts for a missing container", n)
	}

	// Removed between samples: the state check says not found.
	src2 := newFakeSource()
	src2.runErr = &engine.Error{Op: "inspect container", Kind: engine.ErrNotFound, Msg: "No such container"}
	h2 := NewHub(src2, Options{}, nil)
	defer h2.Close()
	s2 := subscribe(t, h2, "c")
	src2.stream(t, "c", 1).fail(t, io.EOF)
	if e := ended(t, s2); e.Reason != ReasonRemoved {
		t.Fatalf("reason %q", e.Reason)
	}
}

// Without a way to ask whether the container runs, an ended stream means
// it stopped.
func TestSourceWithoutStateEndsOnEOF(t *testing.T) {
	src := newFakeSource()
	h := NewHub(struct{ Source }{src}, Options{}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	src.stream(t, "c", 1).fail(t, io.EOF)
	if e := ended(t, s); e.Reason != ReasonStopped {
		t.Fatalf("reason %q", e.Reason)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.inspects != 0 {
		t.Fatal("inspected through a source that cannot")
	}
}

func TestContainerEndedEndsAtOnce(t *testing.T) {
	src := newFakeSource()
	src.setRunning("c", true)
	h := NewHub(src, Options{Grace: time.Hour}, nil)
	defer h.Close()
	a := subscribe(t, h, "c")
	keep := subscribe(t, h, "other")
	defer keep.Close()
	st := src.stream(t, "c", 1)
	other := src.stream(t, "other", 1)
	st.send(t, raw(1))
	next(t, a)

	h.ContainerEnded("c", "alice stopped the workspace")
	h.ContainerEnded("unknown", "") // nothing to do
	if e := ended(t, a); e.Reason != "alice stopped the workspace" {
		t.Fatalf("reason %q", e.Reason)
	}
	eventually(t, 5*time.Second, "upstream to close", func() bool { return st.isClosed() && h.Upstreams() == 1 })
	if other.isClosed() || h.Subscribers() != 1 {
		t.Fatal("another container's watch was disturbed")
	}
	a.Close()

	// Started again: a new subscription opens a new stream.
	b := subscribe(t, h, "c")
	defer b.Close()
	st2 := src.stream(t, "c", 2)
	st2.send(t, raw(2))
	if got := mib(next(t, b)); got != 2 {
		t.Fatalf("got %d", got)
	}
	if len(b.History()) != 1 {
		t.Fatalf("history across the restart: %d points", len(b.History()))
	}

	h.ContainerEnded("c", "")
	if e := ended(t, b); e.Reason != ReasonStopped {
		t.Fatalf("default reason %q", e.Reason)
	}
}

func TestHistoryFillsNewSubscribers(t *testing.T) {
	src := newFakeSource()
	h := NewHub(src, Options{History: 5 * time.Second}, nil)
	defer h.Close()
	if _, ok := h.Latest("c"); ok {
		t.Fatal("Latest before any sample")
	}
	a := subscribe(t, h, "c")
	defer a.Close()
	if len(a.History()) != 0 {
		t.Fatal("history before any sample")
	}
	st := src.stream(t, "c", 1)
	for i := 1; i <= 3; i++ {
		st.send(t, raw(i))
	}
	// Two samples in the same second make one point, the newer.
	dup := raw(3)
	dup.Read = dup.Read.Add(400 * time.Millisecond)
	dup.Memory.Usage = 33 << 20
	st.send(t, dup)
	for range 4 {
		next(t, a)
	}

	b := subscribe(t, h, "c")
	defer b.Close()
	var got []int
	for _, p := range b.History() {
		got = append(got, mib(p))
	}
	if fmt.Sprint(got) != "[1 2 33]" {
		t.Fatalf("history %v, want [1 2 33]", got)
	}
	st.send(t, raw(4))
	if g := mib(next(t, b)); g != 4 {
		t.Fatalf("first sample after the history is %d, want 4", g)
	}
	if smp, ok := h.Latest("c"); !ok || mib(smp) != 4 {
		t.Fatalf("Latest = %+v %v", smp, ok)
	}
	hist := b.History()
	hist[0].MemUsed = 0
	if mib(b.History()[0]) != 1 {
		t.Fatal("History hands out the subscription's own slice")
	}

	// The ring keeps the last 5 s.
	for i := 5; i <= 12; i++ {
		st.send(t, raw(i))
	}
	// A send returns once the reader took the sample, a moment before it
	// is recorded.
	eventually(t, 5*time.Second, "the last sample", func() bool { smp, _ := h.Latest("c"); return mib(smp) == 12 })
	c := subscribe(t, h, "c")
	defer c.Close()
	got = got[:0]
	for _, p := range c.History() {
		got = append(got, mib(p))
	}
	if fmt.Sprint(got) != "[8 9 10 11 12]" {
		t.Fatalf("history %v, want the last five", got)
	}
	// CPU comes with the points: half of one CPU.
	if p := c.History()[4]; p.CPUPercent != 50 || p.OnlineCPUs != 4 {
		t.Fatalf("point %+v", p)
	}
}

func TestHistoryOfUnwatchedContainerExpires(t *testing.T) {
	const keep = 300 * time.Millisecond
	src := newFakeSource()
	h := NewHub(src, Options{Grace: -1, History: keep}, nil)
	defer h.Close()
	s := subscribe(t, h, "c")
	src.stream(t, "c", 1).send(t, raw(1))
	next(t, s)
	left := time.Now() // the expiry starts in Close
	s.Close()
	if _, ok := h.Latest("c"); !ok {
		t.Fatal("history dropped with the upstream")
	}
	eventually(t, 5*time.Second, "history to expire", func() bool { _, ok := h.Latest("c"); return !ok })
	if d := time.Since(left); d < keep {
		t.Fatalf("history dropped after %v, before %v", d, keep)
	}
	h.mu.Lock()
	n := len(h.watches)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watches left", n)
	}
}

func TestSubscriptionCloseAndContext(t *testing.T) {
	src := newFakeSource()
	h := NewHub(src, Options{}, nil)
	defer h.Close()

	if _, err := h.Subscribe(context.Background(), ""); err == nil {
		t.Fatal("subscribed to no container")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Subscribe(cancelled, "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe with a cancelled ctx: %v", err)
	}

	s := subscribe(t, h, "c")
	if s.ContainerID() != "c" || s.Err() != nil {
		t.Fatal(s.ContainerID(), s.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next past the deadline: %v", err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked next after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not unblock next")
	}
	s.Close()
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) || !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("next after close: %v (Err %v)", err, s.Err())
	}
}

func TestCloseEndsEverythingAndLeaksNothing(t *testing.T) {
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	base := settle()
	src := newFakeSource()
	h := NewHub(src, Options{Grace: time.Hour}, nil)
	var subs []*Subscription
	for i := range 20 {
		subs = append(subs, subscribe(t, h, fmt.Sprint("c", i%5)))
	}
	for i := range 5 {
		src.stream(t, fmt.Sprint("c", i), 1).send(t, raw(1))
	}
	// One container in its grace period, one whose history is ageing.
	lone := subscribe(t, h, "grace")
	src.stream(t, "grace", 1)
	lone.Close()
	gone := subscribe(t, h, "gone")
	src.stream(t, "gone", 1)
	h.ContainerEnded("gone", "")

	var wg sync.WaitGroup
	errs := make(chan error, len(subs))
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := s.Next(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	h.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		var e *EndedError
		if !errors.As(err, &e) || e.Reason != ReasonShutdown {
			t.Fatalf("next after hub close: %v", err)
		}
	}
	if h.Upstreams() != 0 || h.Subscribers() != 0 {
		t.Fatalf("after close: %d upstreams, %d subscribers", h.Upstreams(), h.Subscribers())
	}
	if _, err := h.Subscribe(context.Background(), "c0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
	h.ContainerEnded("c0", "") // harmless
	for _, s := range subs {
		s.Close()
	}
	gone.Close()
	h.Close()
	eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool { return settle() <= base })
}

// Subscribers come and go from many goroutines while samples flow: there is
// never more than one stream per container, everyone gets samples in order,
// and the hub winds down cleanly.
func TestConcurrentChurn(t *testing.T) {
	base := runtime.NumGoroutine()
	src := newFakeSource()
	h := NewHub(src, Options{Grace: 2 * time.Millisecond, Buffer: 8, BackoffMin: time.Millisecond}, nil)
	ids := []string{"a", "b", "c"}

	stop := make(chan struct{})
	var feeders sync.WaitGroup
	for _, id := range ids {
		feeders.Add(1)
		go func() {
			defer feeders.Done()
			seq := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Whatever stream is newest; it may close under us.
				n := src.opened(id)
				if n == 0 {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				st := src.stream(t, id, n)
				seq++
				select {
				case st.ch <- item{st: raw(seq)}:
				case <-st.closed:
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}

	var workers sync.WaitGroup
	for w := range 8 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 40 {
				s, err := h.Subscribe(context.Background(), ids[r.IntN(len(ids))])
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(3000))*time.Microsecond)
				last := -1
				for {
					smp, err := s.Next(ctx)
					if err != nil {
						break
					}
					if mib(smp) <= last {
						t.Errorf("out of order: %d after %d", mib(smp), last)
					}
					last = mib(smp)
				}
				cancel()
				s.Close()
			}
		}()
	}
	workers.Wait()
	close(stop)
	feeders.Wait()
	for _, id := range ids {
		if m := src.maxConcurrent(id); m > 1 {
			t.Errorf("%s had %d streams open at once", id, m)
		}
	}
	eventually(t, 5*time.Second, "upstreams to stop after the grace", func() bool { return h.Upstreams() == 0 })
	h.Close()
	eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool { runtime.GC(); return runtime.NumGoroutine() <= base })
}
