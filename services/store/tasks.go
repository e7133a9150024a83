package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// TaskStatus is where a task is in its life.
type TaskStatus string

const (
	TaskQueued      TaskStatus = "queued"
	TaskRunning     TaskStatus = "running"
	TaskSucceeded   TaskStatus = "succeeded"
	TaskFailed      TaskStatus = "failed"
	TaskCancelled   TaskStatus = "cancelled"
	TaskInterrupted TaskStatus = "interrupted"
)

// TaskStatuses lists every status, in the order filters show them.
var TaskStatuses = []TaskStatus{TaskQueued, TaskRunning, TaskSucceeded, TaskFailed, TaskCancelled, TaskInterrupted}

// Valid reports whether s is a known status.
func (s TaskStatus) Valid() bool {
	for _, v := range TaskStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Final reports whether nothing more happens to a task in status s.
func (s TaskStatus) Final() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskCancelled || s == TaskInterrupted
}

// Usage counts tokens.
type Usage struct {
	InputTokens, OutputTokens, CacheRead, CacheWrite int64
}

// Total is every token counted.
func (u Usage) Total() int64 { return u.InputTokens + u.OutputTokens + u.CacheRead + u.CacheWrite }

// Task is one prompt run by the Claude Code CLI in a workspace.
type Task struct {
	ID          string
	WorkspaceID string
	CreatedBy   string
	ParentID    string
	Prompt      string
	// Options is the run options as JSON (the tasks service owns its shape).
	Options string
	Status  TaskStatus
	// Detail says, in plain words, why the task is where it is (waiting
	// for what, or what went wrong).
	Detail    string
	ErrorKind string
	SessionID string
	Model     string
	Branch    string
	BaseSHA   string
	CommitSHA string
	// Files is the changed files as JSON (the tasks service owns its shape).
	Files         string
	DiffKey       string
	TranscriptKey string
	Events        int64
	Turns         int64
	CostUSD       float64
	Usage         Usage
	DurationMS    int64
	ExitCode      *int
	Attempts      int
	// CancelRequested is set by Cancel while the task runs.
	CancelRequested bool
	Runner          string
	HeartbeatAt     *time.Time
	CreatedAt       time.Time
	StartedAt       *time.Time
	FinishedAt      *time.Time
	UpdatedAt       time.Time

	// Filled by reads.
	WorkspaceName string
	CreatedByName string
}

// TaskFilter selects tasks, newest first. Limit is required
// (1..MaxPageSize).
type TaskFilter struct {
	WorkspaceID string
	CreatedBy   string
	// VisibleTo, when set, keeps tasks of workspaces this user owns or
	// that are shared with them.
	VisibleTo string
	Statuses  []TaskStatus
	// Before pages backwards: tasks created before this one.
	Before *TaskCursor
	Limit  int
}

// TaskCursor is a position in a task list.
type TaskCursor struct {
	CreatedAt time.Time
	ID        string
}

// TaskTotals sums finished work.
type TaskTotals struct {
	Tasks      int64
	Turns      int64
	CostUSD    float64
	Usage      Usage
	DurationMS int64
}

// TaskTotalsFilter chooses what TaskTotals sums (one of the fields, or
// everything when both are empty).
type TaskTotalsFilter struct {
	WorkspaceID string
	CreatedBy   string
}

// TaskEvent indexes one line of a task's transcript.
type TaskEvent struct {
	TaskID  string
	Seq     int64
	At      time.Time
	Type    string
	Subtype string
	Tool    string
	Summary string
	IsError bool
	// Pos and Size locate the line in the transcript.
	Pos, Size int64
}

// Credential is a sealed Claude credential.
type Credential struct {
	Scope     string // "user" or "workspace"
	OwnerID   string
	Kind      string // "api_key" or "oauth_token"
	Sealed    string
	Hint      string
	UpdatedBy string
	UpdatedAt time.Time
}

const taskColumns = `t.id, t.workspace_id, t.created_by, COALESCE(t.parent_id, ''), t.prompt, t.options, t.status, t.detail,
	t.error_kind, t.session_id, t.model, t.branch, t.base_sha, t.commit_sha, t.files, t.diff_key, t.transcript_key,
	t.events, t.turns, t.cost_usd, t.input_tokens, t.output_tokens, t.cache_read, t.cache_write, t.duration_ms,
	t.exit_code, t.attempts, t.cancel_requested, t.runner, t.heartbeat_at, t.created_at, t.started_at, t.finished_at,
	t.updated_at, w.name, u.username`

const taskFrom = ` FROM tasks t JOIN workspaces w ON w.id = t.workspace_id JOIN users u ON u.id = t.created_by`

func scanTask(sc interface{ Scan(...any) error }) (Task, error) {
	var t Task
	var exit sql.NullInt64
	err := sc.Scan(&t.ID, &t.WorkspaceID, &t.CreatedBy, &t.ParentID, &t.Prompt, &t.Options, &t.Status, &t.Detail,
		&t.ErrorKind, &t.SessionID, &t.Model, &t.Branch, &t.BaseSHA, &t.CommitSHA, &t.Files, &t.DiffKey, &t.TranscriptKey,
		&t.Events, &t.Turns, &t.CostUSD, &t.Usage.InputTokens, &t.Usage.OutputTokens, &t.Usage.CacheRead, &t.Usage.CacheWrite,
		&t.DurationMS, &exit, &t.Attempts, &t.CancelRequested, &t.Runner, nullTimeCol{&t.HeartbeatAt}, timeCol{&t.CreatedAt},
		nullTimeCol{&t.StartedAt}, nullTimeCol{&t.FinishedAt}, timeCol{&t.UpdatedAt}, &t.WorkspaceName, &t.CreatedByName)
	if exit.Valid {
		c := int(exit.Int64)
		t.ExitCode = &c
	}
	return t, err
}

// CreateTask stores a new queued task, setting its ID and times.
func (s *sqlStore) CreateTask(ctx context.Context, t *Task) error {
	const op = "create task"
	if t.WorkspaceID == "" || t.CreatedBy == "" || t.Prompt == "" {
		return fmt.Errorf("%s: workspace, creator and prompt are required", op)
	}
	if t.ID == "" {
		t.ID = newID()
	}
	now := normTime(s.now())
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.UpdatedAt = now
	if t.Status == "" {
		t.Status = TaskQueued
	}
	if t.Options == "" {
		t.Options = "{}"
	}
	var parent any
	if t.ParentID != "" {
		parent = t.ParentID
	}
	_, err := s.exec(ctx, `INSERT INTO tasks (id, workspace_id, created_by, parent_id, prompt, options, status, detail, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.WorkspaceID, t.CreatedBy, parent, t.Prompt, t.Options, string(t.Status), t.Detail, s.ts(t.CreatedAt), s.ts(now))
	return s.fail(op, err)
}

// GetTask returns one task.
func (s *sqlStore) GetTask(ctx context.Context, id string) (Task, error) {
	t, err := scanTask(s.queryRow(ctx, `SELECT `+taskColumns+taskFrom+` WHERE t.id = ?`, id))
	return t, s.fail("get task", err)
}

// ListTasks returns tasks matching f, newest first.
func (s *sqlStore) ListTasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	const op = "list tasks"
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return nil, fmt.Errorf("%s: limit %d out of range", op, f.Limit)
	}
	var where []string
	var args []any
	if f.WorkspaceID != "" {
		where = append(where, "t.workspace_id = ?")
		args = append(args, f.WorkspaceID)
	}
	if f.CreatedBy != "" {
		where = append(where, "t.created_by = ?")
		args = append(args, f.CreatedBy)
	}
	if f.VisibleTo != "" {
		where = append(where, "(w.owner_id = ? OR EXISTS (SELECT 1 FROM workspace_shares sh WHERE sh.workspace_id = t.workspace_id AND sh.user_id = ?))")
		args = append(args, f.VisibleTo, f.VisibleTo)
	}
	if len(f.Statuses) > 0 {
		where = append(where, "t.status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.Before != nil {
		where = append(where, "(t.created_at < ? OR (t.created_at = ? AND t.id < ?))")
		args = append(args, s.ts(f.Before.CreatedAt), s.ts(f.Before.CreatedAt), f.Before.ID)
	}
	q := `SELECT ` + taskColumns + taskFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY t.created_at DESC, t.id DESC LIMIT ?"
	args = append(args, f.Limit)
	return s.queryTasks(ctx, op, q, args...)
}

// QueueHead returns a workspace's oldest queued task (ErrNotFound when
// none waits).
func (s *sqlStore) QueueHead(ctx context.Context, workspaceID string) (Task, error) {
	t, err := scanTask(s.queryRow(ctx, `SELECT `+taskColumns+taskFrom+`
		WHERE t.workspace_id = ? AND t.status = 'queued' ORDER BY t.created_at, t.id LIMIT 1`, workspaceID))
	return t, s.fail("queue head", err)
}

// QueuedWorkspaces lists the workspaces with a queued task and none
// running.
func (s *sqlStore) QueuedWorkspaces(ctx context.Context) ([]string, error) {
	const op = "queued workspaces"
	rows, err := s.query(ctx, `SELECT DISTINCT q.workspace_id FROM tasks q WHERE q.status = 'queued'
		AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.workspace_id = q.workspace_id AND r.status = 'running')`)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, id)
	}
	return out, s.fail(op, rows.Err())
}

// ClaimTask moves a queued task to running for runner, only if it heads
// its workspace's queue, nothing else in the workspace runs, and fewer
// than maxRunning tasks run in all. It reports whether it did.
func (s *sqlStore) ClaimTask(ctx context.Context, id, runner string, maxRunning int) (bool, error) {
	const op = "claim task"
	now := normTime(s.now())
	res, err := s.exec(ctx, `UPDATE tasks SET status = 'running', runner = ?, heartbeat_at = ?, started_at = ?,
			attempts = attempts + 1, detail = '', updated_at = ?
		WHERE id = ? AND status = 'queued' AND NOT cancel_requested
		AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.workspace_id = tasks.workspace_id AND r.status = 'running')
		AND id = (SELECT h.id FROM tasks h WHERE h.workspace_id = tasks.workspace_id AND h.status = 'queued' ORDER BY h.created_at, h.id LIMIT 1)
		AND (SELECT COUNT(*) FROM tasks c WHERE c.status = 'running') < ?`,
		runner, s.ts(now), s.ts(now), s.ts(now), id, maxRunning)
	if err != nil {
		return false, s.fail(op, err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.fail(op, err)
}

// UpdateTaskRun saves what a run learns and decides: everything but the
// request (prompt, options, parent) and CancelRequested.
func (s *sqlStore) UpdateTaskRun(ctx context.Context, t *Task) error {
	const op = "update task"
	t.UpdatedAt = normTime(s.now())
	var exit any
	if t.ExitCode != nil {
		exit = *t.ExitCode
	}
	res, err := s.exec(ctx, `UPDATE tasks SET status = ?, detail = ?, error_kind = ?, session_id = ?, model = ?, branch = ?,
			base_sha = ?, commit_sha = ?, files = ?, diff_key = ?, transcript_key = ?, events = ?, turns = ?, cost_usd = ?,
			input_tokens = ?, output_tokens = ?, cache_read = ?, cache_write = ?, duration_ms = ?, exit_code = ?,
			started_at = ?, finished_at = ?, heartbeat_at = ?, updated_at = ?
		WHERE id = ?`,
		string(t.Status), t.Detail, t.ErrorKind, t.SessionID, t.Model, t.Branch, t.BaseSHA, t.CommitSHA, t.Files, t.DiffKey,
		t.TranscriptKey, t.Events, t.Turns, t.CostUSD, t.Usage.InputTokens, t.Usage.OutputTokens, t.Usage.CacheRead,
		t.Usage.CacheWrite, t.DurationMS, exit, s.nullTS(t.StartedAt), s.nullTS(t.FinishedAt), s.nullTS(t.HeartbeatAt),
		s.ts(t.UpdatedAt), t.ID)
	return s.one(op, res, err)
}

// RequeueTask puts a running task back in its queue (an infrastructure
// failure that will be retried), saying why.
func (s *sqlStore) RequeueTask(ctx context.Context, id, detail string) error {
	now := normTime(s.now())
	res, err := s.exec(ctx, `UPDATE tasks SET status = 'queued', detail = ?, runner = '', heartbeat_at = NULL, updated_at = ?
		WHERE id = ? AND status = 'running'`, detail, s.ts(now), id)
	return s.one("requeue task", res, err)
}

// RequestTaskCancel asks for a task to stop. A queued task is cancelled at
// once; a running one is flagged for its runner. It returns the task's
// status afterwards; a finished task is left alone.
func (s *sqlStore) RequestTaskCancel(ctx context.Context, id, detail string) (TaskStatus, error) {
	const op = "cancel task"
	now := normTime(s.now())
	var st TaskStatus
	err := s.Tx(ctx, func(tx Store) error {
		ts := tx.(*sqlStore)
		if err := ts.queryRow(ctx, `SELECT status FROM tasks WHERE id = ?`, id).Scan(&st); err != nil {
			return ts.fail(op, err)
		}
		switch st {
		case TaskQueued:
			st = TaskCancelled
			_, err := ts.exec(ctx, `UPDATE tasks SET status = 'cancelled', cancel_requested = ?, detail = ?, finished_at = ?, updated_at = ? WHERE id = ?`,
				true, detail, ts.ts(now), ts.ts(now), id)
			return ts.fail(op, err)
		case TaskRunning:
			_, err := ts.exec(ctx, `UPDATE tasks SET cancel_requested = ?, updated_at = ? WHERE id = ?`, true, ts.ts(now), id)
			return ts.fail(op, err)
		}
		return nil
	})
	return st, err
}

// HeartbeatTasks stamps every task runner runs, so other replicas know it
// is alive.
func (s *sqlStore) HeartbeatTasks(ctx context.Context, runner string) error {
	now := normTime(s.now())
	_, err := s.exec(ctx, `UPDATE tasks SET heartbeat_at = ? WHERE runner = ? AND status = 'running'`, s.ts(now), runner)
	return s.fail("heartbeat tasks", err)
}

// OrphanedTasks returns running tasks whose runner is runner (a previous
// life of this process) or whose heartbeat is older than staleBefore.
func (s *sqlStore) OrphanedTasks(ctx context.Context, runner string, staleBefore time.Time) ([]Task, error) {
	const op = "orphaned tasks"
	return s.queryTasks(ctx, op, `SELECT `+taskColumns+taskFrom+` WHERE t.status = 'running' AND (t.runner = ? OR t.heartbeat_at IS NULL OR t.heartbeat_at < ?)
		ORDER BY t.created_at`, runner, s.ts(staleBefore))
}

// queryTasks runs a query selecting taskColumns and scans every row.
func (s *sqlStore) queryTasks(ctx context.Context, op, q string, args ...any) ([]Task, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, t)
	}
	return out, s.fail(op, rows.Err())
}

// TaskTotals sums the figures of the tasks f selects.
func (s *sqlStore) TaskTotals(ctx context.Context, f TaskTotalsFilter) (TaskTotals, error) {
	q := `SELECT COUNT(*), COALESCE(SUM(turns), 0), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),
		COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read), 0), COALESCE(SUM(cache_write), 0), COALESCE(SUM(duration_ms), 0)
		FROM tasks`
	var args []any
	switch {
	case f.WorkspaceID != "":
		q += " WHERE workspace_id = ?"
		args = append(args, f.WorkspaceID)
	case f.CreatedBy != "":
		q += " WHERE created_by = ?"
		args = append(args, f.CreatedBy)
	}
	var t TaskTotals
	err := s.queryRow(ctx, q, args...).Scan(&t.Tasks, &t.Turns, &t.CostUSD, &t.Usage.InputTokens, &t.Usage.OutputTokens,
		&t.Usage.CacheRead, &t.Usage.CacheWrite, &t.DurationMS)
	return t, s.fail("task totals", err)
}

// taskEventChunk is how many rows one prepared insert writes.
const taskEventChunk = 64

const taskEventRow = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

var (
	insertTaskEvent      = `INSERT INTO task_events (task_id, seq, at, type, subtype, tool, summary, is_error, pos, size) VALUES ` + taskEventRow
	insertTaskEventChunk = `INSERT INTO task_events (task_id, seq, at, type, subtype, tool, summary, is_error, pos, size) VALUES ` +
		taskEventRow + strings.Repeat(", "+taskEventRow, taskEventChunk-1)
)

// AppendTaskEvents stores a batch of event index rows in one transaction,
// with two prepared statements (a full chunk and one row): the index
// grows by thousands of rows a second while a task streams.
func (s *sqlStore) AppendTaskEvents(ctx context.Context, events []TaskEvent) error {
	const op = "append task events"
	if len(events) == 0 {
		return nil
	}
	if len(events) >= taskEventChunk {
		s.prepare(ctx, insertTaskEventChunk)
	}
	s.prepare(ctx, insertTaskEvent)
	return s.Tx(ctx, func(tx Store) error {
		ts := tx.(*sqlStore)
		args := make([]any, 0, 10*taskEventChunk)
		for len(events) > 0 {
			n, q := 1, insertTaskEvent
			if len(events) >= taskEventChunk {
				n, q = taskEventChunk, insertTaskEventChunk
			}
			args = args[:0]
			for _, e := range events[:n] {
				args = append(args, e.TaskID, e.Seq, ts.ts(e.At), e.Type, e.Subtype, e.Tool, e.Summary, e.IsError, e.Pos, e.Size)
			}
			if _, err := ts.exec(ctx, q, args...); err != nil {
				return ts.fail(op, err)
			}
			events = events[n:]
		}
		return nil
	})
}

// ListTaskEvents returns a task's events after seq afterSeq, in order, at
// most limit (0: all).
func (s *sqlStore) ListTaskEvents(ctx context.Context, taskID string, afterSeq int64, limit int) ([]TaskEvent, error) {
	const op = "list task events"
	q := `SELECT task_id, seq, at, type, subtype, tool, summary, is_error, pos, size FROM task_events
		WHERE task_id = ? AND seq > ? ORDER BY seq`
	args := []any{taskID, afterSeq}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []TaskEvent
	for rows.Next() {
		var e TaskEvent
		if err := rows.Scan(&e.TaskID, &e.Seq, timeCol{&e.At}, &e.Type, &e.Subtype, &e.Tool, &e.Summary, &e.IsError, &e.Pos, &e.Size); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, e)
	}
	return out, s.fail(op, rows.Err())
}

// SetCredential stores or replaces a scope owner's credential.
func (s *sqlStore) SetCredential(ctx context.Context, c Credential) error {
	const op = "set credential"
	if c.Scope == "" || c.OwnerID == "" || c.Kind == "" || c.Sealed == "" {
		return fmt.Errorf("%s: scope, owner, kind and value are required", op)
	}
	now := normTime(s.now())
	_, err := s.exec(ctx, `INSERT INTO credentials (scope, owner_id, kind, sealed, hint, updated_by, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, owner_id) DO UPDATE SET kind = excluded.kind, sealed = excluded.sealed, hint = excluded.hint,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		c.Scope, c.OwnerID, c.Kind, c.Sealed, c.Hint, c.UpdatedBy, s.ts(now))
	return s.fail(op, err)
}

// GetCredential returns a scope owner's credential (ErrNotFound if none).
func (s *sqlStore) GetCredential(ctx context.Context, scope, ownerID string) (Credential, error) {
	var c Credential
	err := s.queryRow(ctx, `SELECT scope, owner_id, kind, sealed, hint, updated_by, updated_at FROM credentials WHERE scope = ? AND owner_id = ?`,
		scope, ownerID).Scan(&c.Scope, &c.OwnerID, &c.Kind, &c.Sealed, &c.Hint, &c.UpdatedBy, timeCol{&c.UpdatedAt})
	return c, s.fail("get credential", err)
}

// DeleteCredential removes a scope owner's credential.
func (s *sqlStore) DeleteCredential(ctx context.Context, scope, ownerID string) error {
	res, err := s.exec(ctx, `DELETE FROM credentials WHERE scope = ? AND owner_id = ?`, scope, ownerID)
	return s.one("delete credential", res, err)
}

// SQLHandles exposes the database handle under st, and its transaction
// when st is bound to one, for libraries that share them (the job queue
// inserts its jobs in the same transaction as the task).
func SQLHandles(st Store) (*sql.DB, *sql.Tx) {
	s, ok := st.(*sqlStore)
	if !ok {
		return nil, nil
	}
	return s.db, s.tx
}
