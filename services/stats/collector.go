package stats

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
)

// OnceSource takes one sample of a container without holding a stream.
type OnceSource interface {
	StatsOnce(ctx context.Context, containerID string) (engine.Stats, error)
}

// PointStore keeps the one-minute points.
type PointStore interface {
	SaveStatsPoints(ctx context.Context, points []store.StatsPoint) error
	PruneStatsPoints(ctx context.Context, before time.Time) (int64, error)
}

// Collector records every running workspace's use once per interval, for
// the 24 h and 7 d charts, and prunes points past the retention.
//
// It takes one one-shot sample per container per interval rather than
// holding engine streams: nothing streams from the engine when nobody
// watches, and the interval's averages come from the cumulative counters
// of two samples an interval apart, which is exact however the use varied
// in between.
type Collector struct {
	Source OnceSource
	Store  PointStore
	// Running lists the workspaces whose containers run.
	Running   func(ctx context.Context) ([]store.Workspace, error)
	Every     time.Duration
	Retention time.Duration
	Log       *slog.Logger

	mu   sync.Mutex
	prev map[string]engine.Stats // by container
}

// Run collects until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.Every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		if err := c.CollectOnce(ctx); err != nil && ctx.Err() == nil {
			c.Log.Warn("record resource figures", "err", err)
		}
		if time.Since(lastPrune) >= time.Hour {
			if n, err := c.Store.PruneStatsPoints(ctx, time.Now().Add(-c.Retention)); err != nil && ctx.Err() == nil {
				c.Log.Warn("prune resource figures", "err", err)
			} else if n > 0 {
				c.Log.Info("pruned old resource figures", "points", n)
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CollectOnce samples every running container and stores a point for
// each that was also sampled last time.
func (c *Collector) CollectOnce(ctx context.Context) error {
	ws, err := c.Running(ctx)
	if err != nil {
		return err
	}
	type result struct {
		w   store.Workspace
		st  engine.Stats
		err error
	}
	results := make([]result, len(ws))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, w := range ws {
		if w.ContainerID == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			st, err := c.Source.StatsOnce(sctx, w.ContainerID)
			results[i] = result{w: w, st: st, err: err}
		}()
	}
	wg.Wait()

	c.mu.Lock()
	if c.prev == nil {
		c.prev = map[string]engine.Stats{}
	}
	seen := map[string]bool{}
	var points []store.StatsPoint
	var errs []error
	for _, r := range results {
		if r.w.ID == "" {
			continue
		}
		if r.err != nil {
			if !errors.Is(r.err, engine.ErrNotFound) && !errors.Is(r.err, engine.ErrNotRunning) {
				errs = append(errs, r.err)
			}
			continue
		}
		if r.st.Read.IsZero() {
			continue // stopped between the listing and the sample
		}
		cid := r.w.ContainerID
		seen[cid] = true
		prev, ok := c.prev[cid]
		c.prev[cid] = r.st
		if !ok {
			continue
		}
		s := Compute(&prev, r.st)
		points = append(points, store.StatsPoint{
			WorkspaceID: r.w.ID,
			At:          r.st.Read.UTC().Truncate(time.Minute),
			CPUPercent:  s.CPUPercent,
			MemUsed:     int64(s.MemUsed),
			MemLimit:    int64(s.MemLimit),
			NetRxBps:    s.NetRxBps,
			NetTxBps:    s.NetTxBps,
			BlkReadBps:  s.BlkReadBps,
			BlkWriteBps: s.BlkWriteBps,
			Pids:        int64(s.Pids),
		})
	}
	// Containers gone since last time start over.
	for cid := range c.prev {
		if !seen[cid] {
			delete(c.prev, cid)
		}
	}
	c.mu.Unlock()
	if err := c.Store.SaveStatsPoints(ctx, points); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
