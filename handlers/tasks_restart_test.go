package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/fakeanthropic"
)

// The server is killed (SIGKILL: no shutdown code runs) while Claude is in
// the middle of a task, then started again on the same data directory. The
// task must end up interrupted with the events it had, its CLI stopped,
// and never be run a second time; the queue must work on.
func TestTaskSurvivesServerKill(t *testing.T) {
	const (
		firstPrompt  = "restart-scenario: start a long job"
		secondPrompt = "restart-scenario: after the restart"
		firstText    = "Starting the long job now."
		// The CLI refuses a bare long sleep.
		longJob = "timeout 300 tail -f /dev/null; echo finished"
	)
	fake := fakeanthropic.New(t, fakeanthropic.WithScript(func(r fakeanthropic.Request) fakeanthropic.Turn {
		if strings.Contains(r.Prompt(), secondPrompt) {
			return fakeanthropic.Text("Done after the restart.")
		}
		if len(r.ToolResults()) > 0 {
			return fakeanthropic.Text("The long job finished.")
		}
		// Streamed slowly, then a tool call that keeps the CLI busy
		// well past the kill and the restart.
		tn := fakeanthropic.Blocks(
			fakeanthropic.TextBlock(firstText),
			fakeanthropic.ToolUse("Bash", map[string]string{"command": longJob, "description": "Long job"}),
		)
		tn.Delay = 20 * time.Millisecond
		return tn
	}))
	p := testutil.StartProcess(t, testutil.ProcessOptions{
		Image: workspaceImage(),
		Env: map[string]string{
			"AICODE_WORKSPACE_NETWORK":   "host",
			"AICODE_WORKSPACE_MEMORY_MB": "1024",
			"AICODE_WORKSPACE_CPUS":      "1",
			"AICODE_WORKSPACE_PIDS":      "256",
			"AICODE_CLAUDE_BASE_URL":     fake.URL(),
			"ANTHROPIC_API_KEY":          testAPIKey,
			"AICODE_TASK_CANCEL_GRACE":   "3s",
		},
	})
	admin := testutil.Setup(t, p.URL, "admin", adminPW)
	st := p.Store()
	ctx := context.Background()

	name := testutil.UniqueName("restart")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		t.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	var ws store.Workspace
	pollUntil(t, time.Minute, "the workspace runs", func() bool {
		var err error
		ws, err = st.GetWorkspaceByName(ctx, name)
		return err == nil && ws.Status == store.StatusRunning && ws.ContainerID != ""
	})
	sh := func(cmd string) string {
		t.Helper()
		res, err := testutil.Engine(t).Capture(ctx, ws.ContainerID, engine.ExecSpec{
			Cmd: []string{"sh", "-c", cmd}, User: "1000:1000", WorkDir: "/workspace",
		}, nil, 1<<20)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: %v, exit %d: %s %s", cmd, err, res.ExitCode, res.Stdout, res.Stderr)
		}
		return string(res.Stdout)
	}
	sh(`git init -q -b main && echo base > README.md && git add -A && git -c user.name=t -c user.email=t@example.com commit -q -m init`)
	queue := func(prompt string) string {
		t.Helper()
		admin.Get("/workspaces/" + ws.ID + "/tasks")
		r := admin.Post("/workspaces/"+ws.ID+"/tasks", url.Values{"prompt": {prompt}, "permission_mode": {"bypassPermissions"}}, false)
		m := taskURLRe.FindStringSubmatch(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || m == nil {
			t.Fatalf("queue task: %d, location %q: %s", r.Status, r.Header.Get("Location"), r.Body)
		}
		return m[1]
	}
	getTask := func(id string) store.Task {
		t.Helper()
		tk, err := st.GetTask(ctx, id)
		if err != nil {
			t.Fatalf("task %s: %v", id, err)
		}
		return tk
	}

	// Mid-run: the init, text and tool call events are stored and the
	// tool's command runs in the container.
	id := queue(firstPrompt)
	var before []store.TaskEvent
	pollUntil(t, 3*time.Minute, "the task is running its tool", func() bool {
		if tk := getTask(id); tk.Status.Final() {
			t.Fatalf("the task ended before the kill: %s %q; transcript:\n%s", tk.Status, tk.Detail, admin.Get("/workspaces/"+ws.ID+"/tasks/"+id+"/transcript").Body)
		}
		var err error
		before, err = st.ListTaskEvents(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		bash := false
		for _, e := range before {
			bash = bash || e.Tool == "Bash"
		}
		return getTask(id).Status == store.TaskRunning && bash && strings.Contains(sh("ps -eo args"), "tail -f /dev/null")
	})
	if before[0].Type != "system" || before[0].Subtype != "init" {
		t.Fatalf("first stored event is %s/%s, want system/init", before[0].Type, before[0].Subtype)
	}

	p.Kill()
	killedAt := time.Now()
	// Nothing but the restarted server stops the CLI: it outlives the
	// process that started it.
	if ps := sh("ps -eo args"); !strings.Contains(ps, "claude -p") || !strings.Contains(ps, "tail -f /dev/null") {
		t.Fatalf("the CLI and its tool should still run after the kill:\n%s", ps)
	}
	p.Restart()
	t.Logf("restarted in %s", time.Since(killedAt).Round(time.Millisecond))

	tk := getTask(id)
	pollUntil(t, time.Minute, "the task is interrupted", func() bool {
		tk = getTask(id)
		return tk.Status != store.TaskRunning
	})
	if tk.Status != store.TaskInterrupted {
		t.Fatalf("after the restart the task is %s: %q", tk.Status, tk.Detail)
	}
	if !strings.Contains(tk.Detail, "server stopped while the task ran") || strings.Contains(tk.Detail, "error") {
		t.Fatalf("detail %q does not say plainly what happened", tk.Detail)
	}
	if len(before) < 3 || tk.Events < int64(len(before)) || tk.FinishedAt == nil || tk.Attempts != 1 {
		t.Fatalf("task: %d events (%d stored before the kill), finished %v, attempts %d", tk.Events, len(before), tk.FinishedAt, tk.Attempts)
	}
	if tk.Branch != "aicli/task-"+id {
		t.Fatalf("branch %q", tk.Branch)
	}

	// The CLI is gone from the container, and so is what its tool ran.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ps := sh("ps -eo args")
		if !strings.Contains(ps, "claude") && !strings.Contains(ps, "tail -f /dev/null") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted task's processes still run:\n%s", ps)
		}
	}

	// The page and the transcript show what happened before the kill.
	page := admin.Get("/workspaces/" + ws.ID + "/tasks/" + id)
	if page.Status != http.StatusOK {
		t.Fatalf("task page after the restart: %d", page.Status)
	}
	for _, want := range []string{`data-status="interrupted"`, `data-testid="event-init"`, firstText, `data-tool="Bash"`, "server stopped while the task ran"} {
		if !strings.Contains(page.Body, want) {
			t.Fatalf("the task page lacks %q", want)
		}
	}
	tr := admin.Get("/workspaces/" + ws.ID + "/tasks/" + id + "/transcript")
	lines := strings.Split(strings.TrimSuffix(tr.Body, "\n"), "\n")
	if tr.Status != http.StatusOK || int64(len(lines)) != tk.Events || !strings.Contains(lines[0], `"subtype":"init"`) ||
		!strings.Contains(tr.Body, firstText) || !strings.Contains(tr.Body, "tail -f /dev/null") {
		t.Fatalf("transcript (%d, %d lines, task says %d events):\n%s", tr.Status, len(lines), tk.Events, tr.Body)
	}

	// The queue works after the restart, and the first task never ran again.
	id2 := queue(secondPrompt)
	var tk2 store.Task
	pollUntil(t, 3*time.Minute, "the second task finishes", func() bool {
		tk2 = getTask(id2)
		return tk2.Status.Final()
	})
	if tk2.Status != store.TaskSucceeded {
		t.Fatalf("the task queued after the restart: %s %q", tk2.Status, tk2.Detail)
	}
	if tk = getTask(id); tk.Status != store.TaskInterrupted || tk.Attempts != 1 {
		t.Fatalf("the interrupted task changed: %s, attempts %d", tk.Status, tk.Attempts)
	}
	for _, r := range fake.MainRequests() {
		if strings.Contains(strings.Join(r.Prompts(), "\n"), firstPrompt) && r.Time.After(killedAt) {
			t.Fatalf("the interrupted task reached the API again at %s (killed at %s)", r.Time.Format(time.StampMilli), killedAt.Format(time.StampMilli))
		}
	}
}

// pollUntil waits until cond holds.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
