package bus_test

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"aicode/services/bus"
	"aicode/testutil"
)

type change struct {
	ID     string
	Status string
	At     time.Time
	Tags   []string
}

// replica is one bus with its bridge.
type replica struct {
	bus    *bus.Bus
	bridge *bus.RedisBridge
}

func newReplica(t *testing.T, url, prefix, origin string) *replica {
	t.Helper()
	b := bus.New()
	b.RegisterCodec("status", bus.JSON[change]())
	b.RegisterCodec("task:*", bus.JSON[change]())
	b.RegisterCodec("task:special", bus.JSON[string]())
	br, err := bus.NewRedisBridge(b, testutil.RedisClient(t, url), bus.RedisOptions{Prefix: prefix, Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	br.Start(context.Background())
	t.Cleanup(func() { br.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := br.WaitSubscribed(ctx); err != nil {
		t.Fatalf("bridge %s not subscribed: %v", origin, err)
	}
	return &replica{bus: b, bridge: br}
}

func recv(t *testing.T, s *bus.Subscription, within time.Duration) any {
	t.Helper()
	select {
	case m := <-s.C():
		return m
	case <-time.After(within):
		t.Fatal("no message arrived")
		return nil
	}
}

func quiet(t *testing.T, s *bus.Subscription, within time.Duration) {
	t.Helper()
	select {
	case m := <-s.C():
		t.Fatalf("unexpected message %#v", m)
	case <-time.After(within):
	}
}

func TestRedisBridgeCarriesTypedMessages(t *testing.T) {
	url := testutil.RedisURL(t)
	prefix := testutil.RedisPrefix(t)
	a := newReplica(t, url, prefix, "a")
	b := newReplica(t, url, prefix, "b")
	// A third deployment on the same Redis hears nothing.
	other := newReplica(t, url, testutil.RedisPrefix(t), "a")

	onB := b.bus.Subscribe("status", 16)
	onA := a.bus.Subscribe("status", 16)
	onOther := other.bus.Subscribe("status", 16)
	taskOnB := b.bus.Subscribe("task:42", 16)
	specialOnB := b.bus.Subscribe("task:special", 16)
	localOnB := b.bus.Subscribe("local", 16)
	var hooked atomic.Int64
	b.bus.OnPublish("status", func(any) { hooked.Add(1) })

	at := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	want := change{ID: "w1", Status: "running", At: at, Tags: []string{"x", "y"}}
	a.bus.Publish("status", want)
	if got := recv(t, onB, 5*time.Second); !reflect.DeepEqual(got, want) {
		t.Fatalf("B received %#v (%T); want %#v", got, got, want)
	}
	if hooked.Load() != 1 {
		t.Fatalf("B's OnPublish hook ran %d times for a remote message; want 1", hooked.Load())
	}
	// A's own subscriber got it once, locally; the echo is ignored.
	if got := recv(t, onA, time.Second); !reflect.DeepEqual(got, want) {
		t.Fatalf("A received %#v", got)
	}

	// Prefix codecs, and a longer pattern winning over a shorter one.
	a.bus.Publish("task:42", change{ID: "t42"})
	if got, ok := recv(t, taskOnB, 5*time.Second).(change); !ok || got.ID != "t42" {
		t.Fatalf("task:42 on B: %#v", got)
	}
	a.bus.Publish("task:special", "plain string")
	if got := recv(t, specialOnB, 5*time.Second); got != "plain string" {
		t.Fatalf("task:special on B: %#v", got)
	}
	// A message of the wrong type for its codec stays local.
	a.bus.Publish("task:42", 17)
	// Topics without a codec stay local.
	a.bus.Publish("local", "only A")

	// Order the rest after everything above: B answers with a marker that
	// A must see exactly once and nothing else.
	b.bus.Publish("status", change{ID: "marker"})
	if got, ok := recv(t, onA, 5*time.Second).(change); !ok || got.ID != "marker" {
		t.Fatalf("A received %#v; want B's marker", got)
	}
	if got, ok := recv(t, onB, time.Second).(change); !ok || got.ID != "marker" {
		t.Fatalf("B received %#v; want its own marker once", got)
	}
	quiet(t, onA, 300*time.Millisecond)
	quiet(t, onB, 50*time.Millisecond)
	quiet(t, localOnB, 50*time.Millisecond)
	quiet(t, taskOnB, 50*time.Millisecond)
	quiet(t, onOther, 50*time.Millisecond)
	if st := a.bridge.Stats(); st.Sent != 3 || st.Dropped != 1 || !st.Connected {
		t.Fatalf("A's stats %+v; want 3 sent, 1 dropped (the mistyped message), connected", st)
	}
	if st := b.bridge.Stats(); st.Received != 3 {
		t.Fatalf("B's stats %+v; want 3 received", st)
	}
}

// A remote burst behaves as a local one: in order, and a small queue
// keeps the newest messages and is marked lagged.
func TestRedisBridgeKeepsOrderAndLagging(t *testing.T) {
	url := testutil.RedisURL(t)
	prefix := testutil.RedisPrefix(t)
	a := newReplica(t, url, prefix, "a")
	b := newReplica(t, url, prefix, "b")
	small := b.bus.Subscribe("status", 2)
	all := b.bus.Subscribe("status", 1000)
	const n = 500
	for i := range n {
		a.bus.Publish("status", change{ID: fmt.Sprint(i)})
	}
	for i := range n {
		got := recv(t, all, 10*time.Second).(change)
		if got.ID != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %s (order)", i, got.ID)
		}
	}
	if all.Lagged() {
		t.Fatal("a roomy subscriber lagged")
	}
	// The last message may reach the small queue just after the roomy one.
	time.Sleep(100 * time.Millisecond)
	if !small.Lagged() {
		t.Fatal("a small subscriber that overflowed is not marked lagged")
	}
	g1, g2 := recv(t, small, time.Second).(change), recv(t, small, time.Second).(change)
	if g1.ID != fmt.Sprint(n-2) || g2.ID != fmt.Sprint(n-1) {
		t.Fatalf("small subscriber kept %s, %s; want the newest two", g1.ID, g2.ID)
	}
}

// With Redis away, publishing stays as fast as ever and local delivery is
// unaffected; what cannot go out is counted.
func TestRedisBridgeNeverBlocksPublishers(t *testing.T) {
	srv := testutil.StartRedis(t)
	a := newReplica(t, srv.URL, "p:", "a")
	local := a.bus.Subscribe("status", 1)
	srv.Stop()
	start := time.Now()
	const n = 100_000
	for i := range n {
		a.bus.Publish("status", change{ID: fmt.Sprint(i)})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d publishes took %s with Redis down", n, d)
	}
	if got := recv(t, local, time.Second).(change); got.ID != fmt.Sprint(n-1) {
		t.Fatalf("local subscriber holds %s; want the newest", got.ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.bridge.Stats().Dropped == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.bridge.Stats(); st.Dropped == 0 || st.Sent > 0 {
		t.Fatalf("stats %+v; want drops and nothing sent", st)
	}
}

// Redis stopped: delivery between replicas stops. Redis back on the same
// port: it resumes by itself, and viewers are told they may have missed
// messages.
func TestRedisBridgeResumesAfterRedisRestarts(t *testing.T) {
	srv := testutil.StartRedis(t)
	a := newReplica(t, srv.URL, "p:", "a")
	b := newReplica(t, srv.URL, "p:", "b")
	onB := b.bus.Subscribe("status", 64)
	a.bus.Publish("status", change{ID: "before"})
	if got := recv(t, onB, 5*time.Second).(change); got.ID != "before" {
		t.Fatalf("got %s", got.ID)
	}

	srv.Stop()
	waitFor(t, "both bridges notice Redis is gone", func() bool {
		return !a.bridge.Stats().Connected && !b.bridge.Stats().Connected
	})
	a.bus.Publish("status", change{ID: "during"})
	// Given up on (after the client's own retries), not held for later.
	waitFor(t, "A drops what it cannot publish", func() bool { return a.bridge.Stats().Dropped == 1 })
	quiet(t, onB, 300*time.Millisecond)

	srv.Start()
	waitFor(t, "both bridges resubscribe", func() bool {
		sa, sb := a.bridge.Stats(), b.bridge.Stats()
		return sa.Connected && sb.Connected && sa.Reconnects == 1 && sb.Reconnects == 1
	})
	a.bus.Publish("status", change{ID: "after"})
	if got := recv(t, onB, 5*time.Second).(change); got.ID != "after" {
		t.Fatalf("after the restart B received %s; want after", got.ID)
	}
	if !onB.Lagged() {
		t.Fatal("B's subscriber was not told it may have missed messages during the outage")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A bridge needs a usable origin name.
func TestRedisBridgeNeedsOrigin(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, o := range []string{"", "a\nb"} {
		if _, err := bus.NewRedisBridge(bus.New(), c, bus.RedisOptions{Origin: o}); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
}
