package stats

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
)

type onceFake struct {
	mu    sync.Mutex
	calls int
	// by container: a function of the call number
	stats map[string]func(n int) (engine.Stats, error)
}

func (f *onceFake) StatsOnce(_ context.Context, id string) (engine.Stats, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	fn := f.stats[id]
	f.mu.Unlock()
	if fn == nil {
		return engine.Stats{}, &engine.Error{Op: "stats", Kind: engine.ErrNotFound, Msg: "no such container"}
	}
	return fn(n)
}

type pointsFake struct {
	mu     sync.Mutex
	saved  []store.StatsPoint
	pruned []time.Time
}

func (p *pointsFake) SaveStatsPoints(_ context.Context, pts []store.StatsPoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.saved = append(p.saved, pts...)
	return nil
}

func (p *pointsFake) PruneStatsPoints(_ context.Context, before time.Time) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruned = append(p.pruned, before)
	return 0, nil
}

func TestCollectorAveragesOverTheInterval(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	// One minute apart: the container used 30 s of CPU out of 120 s of
	// host CPU time on 2 CPUs (50% of one CPU), and received 6 MB.
	round := 0
	sample := func(id string) engine.Stats {
		return engine.Stats{
			ID:       id,
			Read:     t0.Add(time.Duration(round) * time.Minute),
			CPU:      engine.CPUStats{TotalUsage: uint64(round) * 30e9, SystemUsage: 1000e9 + uint64(round)*120e9, OnlineCPUs: 2},
			Memory:   engine.MemoryStats{Usage: 300 << 20, Limit: 1 << 30, Stats: map[string]uint64{"total_inactive_file": 100 << 20}},
			Networks: map[string]engine.NetIO{"eth0": {RxBytes: uint64(round) * 6e6}},
			Pids:     7,
		}
	}
	src := &onceFake{stats: map[string]func(int) (engine.Stats, error){
		"c1": func(int) (engine.Stats, error) { return sample("c1"), nil },
		"c2": func(int) (engine.Stats, error) {
			return engine.Stats{}, fmt.Errorf("engine hiccup: %w", io.ErrUnexpectedEOF)
		},
	}}
	pts := &pointsFake{}
	running := []store.Workspace{
		{ID: "w1", ContainerID: "c1"},
		{ID: "w2", ContainerID: "c2"},
		{ID: "w3", ContainerID: "gone"},
		{ID: "w4"}, // no container: skipped
	}
	c := &Collector{
		Source: src, Store: pts, Every: time.Minute, Retention: time.Hour, Log: slog.New(slog.DiscardHandler),
		Running: func(context.Context) ([]store.Workspace, error) { return running, nil },
	}
	ctx := context.Background()
	err := c.CollectOnce(ctx)
	if err == nil {
		t.Fatal("an engine error was not reported")
	}
	if len(pts.saved) != 0 {
		t.Fatalf("first pass stored %d points; it has nothing to average over", len(pts.saved))
	}
	round = 1
	_ = c.CollectOnce(ctx)
	if len(pts.saved) != 1 {
		t.Fatalf("second pass stored %+v", pts.saved)
	}
	p := pts.saved[0]
	if p.WorkspaceID != "w1" || !p.At.Equal(time.Date(2026, 5, 1, 12, 1, 0, 0, time.UTC)) {
		t.Fatalf("point %+v", p)
	}
	if math.Abs(p.CPUPercent-50) > 0.001 || p.MemUsed != 200<<20 || p.MemLimit != 1<<30 || p.Pids != 7 || math.Abs(p.NetRxBps-100e3) > 0.001 {
		t.Fatalf("figures %+v", p)
	}

	// A container that stops and comes back starts over: no point
	// averaged across the gap.
	running = running[1:]
	_ = c.CollectOnce(ctx)
	running = append(running, store.Workspace{ID: "w1", ContainerID: "c1"})
	round = 5
	_ = c.CollectOnce(ctx)
	if len(pts.saved) != 1 {
		t.Fatalf("a point was averaged across a gap: %+v", pts.saved[1:])
	}
}

func TestCollectorRunPrunesAndStops(t *testing.T) {
	pts := &pointsFake{}
	c := &Collector{
		Source: &onceFake{}, Store: pts, Every: 10 * time.Millisecond, Retention: 48 * time.Hour, Log: slog.New(slog.DiscardHandler),
		Running: func(context.Context) ([]store.Workspace, error) { return nil, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	pts.mu.Lock()
	defer pts.mu.Unlock()
	// Pruned once (hourly), at the retention.
	if len(pts.pruned) != 1 || time.Since(pts.pruned[0]) < 47*time.Hour {
		t.Fatalf("pruned %v", pts.pruned)
	}
}
