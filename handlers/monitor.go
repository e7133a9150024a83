package handlers

import (
	"bufio"
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"aicode/services/stats"
	"aicode/services/store"
	"aicode/services/workspace"
	monview "aicode/views/pages/monitor"
)

// StatsHub is what the handlers need from the stats hub: one engine
// stream per watched container, shared by every viewer.
type StatsHub interface {
	Subscribe(ctx context.Context, containerID string) (*stats.Subscription, error)
	Latest(containerID string) (stats.Sample, bool)
	// Upstreams is how many engine stats streams are open (fleet page).
	Upstreams() int
}

// StatsHistory reads the stored one-minute points.
type StatsHistory interface {
	StatsPoints(ctx context.Context, workspaceID string, since time.Time) ([]store.StatsPoint, error)
}

// monitorTab is the workspace's Monitor tab.
func (s *Server) monitorTab(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	lp := s.layoutProps(c, w.Name+" · Monitor", "workspaces")
	lp.Styles = []string{"uPlot.min.css"}
	lp.Scripts = []string{"uPlot.iife.min.js", "monitor.js"}
	return page(c, fiber.StatusOK, lp, monview.Tab(monview.Props{User: principal(c), Workspace: w, Access: loadedAccess(c)}))
}

// chartPoint is one sample as the charts take it: short keys, since a
// chart gets one a second.
type chartPoint struct {
	T     int64   `json:"t"` // unix milliseconds
	CPU   float64 `json:"cpu"`
	Mem   uint64  `json:"mem"`
	Limit uint64  `json:"lim"`
	Rx    float64 `json:"rx"`
	Tx    float64 `json:"tx"`
	Rd    float64 `json:"rd"`
	Wr    float64 `json:"wr"`
	Pids  uint64  `json:"pids"`
}

func sampleJSON(sm stats.Sample) chartPoint {
	return chartPoint{T: sm.Time.UnixMilli(), CPU: round2(sm.CPUPercent), Mem: sm.MemUsed, Limit: sm.MemLimit,
		Rx: round2(sm.NetRxBps), Tx: round2(sm.NetTxBps), Rd: round2(sm.BlkReadBps), Wr: round2(sm.BlkWriteBps), Pids: sm.Pids}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// monitorHistory serves the stored one-minute points of the last day
// (range=24h) or week (range=7d) as JSON for the charts.
func (s *Server) monitorHistory(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	var span time.Duration
	switch c.Query("range") {
	case "24h":
		span = 24 * time.Hour
	case "7d":
		span = 7 * 24 * time.Hour
	default:
		return fiber.NewError(fiber.StatusBadRequest, "range must be 24h or 7d")
	}
	pts, err := s.StatsHistory.StatsPoints(c.UserContext(), w.ID, time.Now().Add(-span))
	if err != nil {
		return err
	}
	out := make([]chartPoint, 0, len(pts))
	for _, p := range pts {
		out = append(out, chartPoint{T: p.At.UnixMilli(), CPU: round2(p.CPUPercent), Mem: uint64(max(p.MemUsed, 0)), Limit: uint64(max(p.MemLimit, 0)),
			Rx: round2(p.NetRxBps), Tx: round2(p.NetTxBps), Rd: round2(p.BlkReadBps), Wr: round2(p.BlkWriteBps), Pids: uint64(max(p.Pids, 0))})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"range": c.Query("range"), "stepSeconds": 60, "points": out})
}

// monitorStream feeds the Monitor tab: on connect the held history
// ("history", JSON), then every sample ("sample", JSON, for the charts;
// "numbers", HTML, swapped by htmx), and the stream's state ("state",
// HTML). When the container stops the stream stays open and resumes when
// the workspace runs again.
func (s *Server) monitorStream(c *fiber.Ctx) error {
	p := principal(c)
	id := loadedWorkspace(c).ID
	sseHeaders(c)
	ctx := s.Streams
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(bw *bufio.Writer) {
		out := &sseWriter{w: bw}
		if sseOpen(bw) != nil {
			return
		}
		// Status changes wake a stream that waits for the workspace to
		// start; subscribed before the first look, so none is missed.
		status := s.Bus.Subscribe(workspace.TopicStatus, sseBuffer)
		defer status.Close()
		for ctx.Err() == nil {
			w, err := s.Workspaces.Get(ctx, p, id)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					out.html("state", monview.State("ended", "This workspace was deleted."))
					_ = out.flush()
					return
				}
				out.html("state", monview.State("waiting", "Cannot read the workspace right now; retrying…"))
				if out.flush() != nil || !sleepCtx(ctx, 5*time.Second) {
					return
				}
				continue
			}
			if w.Status == store.StatusRunning && w.ContainerID != "" {
				if !s.followContainer(ctx, out, w.ContainerID) {
					return
				}
			} else {
				out.html("state", monview.State("stopped", "Not running: figures resume when the workspace starts."))
				if out.flush() != nil {
					return
				}
			}
			if !waitForChange(ctx, out, status, id) {
				return
			}
		}
	}))
	return nil
}

// followContainer streams one container's samples until it ends (true) or
// the client or server goes away (false).
func (s *Server) followContainer(ctx context.Context, out *sseWriter, containerID string) bool {
	sub, err := s.Stats.Subscribe(ctx, containerID)
	if err != nil {
		out.html("state", monview.State("waiting", "Figures are not available right now: "+errText(err)))
		return out.flush() == nil
	}
	defer sub.Close()
	hist := sub.History()
	pts := make([]chartPoint, 0, len(hist))
	for _, sm := range hist {
		pts = append(pts, sampleJSON(sm))
	}
	out.json("history", pts)
	if len(hist) > 0 {
		last := hist[len(hist)-1]
		out.html("numbers", monview.Numbers(&last))
	}
	out.html("state", monview.State("live", "Live"))
	if out.flush() != nil {
		return false
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, heartbeatEvery)
		sm, err := sub.Next(nctx)
		cancel()
		switch {
		case err == nil:
			out.json("sample", sampleJSON(sm))
			out.html("numbers", monview.Numbers(&sm))
		case errors.Is(err, stats.ErrEnded):
			out.html("state", monview.State("stopped", "The container stopped."))
			out.html("numbers", monview.Numbers(nil))
			return out.flush() == nil
		case ctx.Err() != nil:
			return false
		case errors.Is(err, context.DeadlineExceeded):
			// No sample for a while (a paused container): keep the
			// connection alive and notice a client that left.
			out.comment("ping")
		default:
			out.html("state", monview.State("waiting", "Figures interrupted: "+errText(err)))
			return out.flush() == nil
		}
		if out.flush() != nil {
			return false
		}
	}
}

// waitForChange waits until the workspace changes (true), sending heartbeats
// meanwhile; false when the client or server went away.
func waitForChange(ctx context.Context, out *sseWriter, sub interface{ C() <-chan any }, id string) bool {
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			out.comment("ping")
			if out.flush() != nil {
				return false
			}
		case msg := <-sub.C():
			if ch, ok := msg.(workspace.Change); ok && (ch.Workspace.ID == id || ch.Reload) {
				return true
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errText is an error in words for a stream's state line.
func errText(err error) string {
	_, _, msg := classify(err)
	return msg
}

// statsWatch holds one hub subscription per container a stream shows
// through Latest (fleet page, list usage), so the hub keeps exactly those
// engine streams open while the stream lasts. Samples are not read from
// the subscriptions; their bounded queues just drop the oldest.
type statsWatch struct {
	hub  StatsHub
	subs map[string]*stats.Subscription
}

func newStatsWatch(hub StatsHub) *statsWatch {
	return &statsWatch{hub: hub, subs: map[string]*stats.Subscription{}}
}

// set watches the containers of these workspaces and no others. An ended
// subscription (the container restarted) is renewed.
func (sw *statsWatch) set(ctx context.Context, ws []store.Workspace) {
	keep := make(map[string]bool, len(ws))
	for _, w := range ws {
		cid := w.ContainerID
		if cid == "" {
			continue
		}
		keep[cid] = true
		if sub := sw.subs[cid]; sub != nil && sub.Err() != nil {
			sub.Close()
			delete(sw.subs, cid)
		}
		if sw.subs[cid] == nil {
			if sub, err := sw.hub.Subscribe(ctx, cid); err == nil {
				sw.subs[cid] = sub
			}
		}
	}
	for cid, sub := range sw.subs {
		if !keep[cid] {
			sub.Close()
			delete(sw.subs, cid)
		}
	}
}

func (sw *statsWatch) close() {
	for cid, sub := range sw.subs {
		sub.Close()
		delete(sw.subs, cid)
	}
}
