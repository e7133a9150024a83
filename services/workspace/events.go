package workspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/store"
)

// TopicEvents is the bus topic on which every newly recorded workspace
// event is published as a store.WorkspaceEvent.
const TopicEvents = "workspace.events"

// MaxEventsPerWorkspace bounds each workspace's stored event feed.
const MaxEventsPerWorkspace = 500

// MaxEventsPage bounds one read of the feed.
const MaxEventsPage = 200

// recordedActions are the engine's container actions worth a line in a
// workspace's feed; the rest (kill signals, execs, attaches) are noise.
var recordedActions = map[string]bool{
	store.EventCreate: true, store.EventStart: true, store.EventRestart: true,
	store.EventStop: true, store.EventDie: true, store.EventOOM: true,
	store.EventPause: true, store.EventUnpause: true, store.EventDestroy: true,
}

// recordEvent keeps an engine event in its workspace's feed and tells live
// viewers. It runs for every event, whether or not an action in flight
// owns the workspace: the feed is history, not state.
func (s *Service) recordEvent(ctx context.Context, ev engine.Event) {
	if !recordedActions[ev.Action] {
		return
	}
	id := ev.Labels[engine.LabelWorkspaceID]
	if id == "" {
		return
	}
	e := store.WorkspaceEvent{WorkspaceID: id, ContainerID: ev.ContainerID, Kind: ev.Action, At: ev.Time}
	if ev.Action == store.EventDie {
		if code, err := strconv.Atoi(ev.ExitCode); err == nil {
			e.ExitCode = &code
			e.Detail = "exit code " + ev.ExitCode
		}
	}
	added, err := s.store.AppendWorkspaceEvent(ctx, &e)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Deleted meanwhile, or a container of another installation.
		return
	case err != nil:
		s.log.Warn("record workspace event", "workspace", id, "action", ev.Action, "err", err)
		return
	case !added:
		return // a replay after the event stream reconnected
	}
	if _, err := s.store.TrimWorkspaceEvents(ctx, id, MaxEventsPerWorkspace); err != nil {
		s.log.Warn("trim workspace events", "workspace", id, "err", err)
	}
	if w, err := s.store.GetWorkspace(ctx, id); err == nil {
		e.WorkspaceName = w.Name
	}
	s.bus.Publish(TopicEvents, e)
}

// Events returns a workspace's most recent events, newest first.
func (s *Service) Events(ctx context.Context, p auth.Principal, id string, limit int) ([]store.WorkspaceEvent, error) {
	if _, _, err := s.GetWithAccess(ctx, p, id); err != nil {
		return nil, err
	}
	list, err := s.store.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: id, Limit: clampEvents(limit)})
	if err != nil {
		return nil, fmt.Errorf("list workspace events: %w", err)
	}
	return list, nil
}

// RecentOOMs lists the out-of-memory kills since the given time in the
// workspaces p may see, newest first (for the fleet overview).
func (s *Service) RecentOOMs(ctx context.Context, p auth.Principal, since time.Time, limit int) ([]store.WorkspaceEvent, error) {
	if !auth.Allowed(p, auth.ActWorkspaceList, "") {
		return nil, auth.ErrForbidden
	}
	list, err := s.store.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{
		VisibleTo: auth.ListScope(p),
		Kind:      store.EventOOM,
		Since:     since,
		Limit:     clampEvents(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("list recent OOM kills: %w", err)
	}
	return list, nil
}

// OOMKillsSince counts the out-of-memory kills since the given time per
// workspace id, across all workspaces (the fleet page is for admins, who
// see everything). The count stops at a few thousand events.
func (s *Service) OOMKillsSince(ctx context.Context, since time.Time) (map[string]int, error) {
	counts := map[string]int{}
	f := store.WorkspaceEventFilter{Kind: store.EventOOM, Since: since, Limit: store.MaxPageSize}
	for range 10 {
		page, err := s.store.ListWorkspaceEvents(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("count OOM kills: %w", err)
		}
		for _, e := range page {
			counts[e.WorkspaceID]++
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	return counts, nil
}

func clampEvents(n int) int {
	if n < 1 || n > MaxEventsPage {
		return MaxEventsPage
	}
	return n
}
