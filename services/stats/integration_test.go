package stats_test

// An external test package: testutil boots the app, whose handlers import
// this package.

import (
	"context"
	"errors"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/services/stats"
	"aicode/testutil"
)

// runContainer starts cmd in a busybox container without a network and
// removes it when the test ends.
func runContainer(t *testing.T, eng *engine.Engine, cmd ...string) string {
	t.Helper()
	return testutil.RunContainer(t, eng, engine.ContainerSpec{Cmd: cmd, MemoryBytes: 256 << 20, Labels: map[string]string{"io.aicode.test": "stats"}})
}

// waitFor reads samples until ok says yes, failing after d.
func waitFor(t *testing.T, s *stats.Subscription, d time.Duration, what string, ok func(stats.Sample) bool) stats.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var last stats.Sample
	for {
		smp, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v (last sample %+v)", what, err, last)
		}
		if ok(smp) {
			return smp
		}
		last = smp
	}
}

func subscribe(t *testing.T, h *stats.Hub, id string) *stats.Subscription {
	t.Helper()
	s, err := h.Subscribe(context.Background(), id)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return s
}

// ended reads until Next fails and returns the *stats.EndedError it must be.
func ended(t *testing.T, s *stats.Subscription) *stats.EndedError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := s.Next(ctx)
		if err == nil {
			continue
		}
		var e *stats.EndedError
		if !errors.As(err, &e) || !errors.Is(err, stats.ErrEnded) {
			t.Fatalf("next: %v, want an stats.EndedError", err)
		}
		return e
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Against the real engine: a busy loop shows as CPU, memory written to
// /dev/shm shows as memory used, the grace period closes the engine stream,
// and stopping the container ends the subscription.
func TestEngineHub(t *testing.T) {
	eng := testutil.Engine(t)
	id := runContainer(t, eng, "sh", "-c", "while :; do :; done")
	const grace = 300 * time.Millisecond
	h := stats.NewHub(stats.EngineSource(eng), stats.Options{Grace: grace}, nil)
	defer h.Close()

	s := subscribe(t, h, id)
	busy := waitFor(t, s, 30*time.Second, "CPU above 50%", func(smp stats.Sample) bool { return smp.CPUPercent > 50 })
	t.Logf("busy loop: %+v", busy)
	if busy.CPUPercent > float64(busy.OnlineCPUs)*100+1 || busy.OnlineCPUs < 1 {
		t.Errorf("cpu %.1f%% on %d CPUs", busy.CPUPercent, busy.OnlineCPUs)
	}
	if busy.MemLimit != 256<<20 || busy.MemUsed == 0 || busy.MemUsed > 64<<20 {
		t.Errorf("memory %d of %d", busy.MemUsed, busy.MemLimit)
	}
	if busy.Pids < 2 || busy.PidsLimit != 64 {
		t.Errorf("pids %d/%d", busy.Pids, busy.PidsLimit)
	}
	if busy.NetRx != 0 || busy.NetTx != 0 || busy.NetRxBps != 0 {
		t.Errorf("network traffic without a network: %+v", busy)
	}
	if h.Upstreams() != 1 {
		t.Errorf("%d upstreams for one container", h.Upstreams())
	}

	// A second viewer shares the stream and starts with the history.
	s2 := subscribe(t, h, id)
	if len(s2.History()) == 0 {
		t.Error("no history for a second viewer")
	}
	if h.Upstreams() != 1 {
		t.Errorf("%d upstreams for two viewers", h.Upstreams())
	}

	// 40 MiB in tmpfs is memory the container holds (shmem is not
	// reclaimable file cache).
	before := busy.MemUsed
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, code, err := eng.Run(ctx, id, engine.ExecSpec{Cmd: []string{"dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1048576", "count=40"}})
	if err != nil || code != 0 {
		t.Fatalf("fill /dev/shm: %v, exit %d: %s", err, code, out)
	}
	grown := waitFor(t, s, 30*time.Second, "memory to grow by 35 MiB", func(smp stats.Sample) bool { return smp.MemUsed >= before+35<<20 })
	t.Logf("memory %d MiB -> %d MiB (%.1f%%)", before>>20, grown.MemUsed>>20, grown.MemPercent)
	if grown.MemUsed > before+60<<20 {
		t.Errorf("memory grew from %d to %d for 40 MiB", before, grown.MemUsed)
	}

	// Everyone leaves: the engine stream closes after the grace period.
	s.Close()
	left := time.Now() // the grace period starts in the Close below
	s2.Close()
	eventually(t, 10*time.Second, "the upstream to close", func() bool { return h.Upstreams() == 0 })
	if d := time.Since(left); d < grace {
		t.Errorf("upstream closed %v after the last viewer left, within the %v grace", d, grace)
	}
	if _, ok := h.Latest(id); !ok {
		t.Error("no history kept after the upstream closed")
	}

	// Stopping the container ends a subscription on its own (nobody calls
	// ContainerEnded here).
	s = subscribe(t, h, id)
	defer s.Close()
	waitFor(t, s, 30*time.Second, "a sample", func(stats.Sample) bool { return true })
	stopped := time.Now()
	if err := eng.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	e := ended(t, s)
	t.Logf("ended %v after stop: %v", time.Since(stopped), e)
	if e.Reason != stats.ReasonStopped || e.ContainerID != id {
		t.Errorf("ended with %+v", e)
	}
	eventually(t, 10*time.Second, "the upstream to close", func() bool { return h.Upstreams() == 0 })

	// A stopped container ends a new subscription at once.
	s3 := subscribe(t, h, id)
	defer s3.Close()
	if e := ended(t, s3); e.Reason != stats.ReasonStopped {
		t.Errorf("subscription to a stopped container ended with %+v", e)
	}

	// So does a removed one.
	if err := eng.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	s4 := subscribe(t, h, id)
	defer s4.Close()
	if e := ended(t, s4); e.Reason != stats.ReasonRemoved {
		t.Errorf("subscription to a removed container ended with %+v", e)
	}
	if _, err := s4.Next(context.Background()); !errors.Is(err, stats.ErrEnded) {
		t.Errorf("next after the end: %v", err)
	}
	eventually(t, 10*time.Second, "no upstream", func() bool { return h.Upstreams() == 0 })
}
