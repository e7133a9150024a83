package handlers

import (
	"bufio"
	"context"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/workspace"
	fleetview "aicode/views/pages/fleet"
)

// HostInfo describes the engine's machine.
type HostInfo interface {
	Info(ctx context.Context) (engine.Info, error)
}

// OOMCounter counts and lists OOM kills.
type OOMCounter interface {
	OOMKillsSince(ctx context.Context, since time.Time) (map[string]int, error)
	RecentOOMs(ctx context.Context, p auth.Principal, since time.Time, limit int) ([]store.WorkspaceEvent, error)
}

// oomWindow is how far back the fleet page counts OOM kills.
const oomWindow = 7 * 24 * time.Hour

// fleetRefresh is how often the fleet table is re-rendered for a viewer;
// its OOM counts, a heavier query that changes rarely, every oomRefresh.
const (
	fleetRefresh = 2 * time.Second
	oomRefresh   = 30 * time.Second
)

// oomCounts counts OOM kills per workspace over the fleet's window. Best
// effort: the table is still useful without them.
func (s *Server) oomCounts(ctx context.Context) map[string]int {
	if s.OOMs == nil {
		return nil
	}
	ooms, _ := s.OOMs.OOMKillsSince(ctx, time.Now().Add(-oomWindow))
	return ooms
}

// fleetMax bounds the fleet page (the store's page size).
const fleetMax = store.MaxPageSize

func fleetSort(c *fiber.Ctx) (string, bool) {
	switch key := c.Query("sort"); key {
	case "name", "cpu", "mem", "mempct":
		return key, c.Query("desc") == "1"
	default:
		return "cpu", true
	}
}

// fleetPage lists every running workspace with its current use.
func (s *Server) fleetPage(c *fiber.Ctx) error {
	key, desc := fleetSort(c)
	ctx := c.UserContext()
	props, _, err := s.fleetProps(ctx, principal(c), key, desc, s.oomCounts(ctx))
	if err != nil {
		return err
	}
	props.Host = s.hostFigures(ctx)
	if s.OOMs != nil {
		if list, err := s.OOMs.RecentOOMs(ctx, principal(c), time.Now().Add(-oomWindow), 20); err == nil {
			for _, e := range list {
				props.OOMs = append(props.OOMs, fleetview.OOM{WorkspaceID: e.WorkspaceID, Workspace: e.WorkspaceName, At: e.At})
			}
		}
	}
	props.Host.StatsStreams = s.Stats.Upstreams()
	return page(c, fiber.StatusOK, s.layoutProps(c, "Fleet", "fleet"), fleetview.Page(props))
}

func (s *Server) hostFigures(ctx context.Context) fleetview.Host {
	if s.Host == nil {
		return fleetview.Host{Err: "no engine configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.Host.Info(ctx)
	if err != nil {
		return fleetview.Host{Err: errText(err)}
	}
	return fleetview.Host{CPUs: info.CPUs, MemoryBytes: uint64(max(info.MemoryBytes, 0)), Containers: info.Containers, Running: info.Running, Version: info.ServerVersion}
}

// fleetProps gathers the running workspaces and their latest samples; it
// also returns their containers, for the stream to keep watching.
func (s *Server) fleetProps(ctx context.Context, p auth.Principal, key string, desc bool, ooms map[string]int) (fleetview.Props, []store.Workspace, error) {
	pg, err := s.Workspaces.List(ctx, p, workspace.ListOptions{Status: store.StatusRunning, Page: 1, PerPage: fleetMax})
	if err != nil {
		return fleetview.Props{}, nil, err
	}
	props := fleetview.Props{User: p, Sort: key, Desc: desc}
	for _, w := range pg.Items {
		r := fleetview.Row{ID: w.ID, Name: w.Name, Owner: w.OwnerName, OOMKills: ooms[w.ID]}
		if sm, ok := s.Stats.Latest(w.ContainerID); ok && w.ContainerID != "" {
			r.HasSample = true
			r.CPUPercent, r.OnlineCPUs = sm.CPUPercent, sm.OnlineCPUs
			r.MemUsed, r.MemLimit, r.MemPercent, r.Pids = sm.MemUsed, sm.MemLimit, sm.MemPercent, sm.Pids
			props.Totals.CPUPercent += sm.CPUPercent
			props.Totals.MemUsed += sm.MemUsed
			if sm.MemPercent >= 90 {
				props.Totals.High++
			}
		}
		props.Rows = append(props.Rows, r)
	}
	sortFleet(props.Rows, key, desc)
	return props, pg.Items, nil
}

func sortFleet(rows []fleetview.Row, key string, desc bool) {
	less := func(a, b fleetview.Row) bool {
		switch key {
		case "cpu":
			return a.CPUPercent < b.CPUPercent
		case "mem":
			return a.MemUsed < b.MemUsed
		case "mempct":
			return a.MemPercent < b.MemPercent
		}
		return strings.ToLower(a.Name) < strings.ToLower(b.Name)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if desc {
			return less(rows[j], rows[i])
		}
		return less(rows[i], rows[j])
	})
}

// fleetStream re-renders the fleet table every few seconds. While a viewer
// is connected it holds a subscription on every running container, so the
// hub keeps exactly one engine stream per container however many admins
// watch.
func (s *Server) fleetStream(c *fiber.Ctx) error {
	key, desc := fleetSort(c)
	p := principal(c)
	sseHeaders(c)
	ctx := s.Streams
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(bw *bufio.Writer) {
		out := &sseWriter{w: bw}
		if sseOpen(bw) != nil {
			return
		}
		watch := newStatsWatch(s.Stats)
		defer watch.close()
		tick := time.NewTicker(fleetRefresh)
		defer tick.Stop()
		var ooms map[string]int
		var oomsAt time.Time
		for {
			if time.Since(oomsAt) >= oomRefresh {
				ooms, oomsAt = s.oomCounts(ctx), time.Now()
			}
			props, running, err := s.fleetProps(ctx, p, key, desc, ooms)
			if err == nil {
				// Watch what runs now; let go of what stopped.
				watch.set(ctx, running)
				out.html("rows", fleetview.Rows(props))
			} else {
				out.comment("fleet unavailable")
			}
			if out.flush() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}))
	return nil
}
