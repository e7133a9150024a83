package auth

import (
	"sync"
	"time"
)

// Limiter counts events per key in fixed windows. The in-memory version
// below serves a single replica; a shared implementation can replace it.
type Limiter interface {
	// Blocked reports whether key has reached its limit, and for how long.
	Blocked(key string, limit int) (bool, time.Duration)
	// Hit counts one event for key.
	Hit(key string)
	// Reset forgets key.
	Reset(key string)
}

// MemoryLimiter is a fixed-window counter kept in process memory.
type MemoryLimiter struct {
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*window
	sweepAt time.Time
}

type window struct {
	start time.Time
	count int
}

// NewMemoryLimiter returns a limiter with the given window length.
func NewMemoryLimiter(w time.Duration) *MemoryLimiter {
	return &MemoryLimiter{window: w, now: time.Now, entries: map[string]*window{}}
}

func (l *MemoryLimiter) Blocked(key string, limit int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, ok := l.entries[key]
	if !ok || now.Sub(e.start) >= l.window {
		return false, 0
	}
	if e.count >= limit {
		return true, e.start.Add(l.window).Sub(now)
	}
	return false, 0
}

func (l *MemoryLimiter) Hit(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	e, ok := l.entries[key]
	if !ok || now.Sub(e.start) >= l.window {
		l.entries[key] = &window{start: now, count: 1}
		return
	}
	e.count++
}

func (l *MemoryLimiter) Reset(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// sweep drops expired windows at most once per window, so a flood of
// distinct keys cannot grow memory without bound for longer than that.
func (l *MemoryLimiter) sweep(now time.Time) {
	if now.Before(l.sweepAt) {
		return
	}
	for k, e := range l.entries {
		if now.Sub(e.start) >= l.window {
			delete(l.entries, k)
		}
	}
	l.sweepAt = now.Add(l.window)
}
