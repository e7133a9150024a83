package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"aicode/services/store"
)

func newTask(t *testing.T, s store.Store, w store.Workspace, by store.User, prompt string) store.Task {
	t.Helper()
	tk := store.Task{WorkspaceID: w.ID, CreatedBy: by.ID, Prompt: prompt, Options: `{"model":"x"}`}
	noErr(t, s.CreateTask(t.Context(), &tk), "create task "+prompt)
	return tk
}

func testTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	bob := newUser(t, s, "bob", store.RoleMember)
	w1 := newWorkspace(t, s, alice, "one", store.StatusRunning)
	w2 := newWorkspace(t, s, bob, "two", store.StatusRunning)

	a := newTask(t, s, w1, alice, "first")
	time.Sleep(2 * time.Millisecond)
	b := newTask(t, s, w1, alice, "second")
	c := store.Task{WorkspaceID: w2.ID, CreatedBy: bob.ID, Prompt: "other", ParentID: ""}
	noErr(t, s.CreateTask(ctx, &c), "create c")
	follow := store.Task{WorkspaceID: w1.ID, CreatedBy: bob.ID, Prompt: "follow", ParentID: a.ID}
	noErr(t, s.CreateTask(ctx, &follow), "create follow-up")

	got, err := s.GetTask(ctx, a.ID)
	noErr(t, err, "get")
	wantEqual(t, got.Status, store.TaskQueued, "new status")
	wantEqual(t, got.Options, `{"model":"x"}`, "options")
	wantEqual(t, got.WorkspaceName, "one", "workspace name")
	wantEqual(t, got.CreatedByName, "alice", "creator name")
	wantUTC(t, got.CreatedAt, "created at")
	f, err := s.GetTask(ctx, follow.ID)
	noErr(t, err, "get follow-up")
	wantEqual(t, f.ParentID, a.ID, "parent")
	_, err = s.GetTask(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "missing task")
	if err := s.CreateTask(ctx, &store.Task{WorkspaceID: w1.ID, CreatedBy: alice.ID}); err == nil {
		t.Fatal("a task without a prompt was stored")
	}

	// The queue: the oldest heads it; only the head is claimed, once.
	head, err := s.QueueHead(ctx, w1.ID)
	noErr(t, err, "head")
	wantEqual(t, head.ID, a.ID, "head")
	ok, err := s.ClaimTask(ctx, b.ID, "r1", 5)
	noErr(t, err, "claim second")
	wantEqual(t, ok, false, "claimed a task behind the head")
	ok, err = s.ClaimTask(ctx, a.ID, "r1", 5)
	noErr(t, err, "claim head")
	wantEqual(t, ok, true, "claimed the head")
	ok, err = s.ClaimTask(ctx, a.ID, "r2", 5)
	noErr(t, err, "claim again")
	wantEqual(t, ok, false, "claimed twice")
	got, _ = s.GetTask(ctx, a.ID)
	wantEqual(t, got.Status, store.TaskRunning, "claimed status")
	wantEqual(t, got.Runner, "r1", "runner")
	wantEqual(t, got.Attempts, 1, "attempts")
	if got.StartedAt == nil || got.HeartbeatAt == nil {
		t.Fatal("claim set no start or heartbeat")
	}
	// Another workspace's head is blocked only by the global cap.
	ok, err = s.ClaimTask(ctx, c.ID, "r1", 1)
	noErr(t, err, "claim over the cap")
	wantEqual(t, ok, false, "claimed over the global cap")
	qw, err := s.QueuedWorkspaces(ctx)
	noErr(t, err, "queued workspaces")
	wantEqual(t, qw, []string{w2.ID}, "workspaces waiting with nothing running")

	// Cancel: a queued task ends at once, a running one is flagged.
	st, err := s.RequestTaskCancel(ctx, b.ID, "Cancelled by alice.")
	noErr(t, err, "cancel queued")
	wantEqual(t, st, store.TaskCancelled, "queued task cancelled")
	st, err = s.RequestTaskCancel(ctx, a.ID, "")
	noErr(t, err, "cancel running")
	wantEqual(t, st, store.TaskRunning, "running task still running")
	got, _ = s.GetTask(ctx, a.ID)
	wantEqual(t, got.CancelRequested, true, "cancel flag")

	// A run's results.
	exit := 0
	now := time.Now().UTC().Truncate(time.Millisecond)
	got.Status, got.Detail, got.SessionID, got.Model = store.TaskSucceeded, "done", "sess-1", "claude-x"
	got.Branch, got.BaseSHA, got.CommitSHA, got.Files = "aicli/task-1", "abc", "def", `[{"path":"a"}]`
	got.Events, got.Turns, got.CostUSD = 12, 3, 0.125
	got.Usage = store.Usage{InputTokens: 10, OutputTokens: 20, CacheRead: 30, CacheWrite: 40}
	got.DurationMS, got.ExitCode, got.FinishedAt = 1500, &exit, &now
	noErr(t, s.UpdateTaskRun(ctx, &got), "update run")
	again, _ := s.GetTask(ctx, a.ID)
	wantEqual(t, again.Usage, got.Usage, "usage")
	wantEqual(t, *again.ExitCode, 0, "exit code")
	wantEqual(t, again.CostUSD, 0.125, "cost")
	wantEqual(t, again.Files, got.Files, "files")
	wantEqual(t, again.FinishedAt.Equal(now), true, "finished at")
	wantEqual(t, again.CancelRequested, true, "cancel flag kept by an update")
	missing := store.Task{ID: "nope"}
	wantErr(t, s.UpdateTaskRun(ctx, &missing), store.ErrNotFound, "update missing")

	// Totals.
	tot, err := s.TaskTotals(ctx, store.TaskTotalsFilter{WorkspaceID: w1.ID})
	noErr(t, err, "totals")
	wantEqual(t, tot.Tasks, int64(3), "tasks in the workspace")
	wantEqual(t, tot.CostUSD, 0.125, "workspace cost")
	wantEqual(t, tot.Usage.Total(), int64(100), "workspace tokens")
	tot, err = s.TaskTotals(ctx, store.TaskTotalsFilter{CreatedBy: bob.ID})
	noErr(t, err, "user totals")
	wantEqual(t, tot.Tasks, int64(2), "bob's tasks")
	wantEqual(t, tot.CostUSD, 0.0, "bob's cost")

	// Lists and filters.
	list, err := s.ListTasks(ctx, store.TaskFilter{WorkspaceID: w1.ID, Limit: 10})
	noErr(t, err, "list workspace")
	wantEqual(t, len(list), 3, "workspace tasks")
	wantEqual(t, list[0].ID, follow.ID, "newest first")
	list, err = s.ListTasks(ctx, store.TaskFilter{Statuses: []store.TaskStatus{store.TaskQueued}, Limit: 10})
	noErr(t, err, "list queued")
	wantEqual(t, len(list), 2, "queued tasks")
	list, err = s.ListTasks(ctx, store.TaskFilter{VisibleTo: alice.ID, Limit: 10})
	noErr(t, err, "list visible to alice")
	wantEqual(t, len(list), 3, "tasks alice may see")
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: w2.ID, UserID: alice.ID}), "share")
	list, err = s.ListTasks(ctx, store.TaskFilter{VisibleTo: alice.ID, Limit: 10})
	noErr(t, err, "list visible after sharing")
	wantEqual(t, len(list), 4, "tasks alice may see with a share")
	list, err = s.ListTasks(ctx, store.TaskFilter{CreatedBy: bob.ID, Limit: 10})
	noErr(t, err, "list bob's")
	wantEqual(t, len(list), 2, "bob's tasks listed")
	page1, err := s.ListTasks(ctx, store.TaskFilter{Limit: 2})
	noErr(t, err, "page 1")
	last := page1[len(page1)-1]
	page2, err := s.ListTasks(ctx, store.TaskFilter{Limit: 10, Before: &store.TaskCursor{CreatedAt: last.CreatedAt, ID: last.ID}})
	noErr(t, err, "page 2")
	wantEqual(t, len(page1)+len(page2), 4, "pages cover every task")
	if _, err := s.ListTasks(ctx, store.TaskFilter{}); err == nil {
		t.Fatal("a list without a limit was allowed")
	}

	// Heartbeats and orphans.
	ok, err = s.ClaimTask(ctx, follow.ID, "r1", 5)
	noErr(t, err, "claim follow-up")
	wantEqual(t, ok, true, "claimed follow-up")
	orph, err := s.OrphanedTasks(ctx, "r2", time.Now().Add(-time.Minute))
	noErr(t, err, "orphans of r2")
	wantEqual(t, len(orph), 0, "live tasks are no orphans")
	orph, err = s.OrphanedTasks(ctx, "r1", time.Now().Add(-time.Minute))
	noErr(t, err, "orphans of r1")
	wantEqual(t, len(orph), 1, "a runner's own earlier tasks are orphans")
	orph, err = s.OrphanedTasks(ctx, "r2", time.Now().Add(time.Minute))
	noErr(t, err, "stale")
	wantEqual(t, len(orph), 1, "stale heartbeats are orphans")
	noErr(t, s.HeartbeatTasks(ctx, "r1"), "heartbeat")
	noErr(t, s.RequeueTask(ctx, follow.ID, "The engine was unreachable; trying again."), "requeue")
	got, _ = s.GetTask(ctx, follow.ID)
	wantEqual(t, got.Status, store.TaskQueued, "requeued")
	wantEqual(t, got.Runner, "", "requeued runner")
	wantErr(t, s.RequeueTask(ctx, follow.ID, ""), store.ErrNotFound, "requeue a queued task")

	// Deleting the workspace deletes its tasks.
	noErr(t, s.DeleteWorkspace(ctx, w2.ID), "delete workspace")
	_, err = s.GetTask(ctx, c.ID)
	wantErr(t, err, store.ErrNotFound, "task of a deleted workspace")
}

func testTaskClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	var ws []store.Workspace
	var tasks []store.Task
	for i := range 4 {
		w := newWorkspace(t, s, alice, fmt.Sprintf("w%d", i), store.StatusRunning)
		ws = append(ws, w)
		tasks = append(tasks, newTask(t, s, w, alice, "p"))
	}
	// Eight runners race for each task: exactly one wins each.
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	for r := range 8 {
		for _, tk := range tasks {
			wg.Go(func() {
				ok, err := s.ClaimTask(ctx, tk.ID, fmt.Sprintf("r%d", r), 100)
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				if ok {
					mu.Lock()
					wins[tk.ID]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for _, tk := range tasks {
		wantEqual(t, wins[tk.ID], 1, "winners of a task")
	}
}

func testTaskEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	w := newWorkspace(t, s, alice, "one", store.StatusRunning)
	tk := newTask(t, s, w, alice, "p")
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var evs []store.TaskEvent
	var pos int64
	for i := 1; i <= 120; i++ {
		e := store.TaskEvent{TaskID: tk.ID, Seq: int64(i), At: at, Type: "assistant", Summary: fmt.Sprintf("line %d", i), Pos: pos, Size: 10}
		if i%7 == 0 {
			e.Type, e.Tool, e.IsError = "user", "Bash", true
		}
		pos += 10
		evs = append(evs, e)
	}
	noErr(t, s.AppendTaskEvents(ctx, evs), "append")
	noErr(t, s.AppendTaskEvents(ctx, nil), "append nothing")
	got, err := s.ListTaskEvents(ctx, tk.ID, 0, 0)
	noErr(t, err, "list")
	wantEqual(t, got, evs, "events")
	got, err = s.ListTaskEvents(ctx, tk.ID, 100, 5)
	noErr(t, err, "list after")
	wantEqual(t, got, evs[100:105], "events after 100")
	// A duplicate seq is refused, and the batch with it.
	err = s.AppendTaskEvents(ctx, []store.TaskEvent{{TaskID: tk.ID, Seq: 121, At: at, Type: "x"}, {TaskID: tk.ID, Seq: 5, At: at, Type: "x"}})
	wantErr(t, err, store.ErrConflict, "duplicate seq")
	got, _ = s.ListTaskEvents(ctx, tk.ID, 120, 0)
	wantEqual(t, len(got), 0, "events of a refused batch")
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	_, err := s.GetCredential(ctx, "user", alice.ID)
	wantErr(t, err, store.ErrNotFound, "no credential")
	c := store.Credential{Scope: "user", OwnerID: alice.ID, Kind: "api_key", Sealed: "v1.xxx", Hint: "sk-ant-…abcd", UpdatedBy: alice.ID}
	noErr(t, s.SetCredential(ctx, c), "set")
	got, err := s.GetCredential(ctx, "user", alice.ID)
	noErr(t, err, "get")
	wantEqual(t, got.Sealed, "v1.xxx", "sealed")
	wantUTC(t, got.UpdatedAt, "updated at")
	c.Kind, c.Sealed = "oauth_token", "v1.yyy"
	noErr(t, s.SetCredential(ctx, c), "replace")
	got, _ = s.GetCredential(ctx, "user", alice.ID)
	wantEqual(t, got.Kind, "oauth_token", "replaced kind")
	_, err = s.GetCredential(ctx, "workspace", alice.ID)
	wantErr(t, err, store.ErrNotFound, "other scope")
	noErr(t, s.DeleteCredential(ctx, "user", alice.ID), "delete")
	wantErr(t, s.DeleteCredential(ctx, "user", alice.ID), store.ErrNotFound, "delete again")
}
