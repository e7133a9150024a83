package stats

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"aicode/services/engine"
)

// Errors callers match with errors.Is.
var (
	// ErrEnded: the container stopped or was removed, or the hub shut
	// down; the error is an *EndedError saying which.
	ErrEnded = errors.New("stats ended")
	// ErrClosed: the subscription (or the hub) was closed by its owner.
	ErrClosed = errors.New("stats subscription closed")
)

// EndedError tells a subscriber why no more samples will come. Reason is a
// short sentence fit for users ("the container stopped").
type EndedError struct {
	ContainerID string
	Reason      string
}

func (e *EndedError) Error() string { return "stats ended: " + e.Reason }

func (e *EndedError) Unwrap() error { return ErrEnded }

// Reasons the hub gives on its own.
const (
	ReasonStopped  = "the container stopped"
	ReasonRemoved  = "the container no longer exists"
	ReasonShutdown = "the server is shutting down"
)

// Source opens stats streams; EngineSource adapts the engine.
type Source interface {
	StatsStream(ctx context.Context, containerID string) (Stream, error)
}

// Stream is one open stats stream. Next returns io.EOF once the source
// ended the stream. Close must be idempotent and safe to call while Next
// blocks, and must unblock it: the hub stops a stream that way.
type Stream interface {
	Next() (engine.Stats, error)
	Close() error
}

// StateSource is implemented by a Source that can tell whether a container
// runs. With it the hub tells a stream that ended because the container
// stopped (the end) from one the engine dropped (reconnect); without it
// every io.EOF counts as the container stopping. An error wrapping
// engine.ErrNotFound means the container is gone.
type StateSource interface {
	Running(ctx context.Context, containerID string) (bool, error)
}

// EngineSource makes the engine a Source (and a StateSource).
func EngineSource(e *engine.Engine) Source { return engineSource{e} }

type engineSource struct{ e *engine.Engine }

func (s engineSource) StatsStream(ctx context.Context, containerID string) (Stream, error) {
	st, err := s.e.StatsStream(ctx, containerID)
	if err != nil {
		return nil, err // a nil *StatsStream must not become a non-nil Stream
	}
	return st, nil
}

func (s engineSource) Running(ctx context.Context, containerID string) (bool, error) {
	st, err := s.e.InspectContainer(ctx, containerID)
	if err != nil {
		return false, err
	}
	switch st.State {
	case "running", "paused", "restarting":
		// Paused containers keep streaming (idle) samples; restarting ones
		// come back under the same id.
		return true, nil
	}
	return false, nil
}

// Options tune a Hub; zero values take the defaults.
type Options struct {
	// Grace is how long an upstream outlives its last subscriber, so a
	// page reload reuses it (default 30s; negative: stop at once).
	Grace time.Duration
	// Buffer is how many samples wait for a subscriber before the oldest
	// are dropped (default 64).
	Buffer int
	// History is how much of a container's recent past the hub keeps, as
	// 1-s points, to fill a new chart at once; it is also how long that
	// history outlives the container's last watcher (default 10m).
	History time.Duration
	// BackoffMin and BackoffMax bound the wait before reopening a broken
	// upstream; it doubles with every failure in a row (defaults 500ms,
	// 30s).
	BackoffMin, BackoffMax time.Duration
}

func (o *Options) defaults() {
	if o.Grace == 0 {
		o.Grace = 30 * time.Second
	}
	if o.Grace < 0 {
		o.Grace = 0
	}
	if o.Buffer <= 0 {
		o.Buffer = 64
	}
	if o.History <= 0 {
		o.History = 10 * time.Minute
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
}

// stateCheckTimeout bounds the inspect that decides whether a container
// still runs after its stream ended.
const stateCheckTimeout = 10 * time.Second

// Hub shares one upstream stats stream per container among all its
// subscribers and keeps each container's recent history.
//
// Lock order: Hub.mu, then watch.mu, then Subscription.mu. A watch's
// subscriber list changes only with both Hub.mu and watch.mu held, so
// either lock is enough to read it. The upstream reader takes watch.mu and
// Subscription.mu only, each for a few non-blocking steps, so no
// subscriber can hold it up.
type Hub struct {
	src   Source
	state StateSource // nil when src cannot tell
	opts  Options
	log   *slog.Logger

	ctx    context.Context // parent of every upstream; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup // upstream goroutines
	open   atomic.Int64   // upstream streams open right now

	mu      sync.Mutex
	watches map[string]*watch
	closed  bool
}

// watch is the hub's state for one container.
type watch struct {
	id string

	// Under Hub.mu.
	cancel   context.CancelFunc // stops the upstream; nil when none runs
	done     chan struct{}      // closed when the latest upstream goroutine has exited
	timer    *time.Timer        // grace or expiry, whichever is armed
	timerGen uint64             // invalidates a timer that fired while being replaced

	mu   sync.Mutex
	gen  uint64 // upstream generation; a stopped upstream's late samples are ignored (written under both locks)
	subs []*Subscription
	hist history
}

// NewHub returns a hub reading from src. log may be nil.
func NewHub(src Source, opts Options, log *slog.Logger) *Hub {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{src: src, opts: opts, log: log, watches: make(map[string]*watch)}
	h.state, _ = src.(StateSource)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Subscribe starts watching a container: the first subscriber opens the
// upstream, later ones share it. It does not wait for the engine; a
// container that does not exist or does not run shows up as ErrEnded from
// Next. ctx bounds this call only, not the subscription, which lives until
// Close or the end of the container.
func (h *Hub) Subscribe(ctx context.Context, containerID string) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if containerID == "" {
		return nil, errors.New("subscribe to stats: no container id")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	w := h.watches[containerID]
	if w == nil {
		w = &watch{id: containerID, hist: newHistory(h.opts.History)}
		h.watches[containerID] = w
	}
	h.disarmLocked(w)
	if w.cancel == nil {
		h.startLocked(w)
	}
	s := &Subscription{
		h:    h,
		w:    w,
		id:   containerID,
		buf:  make([]Sample, h.opts.Buffer),
		wake: make(chan struct{}, 1),
	}
	w.mu.Lock()
	// Taken with the list change under one lock: every sample is either
	// in this snapshot or queued for s, never both, never neither.
	s.history = w.hist.points()
	w.subs = append(w.subs, s)
	w.mu.Unlock()
	return s, nil
}

// Latest returns the newest sample held for a container, if any.
func (h *Hub) Latest(containerID string) (Sample, bool) {
	h.mu.Lock()
	w := h.watches[containerID]
	h.mu.Unlock()
	if w == nil {
		return Sample{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hist.last()
}

// Upstreams is the number of engine streams open right now.
func (h *Hub) Upstreams() int { return int(h.open.Load()) }

// Subscribers is the number of live subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, w := range h.watches {
		n += len(w.subs)
	}
	return n
}

// ContainerEnded ends a container's subscriptions at once with reason
// (empty: ReasonStopped) and stops its upstream; the workspace watcher
// calls it when the engine reports the container died or was destroyed.
// The history stays for a later chart.
func (h *Hub) ContainerEnded(containerID, reason string) {
	if reason == "" {
		reason = ReasonStopped
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.watches[containerID]; w != nil && !h.closed {
		h.endLocked(w, reason)
	}
}

// Close stops every upstream and timer and ends every subscription (with
// ReasonShutdown); it returns once all the hub's goroutines are gone.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for id, w := range h.watches {
			h.disarmLocked(w)
			h.endSubsLocked(w, ReasonShutdown)
			h.stopLocked(w)
			delete(h.watches, id)
		}
		h.cancel()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// startLocked launches a watch's upstream.
func (h *Hub) startLocked(w *watch) {
	ctx, cancel := context.WithCancel(h.ctx)
	w.cancel = cancel
	w.mu.Lock()
	w.gen++
	gen := w.gen
	w.mu.Unlock()
	prev, done := w.done, make(chan struct{})
	w.done = done
	h.wg.Add(1)
	go h.run(ctx, w, gen, prev, done)
}

// stopLocked stops a watch's upstream, if one runs, and keeps what it
// still reads from reaching anyone.
func (h *Hub) stopLocked(w *watch) {
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	w.mu.Lock()
	w.gen++
	w.mu.Unlock()
}

// endLocked ends a watch: its subscribers learn why, its upstream stops and
// its history starts to age.
func (h *Hub) endLocked(w *watch, reason string) {
	h.disarmLocked(w)
	h.endSubsLocked(w, reason)
	h.stopLocked(w)
	h.armExpiryLocked(w)
}

func (h *Hub) endSubsLocked(w *watch, reason string) {
	err := &EndedError{ContainerID: w.id, Reason: reason}
	w.mu.Lock()
	subs := w.subs
	w.subs = nil
	w.mu.Unlock()
	for _, s := range subs {
		s.w = nil
		s.end(err)
	}
}

// disarmLocked cancels the watch's pending timer.
func (h *Hub) disarmLocked(w *watch) {
	w.timerGen++
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// armGraceLocked stops the upstream after the grace period unless a
// subscriber comes back.
func (h *Hub) armGraceLocked(w *watch) {
	h.disarmLocked(w)
	if h.opts.Grace == 0 {
		h.stopLocked(w)
		h.armExpiryLocked(w)
		return
	}
	gen := w.timerGen
	w.timer = time.AfterFunc(h.opts.Grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed || w.timerGen != gen || len(w.subs) > 0 {
			return
		}
		w.timer = nil
		h.stopLocked(w)
		h.armExpiryLocked(w)
	})
}

// armExpiryLocked forgets an unwatched container's history after the
// History period, which bounds the memory held for containers nobody looks
// at any more.
func (h *Hub) armExpiryLocked(w *watch) {
	h.disarmLocked(w)
	gen := w.timerGen
	w.timer = time.AfterFunc(h.opts.History, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed || w.timerGen != gen || len(w.subs) > 0 || w.cancel != nil {
			return
		}
		w.timer = nil
		if h.watches[w.id] == w {
			delete(h.watches, w.id)
		}
	})
}

// leave removes a closed subscription from its watch.
func (h *Hub) leave(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.w
	if w == nil {
		return // already ended
	}
	s.w = nil
	w.mu.Lock()
	if i := slices.Index(w.subs, s); i >= 0 {
		w.subs = slices.Delete(w.subs, i, i+1)
	}
	last := len(w.subs) == 0
	w.mu.Unlock()
	if last && !h.closed {
		h.armGraceLocked(w)
	}
}

// run is a watch's upstream: it (re)opens the engine stream until the
// container ends or the upstream is stopped.
func (h *Hub) run(ctx context.Context, w *watch, gen uint64, prev <-chan struct{}, done chan<- struct{}) {
	defer h.wg.Done()
	defer close(done)
	if prev != nil {
		// A stopped upstream closes its stream asynchronously; waiting for
		// it keeps the engine at one stream per container even when a
		// viewer returns just after the grace period.
		select {
		case <-prev:
		case <-ctx.Done():
			return
		}
	}
	u := upstream{h: h, w: w, gen: gen, delay: h.opts.BackoffMin}
	for {
		reason, err := u.pump(ctx)
		if ctx.Err() != nil {
			return
		}
		if reason != "" {
			h.ended(w, gen, reason)
			return
		}
		h.log.Warn("container stats stream broke; reopening", "container", shortID(w.id), "err", err, "in", u.delay)
		t := time.NewTimer(u.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		u.delay = min(2*u.delay, h.opts.BackoffMax)
	}
}

// ended is the upstream's own finding that the container ended.
func (h *Hub) ended(w *watch, gen uint64, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.mu.Lock()
	current := w.gen == gen
	w.mu.Unlock()
	if current && !h.closed {
		h.endLocked(w, reason)
	}
}

// upstream is the state one run goroutine carries across reconnects.
type upstream struct {
	h     *Hub
	w     *watch
	gen   uint64
	prev  *engine.Stats
	delay time.Duration
}

// pump reads one stream until it breaks. It returns a reason when the
// container ended, otherwise why the stream broke.
func (u *upstream) pump(ctx context.Context) (reason string, err error) {
	st, err := u.h.src.StatsStream(ctx, u.w.id)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return ReasonRemoved, nil
		}
		return "", err
	}
	u.h.open.Add(1)
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer func() {
		stop()
		st.Close()
		u.h.open.Add(-1)
	}()
	for {
		raw, err := st.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && ctx.Err() == nil {
				if reason := u.h.notRunning(ctx, u.w.id); reason != "" {
					return reason, nil
				}
				return "", errors.New("the engine ended the stats stream of a running container")
			}
			return "", err
		}
		if raw.Read.IsZero() {
			// The engine's placeholder for a container that is not
			// running, sent once a second instead of ending the stream.
			// engine.StatsStream turns it into io.EOF; other sources may
			// pass it on.
			if reason := u.h.notRunning(ctx, u.w.id); reason != "" {
				return reason, nil
			}
			continue
		}
		if u.prev == nil && raw.PreCPU.SystemUsage == 0 {
			// A stream's first sample has no CPU figure to give; charted,
			// it would draw a false drop to 0%. It primes the next one.
			u.prev = &raw
			continue
		}
		sample := Compute(u.prev, raw)
		u.prev = &raw
		u.delay = u.h.opts.BackoffMin
		u.h.publish(u.w, u.gen, sample)
	}
}

// notRunning returns why the container no longer runs, or "" when it runs
// or that cannot be told now.
func (h *Hub) notRunning(ctx context.Context, id string) string {
	if h.state == nil {
		return ReasonStopped
	}
	ctx, cancel := context.WithTimeout(ctx, stateCheckTimeout)
	defer cancel()
	running, err := h.state.Running(ctx, id)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return ReasonRemoved
	case err != nil:
		return ""
	case !running:
		return ReasonStopped
	}
	return ""
}

// publish records a sample and offers it to every subscriber without ever
// waiting for one.
func (h *Hub) publish(w *watch, gen uint64, s Sample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen != gen {
		return
	}
	w.hist.add(s)
	for _, sub := range w.subs {
		sub.offer(s)
	}
}

// Subscription is one viewer of a container's samples.
type Subscription struct {
	h       *Hub
	w       *watch // under Hub.mu; nil once left or ended
	id      string
	history []Sample
	dropped atomic.Uint64
	once    sync.Once

	// wake holds at most one pending "something changed"; Next rechecks
	// its state after every wake, so none is lost.
	wake chan struct{}

	mu     sync.Mutex
	buf    []Sample // ring of len Buffer
	head   int
	n      int
	endErr error
	closed bool
}

// ContainerID is the container watched.
func (s *Subscription) ContainerID() string { return s.id }

// History returns the 1-s points the hub held when s subscribed, oldest
// first; the next sample from Next is newer than all of them.
func (s *Subscription) History() []Sample { return slices.Clone(s.history) }

// Dropped counts samples dropped because s fell more than the buffer
// behind.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Next blocks for the next sample. Samples already queued are delivered
// before the end: once the container stopped or was removed (or the hub
// shut down) it returns an *EndedError (errors.Is ErrEnded); after Close,
// ErrClosed; when ctx ends, ctx.Err().
func (s *Subscription) Next(ctx context.Context) (Sample, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Sample{}, err
		}
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return Sample{}, ErrClosed
		case s.n > 0:
			smp := s.buf[s.head]
			s.head = (s.head + 1) % len(s.buf)
			s.n--
			s.mu.Unlock()
			return smp, nil
		case s.endErr != nil:
			err := s.endErr
			s.mu.Unlock()
			return Sample{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Sample{}, ctx.Err()
		}
	}
}

// Close ends the subscription; the last one out starts the upstream's
// grace period. It is safe to call more than once and while Next blocks.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.h.leave(s)
		s.mu.Lock()
		s.closed = true
		s.buf = nil
		s.n = 0
		s.mu.Unlock()
		s.signal()
	})
}

// offer queues a sample, dropping the oldest when the buffer is full.
func (s *Subscription) offer(smp Sample) {
	s.mu.Lock()
	if s.closed || s.endErr != nil {
		s.mu.Unlock()
		return
	}
	size := len(s.buf)
	if s.n == size {
		s.head = (s.head + 1) % size
		s.n--
		s.dropped.Add(1)
	}
	s.buf[(s.head+s.n)%size] = smp
	s.n++
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.endErr == nil {
		s.endErr = err
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// history is a ring of 1-s points. It grows to its size as points come,
// so a briefly watched container holds only what it saw.
type history struct {
	pts  []Sample
	head int // oldest point, once the ring is full
	size int
}

func newHistory(d time.Duration) history {
	return history{size: max(1, int(d/time.Second))}
}

// add appends s; a sample in the same second as the newest point replaces
// it, so the ring spans its full period however often samples come.
func (h *history) add(s Sample) {
	if n := len(h.pts); n > 0 {
		i := (h.head + n - 1) % n
		if s.Time.Truncate(time.Second).Equal(h.pts[i].Time.Truncate(time.Second)) {
			h.pts[i] = s
			return
		}
	}
	if len(h.pts) < h.size {
		h.pts = append(h.pts, s)
		return
	}
	h.pts[h.head] = s
	h.head = (h.head + 1) % h.size
}

func (h *history) points() []Sample {
	n := len(h.pts)
	out := make([]Sample, 0, n)
	for i := range n {
		out = append(out, h.pts[(h.head+i)%n])
	}
	return out
}

func (h *history) last() (Sample, bool) {
	n := len(h.pts)
	if n == 0 {
		return Sample{}, false
	}
	return h.pts[(h.head+n-1)%n], true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Err is nil while the subscription may deliver more samples; once the
// container ended it is the *EndedError Next will return after the queue,
// and after Close it is ErrClosed. Holders that only read Latest use it to
// notice an ended subscription and subscribe again.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.endErr
}
