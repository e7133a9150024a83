package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/validation"
)

// Bounds of a schedule.
const (
	MaxIntervalHours = 24 * 30
	MaxKeepLast      = 100
)

// Schedule returns a workspace's schedule; ok is false when it has none.
func (s *Service) Schedule(ctx context.Context, p auth.Principal, wsID string) (store.SnapshotSchedule, bool, error) {
	if _, err := s.authorize(ctx, p, wsID, ActList, ""); err != nil {
		return store.SnapshotSchedule{}, false, err
	}
	sc, err := s.store.GetSnapshotSchedule(ctx, wsID)
	if errors.Is(err, store.ErrNotFound) {
		return store.SnapshotSchedule{}, false, nil
	}
	if err != nil {
		return store.SnapshotSchedule{}, false, fmt.Errorf("get snapshot schedule: %w", err)
	}
	return sc, true, nil
}

// SetSchedule takes a snapshot every intervalHours (the first one
// intervalHours from now) and keeps the newest keepLast scheduled ones.
// Scheduled snapshots are taken on behalf of p.
func (s *Service) SetSchedule(ctx context.Context, p auth.Principal, wsID string, intervalHours, keepLast int) (store.SnapshotSchedule, error) {
	const act = "snapshot.schedule"
	w, err := s.authorize(ctx, p, wsID, ActSchedule, act)
	if err != nil {
		return store.SnapshotSchedule{}, err
	}
	errs := validation.Errors{}
	if intervalHours < 1 || intervalHours > MaxIntervalHours {
		errs.Add("interval_hours", fmt.Sprintf("choose between 1 and %d hours", MaxIntervalHours))
	}
	if keepLast < 1 || keepLast > MaxKeepLast {
		errs.Add("keep_last", fmt.Sprintf("choose between 1 and %d snapshots", MaxKeepLast))
	}
	if err := errs.Err(); err != nil {
		return store.SnapshotSchedule{}, err
	}
	sc := store.SnapshotSchedule{WorkspaceID: w.ID, IntervalHours: intervalHours, KeepLast: keepLast,
		NextRunAt: s.now().Add(time.Duration(intervalHours) * time.Hour).UTC().Truncate(time.Second), UpdatedBy: p.UserID}
	if err := s.store.SetSnapshotSchedule(ctx, sc); err != nil {
		return store.SnapshotSchedule{}, fmt.Errorf("save snapshot schedule: %w", err)
	}
	s.record(ctx, p, act, w.ID, audit.ResultOK, "every="+strconv.Itoa(intervalHours)+"h keep="+strconv.Itoa(keepLast))
	return sc, nil
}

// ClearSchedule stops scheduled snapshots (those taken are kept).
func (s *Service) ClearSchedule(ctx context.Context, p auth.Principal, wsID string) error {
	const act = "snapshot.schedule"
	w, err := s.authorize(ctx, p, wsID, ActSchedule, act)
	if err != nil {
		return err
	}
	if err := s.store.DeleteSnapshotSchedule(ctx, w.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete snapshot schedule: %w", err)
	}
	s.record(ctx, p, act, w.ID, audit.ResultOK, "off")
	return nil
}

// Run is the background loop: it takes due scheduled snapshots, fails
// snapshots abandoned by a process that died, and removes the snapshots
// of deleted workspaces. A loop rather than a River periodic job: the
// interval is per workspace and changes at run time, and the claim in
// the database (ClaimSnapshotSchedule) already makes one replica win each
// run.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.ScheduleEvery)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick does one round of the background loop.
func (s *Service) Tick(ctx context.Context) {
	now := s.now()
	stale, err := s.store.FailStaleSnapshots(ctx, now.Add(-5*s.opts.TouchEvery), "The server stopped while taking this snapshot.")
	if err != nil && ctx.Err() == nil {
		s.log.Warn("fail abandoned snapshots", "err", err)
	}
	for _, n := range stale {
		_ = s.blobs.Delete(ctx, n.BlobKey)
	}
	s.sweep(ctx)
	due, err := s.store.DueSnapshotSchedules(ctx, now, 50)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("due snapshot schedules", "err", err)
		}
		return
	}
	for _, sc := range due {
		next := now.Add(time.Duration(sc.IntervalHours) * time.Hour).UTC().Truncate(time.Second)
		won, err := s.store.ClaimSnapshotSchedule(ctx, sc.WorkspaceID, sc.NextRunAt, next)
		if err != nil || !won {
			continue
		}
		u, err := s.store.GetUser(ctx, sc.UpdatedBy)
		if err != nil || u.Disabled {
			s.log.Warn("scheduled snapshot skipped: the user who set the schedule is gone or disabled", "workspace", sc.WorkspaceID)
			continue
		}
		p := auth.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
		if _, err := s.create(ctx, p, sc.WorkspaceID, "scheduled", true); err != nil {
			s.log.Warn("scheduled snapshot", "workspace", sc.WorkspaceID, "err", err)
		}
	}
}

// prune deletes the workspace's scheduled snapshots beyond its schedule's
// keep-last count (manual snapshots are never pruned).
func (s *Service) prune(ctx context.Context, wsID string) {
	sc, err := s.store.GetSnapshotSchedule(ctx, wsID)
	if err != nil {
		return
	}
	list, err := s.store.ListSnapshots(ctx, wsID, 200)
	if err != nil {
		return
	}
	kept := 0
	for _, n := range list {
		if !n.Scheduled || n.Status == store.SnapshotCreating {
			continue
		}
		if n.Status == store.SnapshotReady && kept < sc.KeepLast {
			kept++
			continue
		}
		if err := s.blobs.Delete(ctx, n.BlobKey); err != nil {
			s.log.Warn("prune snapshot", "snapshot", n.ID, "err", err)
			continue
		}
		if err := s.store.DeleteSnapshot(ctx, n.ID); err == nil {
			s.audit.Record(ctx, audit.Entry{Action: "snapshot.prune", ResourceType: "workspace", ResourceID: wsID, Result: audit.ResultOK, Detail: "snapshot=" + n.ID})
		}
	}
}

// sweep removes the snapshots (archives and rows) of deleted workspaces.
func (s *Service) sweep(ctx context.Context) {
	orphans, err := s.store.OrphanSnapshots(ctx, 100)
	if err != nil {
		return
	}
	for _, n := range orphans {
		if err := s.blobs.Delete(ctx, n.BlobKey); err != nil {
			continue // the store may be down; the next round retries
		}
		_ = s.store.DeleteSnapshot(ctx, n.ID)
	}
}
