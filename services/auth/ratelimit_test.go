package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for MemoryLimiter.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestLimiter(window time.Duration) (*MemoryLimiter, *fakeClock) {
	clock := &fakeClock{t: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	l := NewMemoryLimiter(window)
	l.now = clock.now
	return l, clock
}

func limiterSize(l *MemoryLimiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// A scripted sequence of steps against one limiter: hit, advance the
// clock, reset, or check Blocked.
func TestMemoryLimiterScript(t *testing.T) {
	const window = time.Minute
	type step struct {
		hit     int           // Hit this many times
		advance time.Duration // then move the clock
		reset   bool          // then Reset the key
		// then expect Blocked(key, limit) to report:
		blocked bool
		wait    time.Duration
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{
			name:  "fresh key is not blocked",
			limit: 3,
			steps: []step{{blocked: false}},
		},
		{
			name:  "below the limit",
			limit: 3,
			steps: []step{{hit: 2, blocked: false}},
		},
		{
			name:  "limit reached blocks for the rest of the window",
			limit: 3,
			steps: []step{
				{hit: 3, blocked: true, wait: window},
				{advance: 20 * time.Second, blocked: true, wait: 40 * time.Second},
				{advance: 40*time.Second - time.Nanosecond, blocked: true, wait: time.Nanosecond},
			},
		},
		{
			name:  "window expiry unblocks",
			limit: 3,
			steps: []step{
				{hit: 3, blocked: true, wait: window},
				{advance: window, blocked: false},
			},
		},
		{
			name:  "the window starts at the first hit, not the last",
			limit: 3,
			steps: []step{
				{hit: 1, advance: 50 * time.Second, blocked: false},
				{hit: 2, blocked: true, wait: 10 * time.Second},
				{advance: 10 * time.Second, blocked: false},
			},
		},
		{
			name:  "a hit after expiry starts a new window at one",
			limit: 3,
			steps: []step{
				{hit: 3, advance: window + time.Second, blocked: false},
				{hit: 1, blocked: false},
				{hit: 1, blocked: false},
				{hit: 1, blocked: true, wait: window},
			},
		},
		{
			name:  "hits beyond the limit keep it blocked",
			limit: 2,
			steps: []step{{hit: 10, blocked: true, wait: window}},
		},
		{
			name:  "limit of one",
			limit: 1,
			steps: []step{{hit: 1, blocked: true, wait: window}},
		},
		{
			name:  "reset unblocks",
			limit: 3,
			steps: []step{
				{hit: 3, blocked: true, wait: window},
				{reset: true, blocked: false},
				{hit: 2, blocked: false},
				{hit: 1, blocked: true, wait: window},
			},
		},
		{
			name:  "reset of an unknown key is harmless",
			limit: 3,
			steps: []step{{reset: true, blocked: false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := newTestLimiter(window)
			const key = "login:1.2.3.4:alice"
			for i, s := range tt.steps {
				for range s.hit {
					l.Hit(key)
				}
				clock.advance(s.advance)
				if s.reset {
					l.Reset(key)
				}
				blocked, wait := l.Blocked(key, tt.limit)
				if blocked != s.blocked || wait != s.wait {
					t.Fatalf("step %d: Blocked = %v, %v; want %v, %v", i, blocked, wait, s.blocked, s.wait)
				}
			}
		})
	}
}

func TestMemoryLimiterKeysAreIndependent(t *testing.T) {
	l, _ := newTestLimiter(time.Minute)
	for range 3 {
		l.Hit("a")
	}
	if blocked, _ := l.Blocked("a", 3); !blocked {
		t.Fatal("a is not blocked after 3 hits")
	}
	if blocked, _ := l.Blocked("b", 3); blocked {
		t.Fatal("b is blocked by a's hits")
	}
	l.Hit("b")
	l.Reset("b")
	if blocked, _ := l.Blocked("a", 3); !blocked {
		t.Fatal("resetting b unblocked a")
	}
	// The same counter checked against different limits.
	if blocked, _ := l.Blocked("a", 4); blocked {
		t.Fatal("a is blocked at limit 4 after 3 hits")
	}
	if blocked, _ := l.Blocked("a", 15); blocked {
		t.Fatal("a is blocked at limit 15 after 3 hits")
	}
}

func TestMemoryLimiterBlockedDoesNotCount(t *testing.T) {
	l, _ := newTestLimiter(time.Minute)
	for range 100 {
		if blocked, _ := l.Blocked("k", 1); blocked {
			t.Fatal("Blocked counted as a hit")
		}
	}
	if n := limiterSize(l); n != 0 {
		t.Fatalf("Blocked created %d entries", n)
	}
}

func TestMemoryLimiterSweep(t *testing.T) {
	const window = time.Minute
	l, clock := newTestLimiter(window)

	// A flood of distinct keys, as from someone trying usernames.
	for i := range 1000 {
		l.Hit(fmt.Sprintf("login:10.0.0.1:user%d", i))
	}
	if n := limiterSize(l); n != 1000 {
		t.Fatalf("entries = %d; want 1000", n)
	}

	// Half a window later a key that must survive the sweep.
	clock.advance(window / 2)
	l.Hit("recent")
	if n := limiterSize(l); n != 1001 {
		t.Fatalf("entries = %d before any window expired; want 1001", n)
	}

	// Once the flood's window has passed, the next Hit sweeps it away.
	clock.advance(window / 2)
	l.Hit("trigger")
	if n := limiterSize(l); n != 2 {
		t.Fatalf("entries after the sweep = %d; want 2 (recent, trigger)", n)
	}
	if blocked, _ := l.Blocked("recent", 1); !blocked {
		t.Fatal("the sweep dropped a key whose window had not expired")
	}

	// Memory stays bounded: a steady stream of new keys never keeps more
	// than two windows' worth.
	l2, clock2 := newTestLimiter(window)
	const perSecond = 10
	maxSize := 0
	for s := range 600 {
		for i := range perSecond {
			l2.Hit(fmt.Sprintf("k-%d-%d", s, i))
		}
		if n := limiterSize(l2); n > maxSize {
			maxSize = n
		}
		clock2.advance(time.Second)
	}
	if limit := 2 * 60 * perSecond; maxSize > limit {
		t.Fatalf("limiter held %d entries; want at most %d (two windows of keys)", maxSize, limit)
	}
}

func TestMemoryLimiterConcurrent(t *testing.T) {
	l := NewMemoryLimiter(time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				key := fmt.Sprintf("k%d", (g+i)%5)
				l.Hit(key)
				l.Blocked(key, 100)
				if i%50 == 0 {
					l.Reset(key)
				}
			}
		}()
	}
	wg.Wait()
	if n := limiterSize(l); n > 5 {
		t.Fatalf("entries = %d; want at most 5", n)
	}
}

// MemoryLimiter must satisfy the interface the service uses.
var _ Limiter = (*MemoryLimiter)(nil)
