package auth_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"aicode/services/auth"
	"aicode/testutil"
)

// Two limiters on one Redis are two replicas: hits on one count on the
// other, and the window ends for both.
func TestRedisLimiterIsShared(t *testing.T) {
	url := testutil.RedisURL(t)
	prefix := testutil.RedisPrefix(t)
	testutil.CleanRedisPrefix(t, url, prefix)
	const window = 700 * time.Millisecond
	a := auth.NewRedisLimiter(testutil.RedisClient(t, url), prefix, window, nil)
	b := auth.NewRedisLimiter(testutil.RedisClient(t, url), prefix, window, nil)

	if blocked, _ := b.Blocked("k", 3); blocked {
		t.Fatal("blocked before any hit")
	}
	a.Hit("k")
	b.Hit("k")
	if blocked, _ := a.Blocked("k", 3); blocked {
		t.Fatal("blocked after 2 of 3 hits")
	}
	a.Hit("k")
	blocked, wait := b.Blocked("k", 3)
	if !blocked || wait <= 0 || wait > window {
		t.Fatalf("B after 3 hits on A and B: blocked %v, wait %s; want blocked within the window", blocked, wait)
	}
	if blocked, _ := a.Blocked("other", 3); blocked {
		t.Fatal("keys are not separate")
	}
	time.Sleep(window + 100*time.Millisecond)
	if blocked, _ := a.Blocked("k", 3); blocked {
		t.Fatal("still blocked after the window")
	}

	// Reset on one replica frees the key on the other.
	for range 3 {
		a.Hit("r")
	}
	if blocked, _ := b.Blocked("r", 3); !blocked {
		t.Fatal("not blocked after 3 hits")
	}
	b.Reset("r")
	if blocked, _ := a.Blocked("r", 3); blocked {
		t.Fatal("still blocked after Reset")
	}

	// Long keys (user-supplied names) are fine and stay distinct.
	long1, long2 := strings.Repeat("u", 5000)+"1", strings.Repeat("u", 5000)+"2"
	a.Hit(long1)
	if blocked, _ := b.Blocked(long1, 1); !blocked {
		t.Fatal("long key not counted")
	}
	if blocked, _ := b.Blocked(long2, 1); blocked {
		t.Fatal("long keys collide")
	}
}

// Concurrent hits from several replicas are all counted.
func TestRedisLimiterCountsConcurrentHits(t *testing.T) {
	url := testutil.RedisURL(t)
	prefix := testutil.RedisPrefix(t)
	testutil.CleanRedisPrefix(t, url, prefix)
	var wg sync.WaitGroup
	for range 4 {
		l := auth.NewRedisLimiter(testutil.RedisClient(t, url), prefix, time.Minute, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				l.Hit("c")
			}
		}()
	}
	wg.Wait()
	l := auth.NewRedisLimiter(testutil.RedisClient(t, url), prefix, time.Minute, nil)
	if blocked, _ := l.Blocked("c", 100); !blocked {
		t.Fatal("100 concurrent hits counted as fewer")
	}
	if blocked, _ := l.Blocked("c", 101); blocked {
		t.Fatal("100 concurrent hits counted as more")
	}
}

// Redis down: the limiter counts locally (still limiting), logs once, and
// goes back to Redis when it returns.
func TestRedisLimiterFallsBackWhenRedisIsDown(t *testing.T) {
	srv := testutil.StartRedis(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	l := auth.NewRedisLimiter(testutil.RedisClient(t, srv.URL), "rl:", time.Minute, log)
	other := auth.NewRedisLimiter(testutil.RedisClient(t, srv.URL), "rl:", time.Minute, nil)
	l.Hit("k")
	srv.Stop()

	start := time.Now()
	for range 2 {
		l.Hit("k")
	}
	if blocked, _ := l.Blocked("k", 2); !blocked {
		t.Fatal("not limited locally while Redis is down")
	}
	if blocked, _ := l.Blocked("k", 3); blocked {
		t.Fatal("the local count includes hits made before the outage")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("calls took %s with Redis down", d)
	}
	if n := strings.Count(logs.String(), "Redis unavailable"); n != 1 {
		t.Fatalf("outage logged %d times; want once:\n%s", n, logs.String())
	}

	srv.Start() // empty: the old count is gone with the server
	other.Hit("k")
	l.Hit("k")
	if blocked, _ := other.Blocked("k", 2); !blocked {
		t.Fatal("counts not shared again after Redis came back")
	}
	if !strings.Contains(logs.String(), "available again") {
		t.Fatalf("recovery not logged:\n%s", logs.String())
	}
}
