package store

import (
	"context"
	"fmt"
	"time"
)

// SnapshotStatus is where a snapshot is in its life.
type SnapshotStatus string

const (
	SnapshotCreating SnapshotStatus = "creating"
	SnapshotReady    SnapshotStatus = "ready"
	SnapshotFailed   SnapshotStatus = "failed"
)

// Snapshot is an archive of a workspace's files kept in the blob store.
type Snapshot struct {
	ID          string
	WorkspaceID string
	CreatedBy   string
	Label       string
	// Scheduled: taken by the workspace's schedule, and pruned by it.
	Scheduled bool
	Status    SnapshotStatus
	// Error says why a failed snapshot failed.
	Error string
	// SizeBytes is the archive's size; FileCount its entries.
	SizeBytes  int64
	FileCount  int64
	BlobKey    string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time

	// Filled by reads.
	CreatedByName string
}

// SnapshotSchedule takes a snapshot of a workspace every IntervalHours and
// keeps the newest KeepLast scheduled ones.
type SnapshotSchedule struct {
	WorkspaceID   string
	IntervalHours int
	KeepLast      int
	NextRunAt     time.Time
	UpdatedBy     string
	UpdatedAt     time.Time
}

const snapshotColumns = `s.id, s.workspace_id, s.created_by, s.label, s.scheduled, s.status, s.error, s.size_bytes,
	s.file_count, s.blob_key, s.created_at, s.updated_at, s.finished_at, COALESCE(u.username, '')`

const snapshotFrom = ` FROM snapshots s LEFT JOIN users u ON u.id = s.created_by`

func scanSnapshot(sc interface{ Scan(...any) error }) (Snapshot, error) {
	var n Snapshot
	err := sc.Scan(&n.ID, &n.WorkspaceID, &n.CreatedBy, &n.Label, &n.Scheduled, &n.Status, &n.Error, &n.SizeBytes,
		&n.FileCount, &n.BlobKey, timeCol{&n.CreatedAt}, timeCol{&n.UpdatedAt}, nullTimeCol{&n.FinishedAt}, &n.CreatedByName)
	return n, err
}

// CreateSnapshot stores a new snapshot (status creating unless set),
// setting its ID and times.
func (s *sqlStore) CreateSnapshot(ctx context.Context, n *Snapshot) error {
	const op = "create snapshot"
	if n.WorkspaceID == "" || n.CreatedBy == "" || n.BlobKey == "" {
		return fmt.Errorf("%s: workspace, creator and blob key are required", op)
	}
	if n.ID == "" {
		n.ID = newID()
	}
	if n.Status == "" {
		n.Status = SnapshotCreating
	}
	now := normTime(s.now())
	if n.CreatedAt.IsZero() {
		n.CreatedAt = now
	}
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = now
	_, err := s.exec(ctx, `INSERT INTO snapshots (id, workspace_id, created_by, label, scheduled, status, error, size_bytes,
			file_count, blob_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.WorkspaceID, n.CreatedBy, n.Label, n.Scheduled, string(n.Status), n.Error, n.SizeBytes, n.FileCount,
		n.BlobKey, s.ts(n.CreatedAt), s.ts(now))
	return s.fail(op, err)
}

// GetSnapshot returns one snapshot.
func (s *sqlStore) GetSnapshot(ctx context.Context, id string) (Snapshot, error) {
	n, err := scanSnapshot(s.queryRow(ctx, `SELECT `+snapshotColumns+snapshotFrom+` WHERE s.id = ?`, id))
	return n, s.fail("get snapshot", err)
}

// ListSnapshots returns a workspace's snapshots, newest first.
func (s *sqlStore) ListSnapshots(ctx context.Context, workspaceID string, limit int) ([]Snapshot, error) {
	const op = "list snapshots"
	if limit < 1 || limit > MaxPageSize {
		return nil, fmt.Errorf("%s: limit %d out of range", op, limit)
	}
	return s.querySnapshots(ctx, op, `SELECT `+snapshotColumns+snapshotFrom+`
		WHERE s.workspace_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, workspaceID, limit)
}

// FinishSnapshot records the outcome of a snapshot still being created.
func (s *sqlStore) FinishSnapshot(ctx context.Context, id string, status SnapshotStatus, errMsg string, size, files int64) error {
	now := normTime(s.now())
	res, err := s.exec(ctx, `UPDATE snapshots SET status = ?, error = ?, size_bytes = ?, file_count = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND status = 'creating'`, string(status), errMsg, size, files, s.ts(now), s.ts(now), id)
	return s.one("finish snapshot", res, err)
}

// TouchSnapshot marks a snapshot being created as still in progress.
func (s *sqlStore) TouchSnapshot(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE snapshots SET updated_at = ? WHERE id = ? AND status = 'creating'`, s.ts(s.now()), id)
	return s.one("touch snapshot", res, err)
}

// FailStaleSnapshots fails snapshots still creating but not touched since
// before (their process died); it returns them.
func (s *sqlStore) FailStaleSnapshots(ctx context.Context, before time.Time, errMsg string) ([]Snapshot, error) {
	const op = "fail stale snapshots"
	stale, err := s.querySnapshots(ctx, op, `SELECT `+snapshotColumns+snapshotFrom+`
		WHERE s.status = 'creating' AND s.updated_at < ? ORDER BY s.created_at LIMIT 100`, s.ts(before))
	if err != nil {
		return nil, err
	}
	out := stale[:0]
	for _, n := range stale {
		if err := s.FinishSnapshot(ctx, n.ID, SnapshotFailed, errMsg, 0, 0); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// OrphanSnapshots returns snapshots whose workspace no longer exists.
func (s *sqlStore) OrphanSnapshots(ctx context.Context, limit int) ([]Snapshot, error) {
	return s.querySnapshots(ctx, "orphan snapshots", `SELECT `+snapshotColumns+snapshotFrom+`
		WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = s.workspace_id) ORDER BY s.created_at LIMIT ?`, limit)
}

// DeleteSnapshot removes a snapshot's row.
func (s *sqlStore) DeleteSnapshot(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM snapshots WHERE id = ?`, id)
	return s.one("delete snapshot", res, err)
}

func (s *sqlStore) querySnapshots(ctx context.Context, op, q string, args ...any) ([]Snapshot, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		n, err := scanSnapshot(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, n)
	}
	return out, s.fail(op, rows.Err())
}

// SetSnapshotSchedule creates or replaces a workspace's schedule.
func (s *sqlStore) SetSnapshotSchedule(ctx context.Context, sc SnapshotSchedule) error {
	const op = "set snapshot schedule"
	if sc.IntervalHours < 1 || sc.KeepLast < 1 {
		return fmt.Errorf("%s: interval and keep-last must be positive", op)
	}
	now := normTime(s.now())
	_, err := s.exec(ctx, `INSERT INTO snapshot_schedules (workspace_id, interval_hours, keep_last, next_run_at, updated_by, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id) DO UPDATE SET interval_hours = excluded.interval_hours, keep_last = excluded.keep_last,
			next_run_at = excluded.next_run_at, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		sc.WorkspaceID, sc.IntervalHours, sc.KeepLast, s.ts(sc.NextRunAt), sc.UpdatedBy, s.ts(now))
	if err != nil && s.d.isForeignKey(err) {
		return fmt.Errorf("%s: workspace or user %w", op, ErrNotFound)
	}
	return s.fail(op, err)
}

const scheduleColumns = `workspace_id, interval_hours, keep_last, next_run_at, updated_by, updated_at`

func scanSchedule(sc interface{ Scan(...any) error }) (SnapshotSchedule, error) {
	var r SnapshotSchedule
	err := sc.Scan(&r.WorkspaceID, &r.IntervalHours, &r.KeepLast, timeCol{&r.NextRunAt}, &r.UpdatedBy, timeCol{&r.UpdatedAt})
	return r, err
}

// GetSnapshotSchedule returns a workspace's schedule (ErrNotFound: none).
func (s *sqlStore) GetSnapshotSchedule(ctx context.Context, workspaceID string) (SnapshotSchedule, error) {
	r, err := scanSchedule(s.queryRow(ctx, `SELECT `+scheduleColumns+` FROM snapshot_schedules WHERE workspace_id = ?`, workspaceID))
	return r, s.fail("get snapshot schedule", err)
}

// DeleteSnapshotSchedule removes a workspace's schedule.
func (s *sqlStore) DeleteSnapshotSchedule(ctx context.Context, workspaceID string) error {
	res, err := s.exec(ctx, `DELETE FROM snapshot_schedules WHERE workspace_id = ?`, workspaceID)
	return s.one("delete snapshot schedule", res, err)
}

// DueSnapshotSchedules returns the schedules due at now.
func (s *sqlStore) DueSnapshotSchedules(ctx context.Context, now time.Time, limit int) ([]SnapshotSchedule, error) {
	const op = "due snapshot schedules"
	rows, err := s.query(ctx, `SELECT `+scheduleColumns+` FROM snapshot_schedules WHERE next_run_at <= ? ORDER BY next_run_at LIMIT ?`,
		s.ts(now), limit)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []SnapshotSchedule
	for rows.Next() {
		r, err := scanSchedule(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, r)
	}
	return out, s.fail(op, rows.Err())
}

// ClaimSnapshotSchedule moves a due schedule's next run from prev to next;
// only one caller (replica) wins a given run.
func (s *sqlStore) ClaimSnapshotSchedule(ctx context.Context, workspaceID string, prev, next time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE snapshot_schedules SET next_run_at = ? WHERE workspace_id = ? AND next_run_at = ?`,
		s.ts(next), workspaceID, s.ts(prev))
	if err != nil {
		return false, s.fail("claim snapshot schedule", err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.fail("claim snapshot schedule", err)
}
