package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"aicode/services/store"
)

const queueName = "claude_tasks"

// runArgs is the job: run one task. The task row holds everything else.
type runArgs struct {
	TaskID string `json:"task_id"`
}

func (runArgs) Kind() string { return "claude_task" }

// InsertOpts: one job per task, ever. A task that finished keeps its
// completed job, so enqueueing it again is a no-op: never run twice.
func (runArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type worker struct {
	river.WorkerDefaults[runArgs]
	s *Service
}

// Timeout leaves the task's own timeout to the runner, which ends the
// CLI properly; River's is only a backstop.
func (w *worker) Timeout(*river.Job[runArgs]) time.Duration {
	return w.s.d.Config.Timeout + 5*time.Minute
}

func (w *worker) Work(ctx context.Context, job *river.Job[runArgs]) error {
	return w.s.work(ctx, job.Args.TaskID, job.Attempt, job.MaxAttempts)
}

// queue is the River client working claude_task jobs. The same code runs
// on SQLite (zero-config) and PostgreSQL; jobs live in the app's own
// database, inserted in the transaction that creates the task.
type queue struct {
	s      *Service
	client *river.Client[*sql.Tx]
}

// How often an idle worker looks for jobs, and how soon a task that cannot
// start yet (its workspace busy, the global cap reached) looks again.
const (
	pollEvery   = 200 * time.Millisecond
	snoozeFor   = time.Second
	retryFirst  = 5 * time.Second
	retryFactor = 3
)

// retryPolicy spaces infrastructure retries: 5 s, 15 s, 45 s...
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := retryFirst
	for i := 1; i < job.Attempt; i++ {
		d *= retryFactor
	}
	return time.Now().Add(min(d, 10*time.Minute))
}

func newQueue(s *Service) (*queue, error) {
	db, _ := store.SQLHandles(s.d.Store)
	if db == nil {
		return nil, errors.New("task queue: the store has no SQL database")
	}
	var driver riverdriver.Driver[*sql.Tx]
	switch s.d.Store.Dialect() {
	case "sqlite":
		driver = riversqlite.New(db)
	case "postgres":
		driver = riverdatabasesql.New(db)
	default:
		return nil, fmt.Errorf("task queue: unsupported database %q", s.d.Store.Dialect())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mig, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quietLogger(s.log)})
	if err != nil {
		return nil, fmt.Errorf("task queue migrations: %w", err)
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("task queue migrations: %w", err)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{s: s}); err != nil {
		return nil, fmt.Errorf("task queue: %w", err)
	}
	cfg := s.d.Config
	client, err := river.NewClient(driver, &river.Config{
		ID:     s.d.Runner,
		Queues: map[string]river.QueueConfig{queueName: {MaxWorkers: cfg.MaxRunning}},
		// Polling: SQLite has no notifications, and the database/sql
		// PostgreSQL driver has none either; a fifth of a second is
		// nothing next to a CLI run.
		PollOnly:          true,
		FetchPollInterval: pollEvery,
		FetchCooldown:     50 * time.Millisecond,
		Workers:           workers,
		MaxAttempts:       cfg.MaxAttempts,
		JobTimeout:        cfg.Timeout + 5*time.Minute,
		// A job whose process died stays "running" in River; the
		// runner's heartbeat, not River, decides the task's fate, and a
		// rescued job finds its task no longer queued.
		RescueStuckJobsAfter:        cfg.Timeout + 15*time.Minute,
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour,
		RetryPolicy:                 retryPolicy{},
		Logger:                      quietLogger(s.log),
	})
	if err != nil {
		return nil, fmt.Errorf("task queue: %w", err)
	}
	return &queue{s: s, client: client}, nil
}

// quietLogger passes on River's warnings and errors only.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{l.Handler(), slog.LevelWarn}).With("component", "river")
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}

func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(n), f.min}
}

// enqueueHead inserts the job for a workspace's oldest queued task, in
// st's transaction when it is bound to one.
func (q *queue) enqueueHead(ctx context.Context, st store.Store, wsID string) error {
	head, err := st.QueueHead(ctx, wsID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, tx := store.SQLHandles(st); tx != nil {
		_, err = q.client.InsertTx(ctx, tx, runArgs{TaskID: head.ID}, nil)
	} else {
		_, err = q.client.Insert(ctx, runArgs{TaskID: head.ID}, nil)
	}
	if err != nil {
		return fmt.Errorf("enqueue task: %w", err)
	}
	return nil
}

// kick enqueues a workspace's next task, logging a failure (the periodic
// reconcile catches up).
func (q *queue) kick(ctx context.Context, wsID string) {
	if err := q.enqueueHead(context.WithoutCancel(ctx), q.s.d.Store, wsID); err != nil {
		q.s.log.Warn("enqueue next task", "workspace", wsID, "err", err)
	}
}

// reconcile enqueues the head of every workspace that waits with nothing
// running.
func (q *queue) reconcile(ctx context.Context) {
	ids, err := q.s.d.Store.QueuedWorkspaces(ctx)
	if err != nil {
		if ctx.Err() == nil {
			q.s.log.Warn("find waiting tasks", "err", err)
		}
		return
	}
	for _, id := range ids {
		q.kick(ctx, id)
	}
}

func (q *queue) start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("start task queue: %w", err)
	}
	q.reconcile(ctx)
	return nil
}

// stop cancels the running jobs (their runs wrap up as interrupted) and
// waits for them.
func (q *queue) stop(ctx context.Context) error {
	err := q.client.StopAndCancel(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop task queue: %w", err)
	}
	return nil
}

// work is one attempt at a task's job.
func (s *Service) work(ctx context.Context, id string, attempt, maxAttempts int) error {
	ok, err := s.d.Store.ClaimTask(ctx, id, s.d.Runner, s.d.Config.MaxRunning)
	if err != nil {
		return err
	}
	if !ok {
		t, err := s.d.Store.GetTask(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted with its workspace
		}
		if err != nil {
			return err
		}
		if t.Status != store.TaskQueued || t.CancelRequested {
			return nil // cancelled, or done by an earlier job
		}
		// Waiting its turn: behind another task of its workspace, or
		// for a free slot.
		return river.JobSnooze(snoozeFor)
	}
	t, err := s.d.Store.GetTask(ctx, id)
	if err != nil {
		return err
	}
	return s.execute(ctx, t, attempt >= maxAttempts)
}
