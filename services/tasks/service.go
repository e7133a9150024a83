// Package tasks runs Claude Code tasks: a prompt becomes a queued task, a
// worker runs the real `claude` CLI in the workspace's container, and
// every line it prints is parsed, kept (index in the store, transcript in
// the blob store) and published to viewers as it arrives.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/blob"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/engine"
	"aicode/services/secrets"
	"aicode/services/store"
	"aicode/services/workspace"
)

// TopicTasks carries every task's status changes (lists, counters).
const TopicTasks = "tasks"

// TopicTask is the topic of one task's events and status changes.
func TopicTask(id string) string { return "task:" + id }

// Update is what the bus carries: a status change (Task set) or an event.
type Update struct {
	Task  *store.Task
	Event *Event
}

// Workspaces is what the service needs from the workspace service.
type Workspaces interface {
	GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error)
	Do(ctx context.Context, p auth.Principal, id string, a workspace.Action) (store.Workspace, error)
}

// Deps are the service's collaborators.
type Deps struct {
	Store      store.Store
	Blobs      blob.Store
	Bus        *bus.Bus
	Engine     *engine.Engine
	Workspaces Workspaces
	Audit      *audit.Recorder
	Log        *slog.Logger
	Config     config.TasksConfig
	// User is the workspace user the CLI runs as (uid:gid).
	User string
	// SpoolDir holds transcripts of running tasks.
	SpoolDir string
	// Box seals credentials.
	Box *secrets.Box
	// Runner names this process among replicas.
	Runner string
	// Replicated: other replicas share the bus (Redis) and the blob
	// store, so a task running elsewhere can be viewed from here.
	Replicated bool
}

// Service is the tasks service.
type Service struct {
	d   Deps
	log *slog.Logger
	q   *queue

	mu      sync.Mutex
	running map[string]*run // by task id, on this process
}

// New builds the service; Start begins working the queue.
func New(d Deps) (*Service, error) {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Runner == "" {
		host, _ := os.Hostname()
		d.Runner = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if err := os.MkdirAll(d.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("create task spool directory: %w", err)
	}
	s := &Service{d: d, log: d.Log, running: map[string]*run{}}
	if d.Bus != nil {
		registerCodecs(d.Bus)
	}
	q, err := newQueue(s)
	if err != nil {
		return nil, err
	}
	s.q = q
	return s, nil
}

// Input is a new task's request.
type Input struct {
	Prompt  string
	Options Options
	// ParentID makes the task a follow-up that continues that task's
	// Claude session.
	ParentID string
}

// ActTaskRun covers queueing, following up, retrying and cancelling; it is
// the same standing as typing into the workspace's terminals.
const ActTaskRun = auth.ActTerminalWrite

// ActTaskView covers reading tasks and transcripts, which show as much as
// a terminal does.
const ActTaskView = auth.ActTerminalView

func (s *Service) workspaceFor(ctx context.Context, p auth.Principal, wsID string, act auth.Action) (store.Workspace, auth.Access, error) {
	w, acc, err := s.d.Workspaces.GetWithAccess(ctx, p, wsID)
	if err != nil {
		return w, acc, err
	}
	if !auth.AllowedOn(p, act, acc) {
		return w, acc, auth.ErrForbidden
	}
	return w, acc, nil
}

// Create queues a task in a workspace.
func (s *Service) Create(ctx context.Context, p auth.Principal, wsID string, in Input) (store.Task, error) {
	w, _, err := s.workspaceFor(ctx, p, wsID, ActTaskRun)
	if err != nil {
		return store.Task{}, err
	}
	in.Prompt = strings.TrimSpace(in.Prompt)
	if in.Prompt == "" {
		return store.Task{}, &ErrInvalid{"prompt", "Write a prompt for Claude."}
	}
	if len(in.Prompt) > MaxPromptLen {
		return store.Task{}, &ErrInvalid{"prompt", fmt.Sprintf("The prompt is longer than %d characters.", MaxPromptLen)}
	}
	if !utf8.ValidString(in.Prompt) || strings.ContainsRune(in.Prompt, 0) {
		return store.Task{}, &ErrInvalid{"prompt", "The prompt holds characters that are not text."}
	}
	if err := in.Options.Validate(s.d.Config.DefaultModel, s.d.Config.DefaultPermissionMode); err != nil {
		return store.Task{}, err
	}
	if in.ParentID != "" {
		parent, err := s.d.Store.GetTask(ctx, in.ParentID)
		if err != nil || parent.WorkspaceID != w.ID {
			return store.Task{}, &ErrInvalid{"parent", "The task to follow up is not in this workspace."}
		}
	}
	t := store.Task{WorkspaceID: w.ID, CreatedBy: p.UserID, ParentID: in.ParentID, Prompt: in.Prompt, Options: in.Options.encode()}
	if err := s.d.Store.Tx(ctx, func(tx store.Store) error {
		if err := tx.CreateTask(ctx, &t); err != nil {
			return err
		}
		return s.q.enqueueHead(ctx, tx, w.ID)
	}); err != nil {
		return store.Task{}, fmt.Errorf("queue task: %w", err)
	}
	detail := truncate(firstLine(in.Prompt), 200)
	if in.ParentID != "" {
		detail = "follow-up of " + in.ParentID + ": " + detail
	}
	s.audit(ctx, p, "task.create", w.ID, audit.ResultOK, "task "+t.ID+": "+detail)
	t, _ = s.d.Store.GetTask(ctx, t.ID)
	s.publish(t)
	return t, nil
}

// Retry queues a new task with a finished task's prompt and options.
func (s *Service) Retry(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error) {
	old, err := s.Get(ctx, p, wsID, id)
	if err != nil {
		return store.Task{}, err
	}
	if !old.Status.Final() {
		return store.Task{}, &ErrInvalid{"status", "Only a finished task can be retried."}
	}
	return s.Create(ctx, p, wsID, Input{Prompt: old.Prompt, Options: DecodeOptions(old.Options), ParentID: old.ParentID})
}

// Cancel stops a task: a queued one at once, a running one by
// interrupting the CLI (killed if it does not stop in time).
func (s *Service) Cancel(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error) {
	t, err := s.Get(ctx, p, wsID, id)
	if err != nil {
		return store.Task{}, err
	}
	if _, _, err := s.workspaceFor(ctx, p, wsID, ActTaskRun); err != nil {
		return store.Task{}, err
	}
	if t.Status.Final() {
		return t, ErrFinished
	}
	st, err := s.d.Store.RequestTaskCancel(ctx, id, "Cancelled by "+p.Username+" before it started.")
	if err != nil {
		return store.Task{}, err
	}
	s.audit(ctx, p, "task.cancel", wsID, audit.ResultOK, "task "+id)
	if st == store.TaskCancelled {
		t, _ = s.d.Store.GetTask(ctx, id)
		s.publish(t)
		// The next task of the workspace may be waiting behind this one.
		s.q.kick(ctx, wsID)
		return t, nil
	}
	s.mu.Lock()
	r := s.running[id]
	s.mu.Unlock()
	if r != nil {
		r.cancel(p.Username)
	}
	// Another replica's runner sees the flag on its next check.
	return s.d.Store.GetTask(ctx, id)
}

// Get returns a task of a workspace the principal may see.
func (s *Service) Get(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error) {
	if _, _, err := s.workspaceFor(ctx, p, wsID, ActTaskView); err != nil {
		return store.Task{}, err
	}
	t, err := s.d.Store.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.WorkspaceID != wsID) {
		return store.Task{}, ErrNotFound
	}
	return t, err
}

// ListFilter selects tasks for a list page.
type ListFilter struct {
	WorkspaceID string
	Mine        bool
	Statuses    []store.TaskStatus
	Before      *store.TaskCursor
	Limit       int
}

// List returns tasks the principal may see, newest first.
func (s *Service) List(ctx context.Context, p auth.Principal, f ListFilter) ([]store.Task, error) {
	sf := store.TaskFilter{Statuses: f.Statuses, Before: f.Before, Limit: f.Limit}
	if sf.Limit <= 0 || sf.Limit > 200 {
		sf.Limit = 50
	}
	if f.WorkspaceID != "" {
		if _, _, err := s.workspaceFor(ctx, p, f.WorkspaceID, ActTaskView); err != nil {
			return nil, err
		}
		sf.WorkspaceID = f.WorkspaceID
	} else if !p.IsAdmin() {
		sf.VisibleTo = p.UserID
	}
	if f.Mine {
		sf.CreatedBy = p.UserID
	}
	return s.d.Store.ListTasks(ctx, sf)
}

// Totals sums a workspace's tasks, or a user's (their own, or anyone's
// for an admin).
func (s *Service) Totals(ctx context.Context, p auth.Principal, f store.TaskTotalsFilter) (store.TaskTotals, error) {
	switch {
	case f.WorkspaceID != "":
		if _, _, err := s.workspaceFor(ctx, p, f.WorkspaceID, ActTaskView); err != nil {
			return store.TaskTotals{}, err
		}
	case f.CreatedBy != p.UserID && !p.IsAdmin():
		return store.TaskTotals{}, auth.ErrForbidden
	case f.CreatedBy == "" && !p.IsAdmin():
		return store.TaskTotals{}, auth.ErrForbidden
	}
	return s.d.Store.TaskTotals(ctx, f)
}

// Start begins working the queue and recovers tasks a previous life of
// this process (or a dead replica) left running.
func (s *Service) Start(ctx context.Context) error {
	// Found before the queue starts, so nothing claimed from now on is
	// taken for an orphan.
	orphans, err := s.orphans(ctx, true)
	if err != nil {
		s.log.Warn("find interrupted tasks", "err", err)
	}
	if err := s.q.start(ctx); err != nil {
		return err
	}
	// Wrapping up an orphan takes engine calls (a kill, a commit): not
	// something the server's start should wait for. Its workspace's queue
	// waits meanwhile, since the orphan still counts as running.
	go func() {
		for _, t := range orphans {
			s.recoverOne(ctx, t)
		}
		s.housekeeping(ctx)
	}()
	if s.d.Replicated {
		go s.syncLoop(ctx)
	}
	return nil
}

// Stop stops taking work and interrupts the tasks running here, keeping
// what they did; it returns when they have been wrapped up or ctx ends.
func (s *Service) Stop(ctx context.Context) error {
	return s.q.stop(ctx)
}

// housekeeping stamps this runner's heartbeat, finds tasks whose runner
// died, and makes sure every workspace with queued tasks has its head
// enqueued (a crash between finishing a task and enqueueing the next
// would otherwise leave them waiting).
func (s *Service) housekeeping(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.d.Store.HeartbeatTasks(ctx, s.d.Runner); err != nil && ctx.Err() == nil {
			s.log.Warn("task heartbeat", "err", err)
		}
		if n++; n%3 == 0 {
			if err := s.recoverOrphans(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Warn("recover interrupted tasks", "err", err)
			}
			s.q.reconcile(ctx)
		}
	}
}

// Timing of liveness: a runner stamps its tasks every heartbeatEvery; a
// task not stamped for staleAfter has lost its runner.
const (
	heartbeatEvery = 10 * time.Second
	staleAfter     = 60 * time.Second
)

func (s *Service) publish(t store.Task) {
	tc := t
	s.d.Bus.Publish(TopicTask(t.ID), Update{Task: &tc})
	s.d.Bus.Publish(TopicTasks, Update{Task: &tc})
}

func (s *Service) audit(ctx context.Context, p auth.Principal, action, wsID, result, detail string) {
	if s.d.Audit == nil {
		return
	}
	s.d.Audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: p.UserID, Name: p.Username}, Action: action,
		ResourceType: "workspace", ResourceID: wsID, Result: result, Detail: detail})
}
