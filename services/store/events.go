package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Workspace event kinds: the engine's container actions the app records.
const (
	EventCreate  = "create"
	EventStart   = "start"
	EventRestart = "restart"
	EventStop    = "stop"
	EventDie     = "die"
	EventOOM     = "oom"
	EventPause   = "pause"
	EventUnpause = "unpause"
	EventDestroy = "destroy"
)

// WorkspaceEvent is one thing that happened to a workspace's container.
type WorkspaceEvent struct {
	ID          int64
	WorkspaceID string
	// WorkspaceName is filled by reads.
	WorkspaceName string
	ContainerID   string
	Kind          string
	At            time.Time
	// ExitCode is set for "die" events.
	ExitCode *int
	Detail   string
}

// WorkspaceEventFilter selects workspace events, newest first. Limit is
// required (1..MaxPageSize).
type WorkspaceEventFilter struct {
	WorkspaceID string // empty: every workspace's
	// VisibleTo, when set, keeps events of workspaces this user owns or
	// that are shared with them.
	VisibleTo string
	Kind      string    // empty: any
	Since     time.Time // zero: no lower bound (inclusive)
	BeforeID  int64     // pages backwards
	Limit     int
}

// AppendWorkspaceEvent stores e, setting its ID (and At, when zero, to
// now). It reports false, storing nothing, when the same event (workspace,
// container, kind and instant) is stored already: the engine replays
// recent events after its stream reconnects. An unknown workspace is
// ErrNotFound.
func (s *sqlStore) AppendWorkspaceEvent(ctx context.Context, e *WorkspaceEvent) (bool, error) {
	const op = "append workspace event"
	if e.WorkspaceID == "" || e.Kind == "" {
		return false, fmt.Errorf("%s: workspace and kind are required", op)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = normTime(e.At)
	var code any
	if e.ExitCode != nil {
		code = *e.ExitCode
	}
	// RETURNING yields no row when ON CONFLICT skipped the insert.
	err := s.queryRow(ctx, `INSERT INTO workspace_events (workspace_id, container_id, kind, at, exit_code, detail)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id, container_id, kind, at) DO NOTHING RETURNING id`,
		e.WorkspaceID, e.ContainerID, e.Kind, s.ts(e.At), code, e.Detail).Scan(&e.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil && s.d.isForeignKey(err):
		return false, fmt.Errorf("%s: workspace %w", op, ErrNotFound)
	case err != nil:
		return false, s.fail(op, err)
	}
	return true, nil
}

const workspaceEventSelect = `SELECT e.id, e.workspace_id, w.name, e.container_id, e.kind, e.at, e.exit_code, e.detail
	FROM workspace_events e JOIN workspaces w ON w.id = e.workspace_id`

// ListWorkspaceEvents returns matching events, newest first.
func (s *sqlStore) ListWorkspaceEvents(ctx context.Context, f WorkspaceEventFilter) ([]WorkspaceEvent, error) {
	const op = "list workspace events"
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return nil, fmt.Errorf("%s: limit %d out of range 1..%d", op, f.Limit, MaxPageSize)
	}
	var where []string
	var args []any
	if f.WorkspaceID != "" {
		where = append(where, `e.workspace_id = ?`)
		args = append(args, f.WorkspaceID)
	}
	if f.VisibleTo != "" {
		where = append(where, `(w.owner_id = ? OR EXISTS (SELECT 1 FROM workspace_shares sh WHERE sh.workspace_id = w.id AND sh.user_id = ?))`)
		args = append(args, f.VisibleTo, f.VisibleTo)
	}
	if f.Kind != "" {
		where = append(where, `e.kind = ?`)
		args = append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where = append(where, `e.at >= ?`)
		args = append(args, s.ts(f.Since))
	}
	if f.BeforeID > 0 {
		where = append(where, `e.id < ?`)
		args = append(args, f.BeforeID)
	}
	q := workspaceEventSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	// Ids follow arrival, which is the engine's order.
	q += ` ORDER BY e.id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []WorkspaceEvent
	for rows.Next() {
		var e WorkspaceEvent
		var code sql.NullInt64
		if err := rows.Scan(&e.ID, &e.WorkspaceID, &e.WorkspaceName, &e.ContainerID, &e.Kind,
			timeCol{&e.At}, &code, &e.Detail); err != nil {
			return nil, s.fail(op, err)
		}
		if code.Valid {
			c := int(code.Int64)
			e.ExitCode = &c
		}
		out = append(out, e)
	}
	return out, s.fail(op, rows.Err())
}

// TrimWorkspaceEvents deletes a workspace's events beyond its newest keep
// and returns how many went.
func (s *sqlStore) TrimWorkspaceEvents(ctx context.Context, workspaceID string, keep int) (int64, error) {
	const op = "trim workspace events"
	if keep < 1 {
		return 0, fmt.Errorf("%s: keep %d must be at least 1", op, keep)
	}
	res, err := s.exec(ctx, `DELETE FROM workspace_events WHERE workspace_id = ? AND id < (
		SELECT MIN(k.id) FROM (SELECT id FROM workspace_events WHERE workspace_id = ? ORDER BY id DESC LIMIT ?) k)`,
		workspaceID, workspaceID, keep)
	if err != nil {
		return 0, s.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: rows affected: %w", op, err)
	}
	return n, nil
}
