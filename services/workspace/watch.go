package workspace

import (
	"context"
	"errors"
	"strings"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
)

// Watch keeps stored statuses in line with the engine until ctx ends: it
// follows the engine's event stream and reconciles everything whenever the
// stream (re)connects, so changes made while it was down are caught too.
func (s *Service) Watch(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		// Ask the engine to replay from just before the reconcile, so an
		// event between the two is seen by at least one of them.
		since := s.now().Add(-time.Second)
		evs, errs := s.engine.Events(ctx, since)
		if err := s.Reconcile(ctx); err != nil {
			s.log.Warn("reconcile with engine failed", "err", err)
		} else {
			backoff = 500 * time.Millisecond
		}
		for ev := range evs {
			s.handleEvent(ctx, ev)
		}
		err := <-errs
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("engine event stream broke; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// ignoredActions never change a container's lifecycle state; exec events in
// particular arrive for every terminal session.
func ignoredAction(a string) bool {
	if strings.HasPrefix(a, "exec_") {
		return true
	}
	switch a {
	case "attach", "detach", "resize", "top", "copy", "archive-path", "extract-to-dir", "export", "commit", "update", "rename", "health_status":
		return true
	}
	return false
}

func (s *Service) handleEvent(ctx context.Context, ev engine.Event) {
	if ignoredAction(ev.Action) {
		return
	}
	s.recordEvent(ctx, ev)
	id := ev.Labels[engine.LabelWorkspaceID]
	if id == "" {
		return
	}
	// An action in flight observes the result itself when it finishes.
	unlock, ok := s.locks.tryLock(id)
	if !ok {
		return
	}
	defer unlock()
	w, err := s.store.GetWorkspace(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("load workspace for engine event", "workspace", id, "err", err)
		}
		return
	}
	if w.ContainerID != "" && w.ContainerID != ev.ContainerID {
		return // about a container this workspace no longer uses
	}
	cid := ev.ContainerID
	var obsErr error
	if ev.Action == "destroy" {
		_, obsErr = s.applyStatus(ctx, w, store.StatusUpdate{
			Status: store.StatusMissing, Detail: "the container was removed outside the app",
			ContainerID: &cid, ObservedAt: s.now().UTC(),
		})
	} else {
		_, obsErr = s.observe(ctx, id, &cid)
	}
	if obsErr != nil && !errors.Is(obsErr, ErrNotFound) {
		s.log.Warn("observe after engine event", "workspace", id, "action", ev.Action, "err", obsErr)
	}
}

// Reconcile compares every stored workspace with the containers the engine
// has and records the differences. It never starts, stops or removes
// anything: a container stopped or removed by an operator is shown as such,
// not fought. Containers labelled as ours but unknown to the store (another
// installation sharing the engine, or a crash mid-create) are left alone.
func (s *Service) Reconcile(ctx context.Context) error {
	containers, err := s.engine.ListManaged(ctx)
	if err != nil {
		return err
	}
	all, err := s.store.AllWorkspaces(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]engine.ContainerState, len(containers))
	for _, c := range containers {
		byID[c.ID] = c
	}
	byWorkspace := make(map[string]engine.ContainerState, len(containers))
	for _, c := range containers {
		if id := c.Labels[engine.LabelWorkspaceID]; id != "" {
			byWorkspace[id] = c
		}
	}
	known := make(map[string]bool, len(all))
	changed := 0
	for _, w := range all {
		known[w.ID] = true
		c, found := byID[w.ContainerID]
		if !found && w.ContainerID == "" {
			c, found = byWorkspace[w.ID]
		}
		var upd store.StatusUpdate
		switch {
		case found:
			upd.Status, upd.Detail = StatusOf(c, w.Desired)
			if upd.Status != w.Status && upd.Status != store.StatusRunning {
				// The list has no exit codes; ask for the detail.
				if st, err := s.engine.InspectContainer(ctx, c.ID); err == nil {
					upd.Status, upd.Detail = StatusOf(st, w.Desired)
				}
			}
			cid := c.ID
			upd.ContainerID = &cid
		case w.Status == store.StatusMissing:
			continue
		default:
			upd.Status, upd.Detail = store.StatusMissing, "the container was removed outside the app"
		}
		if upd.Status == w.Status && upd.Detail == w.StatusDetail && (upd.ContainerID == nil || *upd.ContainerID == w.ContainerID) {
			continue
		}
		unlock, ok := s.locks.tryLock(w.ID)
		if !ok {
			continue
		}
		// Skip if an action changed it since the snapshot above; its own
		// observation is newer than ours.
		if fresh, err := s.store.GetWorkspace(ctx, w.ID); err != nil || fresh.Status != w.Status ||
			fresh.ContainerID != w.ContainerID || fresh.Desired != w.Desired {
			unlock()
			continue
		}
		upd.ObservedAt = s.now().UTC()
		_, err := s.applyStatus(ctx, w, upd)
		unlock()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		changed++
	}
	orphans := 0
	for _, c := range containers {
		if id := c.Labels[engine.LabelWorkspaceID]; id != "" && !known[id] {
			orphans++
		}
	}
	s.log.Info("reconciled workspaces with engine", "workspaces", len(all), "containers", len(containers), "changed", changed, "unknown_containers", orphans)
	return nil
}
