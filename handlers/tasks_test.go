package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/testutil"
	"aicode/testutil/fakeanthropic"
	"aicode/testutil/pgtest"
)

// taskEnv is a server whose workspaces use the default image (with the
// real Claude Code CLI) on the host network, so the CLI reaches the fake
// Messages API on loopback.
type taskEnv struct {
	s     *testutil.Server
	admin *testutil.Client
	fake  *fakeanthropic.Server
	ws    store.Workspace
}

const testAPIKey = "sk-ant-api03-test-key-0123456789abcdef"

func workspaceImage() string {
	if img := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE"); img != "" {
		return img
	}
	return "aicode-workspace:latest"
}

func newTaskEnv(t *testing.T, fake *fakeanthropic.Server, env map[string]string) *taskEnv {
	t.Helper()
	e := map[string]string{
		"AICODE_WORKSPACE_NETWORK":   "host",
		"AICODE_WORKSPACE_MEMORY_MB": "1024",
		"AICODE_WORKSPACE_CPUS":      "1",
		"AICODE_WORKSPACE_PIDS":      "256",
		"AICODE_CLAUDE_BASE_URL":     fake.URL(),
		"ANTHROPIC_API_KEY":          testAPIKey,
		"AICODE_TASK_CANCEL_GRACE":   "3s",
		"AICODE_CLAUDE_MAX_RETRIES":  "1",
	}
	for k, v := range env {
		e[k] = v
	}
	image := workspaceImage()
	if e["image"] != "" {
		image = e["image"]
		delete(e, "image")
	}
	s := testutil.StartServer(t, testutil.Options{Image: image, Env: e})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("task")}})
	w = waitStatus(t, s, w.ID, store.StatusRunning, 60*time.Second)
	return &taskEnv{s: s, admin: admin, fake: fake, ws: w}
}

// sh runs a shell command in the workspace as its user.
func (e *taskEnv) sh(t *testing.T, cmd string) string {
	t.Helper()
	res, err := e.s.App.Engine.Capture(context.Background(), e.ws.ContainerID, engine.ExecSpec{
		Cmd: []string{"sh", "-c", cmd}, User: "1000:1000", WorkDir: "/workspace",
	}, nil, 1<<20)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: exit %d: %s %s", cmd, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

// gitInit makes /workspace a repository with one commit.
func (e *taskEnv) gitInit(t *testing.T) string {
	t.Helper()
	e.sh(t, `git init -q -b main && echo base > README.md && git add -A && git -c user.name=t -c user.email=t@example.com commit -q -m init`)
	return strings.TrimSpace(e.sh(t, "git rev-parse HEAD"))
}

var taskURLRe = regexp.MustCompile(`/workspaces/[a-z0-9]+/tasks/([a-z0-9]+)$`)

// queue submits the new-task form and returns the task id.
func (e *taskEnv) queue(t *testing.T, prompt string, extra url.Values) string {
	t.Helper()
	vals := url.Values{"prompt": {prompt}}
	for k, v := range extra {
		vals[k] = v
	}
	r := e.admin.Post("/workspaces/"+e.ws.ID+"/tasks", vals, false)
	if r.Status != http.StatusSeeOther && r.Status != http.StatusFound {
		t.Fatalf("queue task: %d %s", r.Status, r.Body)
	}
	m := taskURLRe.FindStringSubmatch(r.Header.Get("Location"))
	if m == nil {
		t.Fatalf("queue task: redirected to %q", r.Header.Get("Location"))
	}
	return m[1]
}

// wait polls until the task satisfies cond.
func (e *taskEnv) wait(t *testing.T, id string, within time.Duration, what string, cond func(store.Task) bool) store.Task {
	t.Helper()
	deadline := time.Now().Add(within)
	var tk store.Task
	var err error
	for time.Now().Before(deadline) {
		tk, err = e.s.App.Store.GetTask(context.Background(), id)
		if err == nil && cond(tk) {
			return tk
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("task %s: not %s within %s: status %s, detail %q, err %v", id, what, within, tk.Status, tk.Detail, err)
	return tk
}

func (e *taskEnv) waitFinal(t *testing.T, id string, within time.Duration) store.Task {
	t.Helper()
	return e.wait(t, id, within, "finished", func(tk store.Task) bool { return tk.Status.Final() })
}

func (e *taskEnv) events(t *testing.T, id string) []tasks.Event {
	t.Helper()
	tk, err := e.s.App.Store.GetTask(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := e.s.App.Tasks.Events(context.Background(), adminPrincipal(t, e.s), tk.WorkspaceID, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func adminPrincipal(t *testing.T, s *testutil.Server) auth.Principal {
	t.Helper()
	u, err := s.App.Store.GetUserByUsername(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	return auth.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
}

func writeFileTurns() []fakeanthropic.Turn {
	return []fakeanthropic.Turn{
		fakeanthropic.Blocks(
			fakeanthropic.TextBlock("I'll create the file."),
			fakeanthropic.ToolUse("Write", map[string]string{"file_path": "/workspace/hello.txt", "content": "hello from claude\n"}),
		),
		fakeanthropic.Text("Created hello.txt."),
	}
}

// The main scenario: the fake model asks to write a file, the real CLI
// writes it, and the task shows the tool call, its result, cost and usage,
// the diff, and the commit on the task branch.
func TestTaskWritesFileOnItsBranch(t *testing.T) {
	fake := fakeanthropic.New(t, fakeanthropic.WithTurns(writeFileTurns()...))
	e := newTaskEnv(t, fake, nil)
	base := e.gitInit(t)

	id := e.queue(t, "Create hello.txt saying hello. Then stop.", nil)
	tk := e.waitFinal(t, id, 3*time.Minute)
	if tk.Status != store.TaskSucceeded {
		t.Fatalf("status %s: %s", tk.Status, tk.Detail)
	}
	if got := e.sh(t, "cat /workspace/hello.txt"); got != "hello from claude\n" {
		t.Fatalf("file content %q", got)
	}
	if tk.Branch != "aicli/task-"+id || tk.BaseSHA != base || tk.CommitSHA == "" {
		t.Fatalf("branch %q base %q commit %q", tk.Branch, tk.BaseSHA, tk.CommitSHA)
	}
	if got := strings.TrimSpace(e.sh(t, "git rev-parse --abbrev-ref HEAD")); got != tk.Branch {
		t.Fatalf("checked out %q", got)
	}
	if got := strings.TrimSpace(e.sh(t, "git rev-parse "+tk.Branch)); got != tk.CommitSHA {
		t.Fatalf("branch at %s, task says %s", got, tk.CommitSHA)
	}
	msg := e.sh(t, "git log -1 --format=%B "+tk.CommitSHA)
	if !strings.HasPrefix(msg, "Create hello.txt saying hello\n") || !strings.Contains(msg, "AICode-Task: "+id) {
		t.Fatalf("commit message %q", msg)
	}
	if tk.CostUSD <= 0 || tk.Usage.InputTokens <= 0 || tk.Usage.OutputTokens <= 0 || tk.Turns < 2 {
		t.Fatalf("figures: cost %v usage %+v turns %d", tk.CostUSD, tk.Usage, tk.Turns)
	}
	if tk.SessionID == "" || tk.Model == "" || tk.ExitCode == nil || *tk.ExitCode != 0 {
		t.Fatalf("session %q model %q exit %v", tk.SessionID, tk.Model, tk.ExitCode)
	}
	files := tasks.Files(tk)
	if len(files) != 1 || files[0].Path != "hello.txt" || files[0].Status != "added" || files[0].Additions != 1 {
		t.Fatalf("files %+v", files)
	}

	// Every event kept, typed.
	evs := e.events(t, id)
	var sawInit, sawUse, sawResult, sawFinal bool
	for _, ev := range evs {
		switch {
		case ev.Init != nil:
			sawInit = true
		case ev.Message != nil:
			for _, b := range ev.Message.Content {
				if b.Type == "tool_use" && b.Name == "Write" {
					sawUse = true
				}
				if b.Type == "tool_result" && !b.IsError {
					sawResult = true
				}
			}
		case ev.Result != nil:
			sawFinal = !ev.Result.IsError
		}
	}
	if !sawInit || !sawUse || !sawResult || !sawFinal || int64(len(evs)) != tk.Events {
		t.Fatalf("events: init %v use %v result %v final %v, %d events (task says %d)", sawInit, sawUse, sawResult, sawFinal, len(evs), tk.Events)
	}

	// The page shows it all; the diff and transcript download.
	r := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id)
	for _, want := range []string{`data-tool="Write"`, `data-testid="event-tool-result"`, `data-testid="event-result"`, "hello.txt", tk.Branch, `data-testid="followup-form"`} {
		if !strings.Contains(r.Body, want) {
			t.Fatalf("task page lacks %q", want)
		}
	}
	if d := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id + "/diff"); !strings.Contains(d.Body, "+hello from claude") {
		t.Fatalf("diff: %d %s", d.Status, d.Body)
	}
	tr := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id + "/transcript")
	if n := strings.Count(tr.Body, "\n"); int64(n) != tk.Events {
		t.Fatalf("transcript has %d lines, task %d events", n, tk.Events)
	}
	if strings.Contains(tr.Body, testAPIKey) || strings.Contains(r.Body, testAPIKey) {
		t.Fatal("the API key leaked into the transcript or the page")
	}
	if rec := fake.MainRequests(); len(rec) == 0 || rec[0].APIKey() != testAPIKey {
		t.Fatal("the CLI did not use the deployment's key")
	}

	// A follow-up continues the same session, on a branch of its own.
	fake.SetTurns(fakeanthropic.Text("It says hello from claude."))
	id2 := e.queue(t, "What does hello.txt say?", url.Values{"parent": {id}})
	tk2 := e.waitFinal(t, id2, 3*time.Minute)
	if tk2.Status != store.TaskSucceeded || tk2.SessionID != tk.SessionID {
		t.Fatalf("follow-up: %s %q, session %q (first %q)", tk2.Status, tk2.Detail, tk2.SessionID, tk.SessionID)
	}
	main := fake.MainRequests()
	last := main[len(main)-1]
	if len(last.Messages) < 3 || !strings.Contains(last.Prompt(), "What does hello.txt say?") {
		t.Fatalf("follow-up request did not carry the conversation: %d messages", len(last.Messages))
	}
	found := false
	for _, p := range last.Prompts() {
		found = found || strings.Contains(p, "Create hello.txt")
	}
	if !found {
		t.Fatal("the resumed conversation lacks the first prompt")
	}
}

// Three tasks queued at once run one after another, in order; a task
// cancelled mid-run stops its CLI and keeps what it did.
func TestTaskQueueOrderAndCancel(t *testing.T) {
	slow := func(s string) fakeanthropic.Turn {
		tn := fakeanthropic.Text(s + " " + strings.Repeat("word ", 20))
		tn.Delay = 20 * time.Millisecond
		return tn
	}
	fake := fakeanthropic.New(t, fakeanthropic.WithScript(func(r fakeanthropic.Request) fakeanthropic.Turn {
		p := r.Prompt()
		switch {
		case strings.Contains(p, "sleep"):
			if len(r.ToolResults()) == 0 {
				return fakeanthropic.Blocks(fakeanthropic.ToolUse("Bash", map[string]string{"command": "timeout 120 tail -f /dev/null", "description": "wait"}))
			}
			return fakeanthropic.Text("slept")
		case strings.Contains(p, "first"):
			return slow("one")
		case strings.Contains(p, "second"):
			return slow("two")
		}
		return slow("three")
	}))
	e := newTaskEnv(t, fake, nil)
	ids := []string{e.queue(t, "the first task", nil), e.queue(t, "the second task", nil), e.queue(t, "the third task", nil)}
	var done []store.Task
	for _, id := range ids {
		tk := e.waitFinal(t, id, 3*time.Minute)
		if tk.Status != store.TaskSucceeded {
			t.Fatalf("task %s: %s %q", id, tk.Status, tk.Detail)
		}
		done = append(done, tk)
	}
	for i := 1; i < len(done); i++ {
		if done[i].StartedAt.Before(*done[i-1].FinishedAt) {
			t.Fatalf("task %d started at %v, before task %d finished at %v", i+1, done[i].StartedAt, i, done[i-1].FinishedAt)
		}
	}
	var order []string
	for _, r := range fake.MainRequests() {
		p := r.Prompts()[0]
		if len(order) == 0 || order[len(order)-1] != p {
			order = append(order, p)
		}
	}
	if len(order) != 3 || !strings.Contains(order[0], "first") || !strings.Contains(order[2], "third") {
		t.Fatalf("the API saw prompts in this order: %q", order)
	}

	// Cancel mid-run: the CLI is inside a long Bash call.
	id := e.queue(t, "please sleep", url.Values{"allowed_tools": {"Bash"}})
	e.wait(t, id, 2*time.Minute, "running its tool", func(tk store.Task) bool {
		if tk.Status.Final() {
			idx, _ := e.s.App.Store.ListTaskEvents(context.Background(), id, 0, 0)
			for _, ev := range idx {
				t.Logf("event %d %s %s: %s", ev.Seq, ev.Type, ev.Tool, ev.Summary)
			}
			t.Fatalf("the task ended (%s) before its tool ran", tk.Status)
		}
		return strings.Contains(e.sh(t, "ps -eo args"), "tail -f /dev/null")
	})
	r := e.admin.Post("/workspaces/"+e.ws.ID+"/tasks/"+id+"/cancel", nil, false)
	if r.Status != http.StatusSeeOther && r.Status != http.StatusFound {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	tk := e.waitFinal(t, id, time.Minute)
	if tk.Status != store.TaskCancelled || !strings.Contains(tk.Detail, "admin") {
		t.Fatalf("after cancel: %s %q", tk.Status, tk.Detail)
	}
	if ps := e.sh(t, "ps -eo args"); strings.Contains(ps, "claude") {
		t.Fatalf("the CLI still runs after cancel:\n%s", ps)
	}
	if tk.Events == 0 || len(e.events(t, id)) == 0 {
		t.Fatal("a cancelled task lost its events")
	}
	// A queued task is cancelled at once and never runs.
	fake.SetScript(func(fakeanthropic.Request) fakeanthropic.Turn { return fakeanthropic.Turn{Hang: true} })
	running := e.queue(t, "hang here", nil)
	queued := e.queue(t, "never runs", nil)
	e.wait(t, running, time.Minute, "running", func(tk store.Task) bool { return tk.Status == store.TaskRunning })
	e.admin.Post("/workspaces/"+e.ws.ID+"/tasks/"+queued+"/cancel", nil, false)
	if tk := e.waitFinal(t, queued, 10*time.Second); tk.Status != store.TaskCancelled || tk.StartedAt != nil {
		t.Fatalf("queued task after cancel: %s, started %v", tk.Status, tk.StartedAt)
	}
	e.admin.Post("/workspaces/"+e.ws.ID+"/tasks/"+running+"/cancel", nil, false)
	if tk := e.waitFinal(t, running, time.Minute); tk.Status != store.TaskCancelled {
		t.Fatalf("hanging task after cancel: %s %q", tk.Status, tk.Detail)
	}
	for _, r := range fake.MainRequests() {
		if strings.Contains(r.Prompt(), "never runs") {
			t.Fatal("a cancelled queued task reached the API")
		}
	}
}

// Failures are said in plain words: refused credentials, no CLI in the
// image, and output that is not what the CLI should print.
func TestTaskFailuresInPlainWords(t *testing.T) {
	t.Run("auth", func(t *testing.T) {
		fake := fakeanthropic.New(t, fakeanthropic.WithAPIKey("sk-ant-api03-the-right-key-000000000"))
		e := newTaskEnv(t, fake, nil)
		id := e.queue(t, "hello", nil)
		tk := e.waitFinal(t, id, 3*time.Minute)
		if tk.Status != store.TaskFailed || tk.ErrorKind != tasks.KindAuth || !strings.Contains(tk.Detail, "refused the credentials") {
			t.Fatalf("auth failure: %s %s %q", tk.Status, tk.ErrorKind, tk.Detail)
		}
		page := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id)
		if !strings.Contains(page.Body, "refused the credentials") {
			t.Fatal("the page does not say why the task failed")
		}
	})
	t.Run("no CLI", func(t *testing.T) {
		fake := fakeanthropic.New(t)
		e := newTaskEnv(t, fake, map[string]string{"image": testutil.BusyboxImage(t)})
		id := e.queue(t, "hello", nil)
		tk := e.waitFinal(t, id, time.Minute)
		if tk.Status != store.TaskFailed || tk.ErrorKind != tasks.KindNoCLI || !strings.Contains(tk.Detail, "no Claude Code CLI") {
			t.Fatalf("no CLI: %s %s %q", tk.Status, tk.ErrorKind, tk.Detail)
		}
		if len(fake.Requests()) != 0 {
			t.Fatal("requests reached the API without a CLI")
		}
	})
	t.Run("malformed and oversized output", func(t *testing.T) {
		fake := fakeanthropic.New(t)
		e := newTaskEnv(t, fake, map[string]string{"image": testutil.BusyboxImage(t)})
		// A stand-in CLI printing what the real one never should: a line
		// that is not JSON, a 70 MB line, an unknown type, then a result.
		script := `#!/bin/sh
echo '{"type":"system","subtype":"init","session_id":"s-1","model":"m-1","tools":["Bash"],"permissionMode":"acceptEdits","cwd":"/workspace"}'
echo 'this is not json'
head -c 70000000 /dev/zero | tr '\0' 'x'; echo
echo '{"type":"brand_new_type","detail":{"x":1}}'
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0.5,"duration_ms":5,"usage":{"input_tokens":7,"output_tokens":3},"session_id":"s-1"}'
`
		res, err := e.s.App.Engine.Capture(context.Background(), e.ws.ContainerID, engine.ExecSpec{
			Cmd: []string{"sh", "-c", "cat > /bin/claude && chmod 755 /bin/claude"}, User: "0:0",
		}, strings.NewReader(script), 4096)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("install the stand-in: %v %d %s", err, res.ExitCode, res.Stderr)
		}
		id := e.queue(t, "hello", nil)
		tk := e.waitFinal(t, id, 2*time.Minute)
		if tk.Status != store.TaskSucceeded || tk.Events != 5 || tk.CostUSD != 0.5 || tk.SessionID != "s-1" {
			t.Fatalf("task: %s %q, %d events, cost %v, session %q", tk.Status, tk.Detail, tk.Events, tk.CostUSD, tk.SessionID)
		}
		evs := e.events(t, id)
		types := []string{}
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		want := []string{"system", "malformed", "oversized", "brand_new_type", "result"}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("event types %v, want %v", types, want)
		}
		if string(evs[1].Raw) != "this is not json" || evs[2].Size != 70000000 || !strings.Contains(string(evs[3].Raw), `"x":1`) {
			t.Fatalf("kept: %q, size %d, %q", evs[1].Raw, evs[2].Size, evs[3].Raw)
		}
		page := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id)
		for _, want := range []string{`data-testid="event-malformed"`, `data-testid="event-oversized"`, "brand_new_type"} {
			if !strings.Contains(page.Body, want) {
				t.Fatalf("page lacks %s", want)
			}
		}
	})
}

// The queue on PostgreSQL (production's database): River's database/sql
// driver there, the same order and cancel rules as on SQLite. A stand-in
// CLI keeps it quick; the real one is exercised above.
func TestTaskQueueOnPostgres(t *testing.T) {
	fake := fakeanthropic.New(t)
	e := newTaskEnv(t, fake, map[string]string{"image": testutil.BusyboxImage(t), "DATABASE_URL": pgtest.URL(t)})
	script := `#!/bin/sh
echo '{"type":"system","subtype":"init","session_id":"s-1","model":"m-1","tools":[],"permissionMode":"acceptEdits","cwd":"/workspace"}'
sleep 1
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0.25,"duration_ms":1000,"usage":{"input_tokens":1,"output_tokens":1},"session_id":"s-1"}'
`
	res, err := e.s.App.Engine.Capture(context.Background(), e.ws.ContainerID, engine.ExecSpec{
		Cmd: []string{"sh", "-c", "cat > /bin/claude && chmod 755 /bin/claude"}, User: "0:0",
	}, strings.NewReader(script), 4096)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("install the stand-in: %v %d %s", err, res.ExitCode, res.Stderr)
	}
	ids := []string{e.queue(t, "one", nil), e.queue(t, "two", nil), e.queue(t, "three", nil), e.queue(t, "four", nil)}
	e.admin.Post("/workspaces/"+e.ws.ID+"/tasks/"+ids[2]+"/cancel", nil, false)
	var done []store.Task
	for i, id := range ids {
		tk := e.waitFinal(t, id, 2*time.Minute)
		want := store.TaskSucceeded
		if i == 2 {
			want = store.TaskCancelled
		}
		if tk.Status != want {
			t.Fatalf("task %d: %s %q", i+1, tk.Status, tk.Detail)
		}
		if i != 2 {
			done = append(done, tk)
		}
	}
	for i := 1; i < len(done); i++ {
		if done[i].StartedAt.Before(*done[i-1].FinishedAt) {
			t.Fatalf("task %s started before %s finished", done[i].ID, done[i-1].ID)
		}
	}
	tot, err := e.s.App.Store.TaskTotals(context.Background(), store.TaskTotalsFilter{WorkspaceID: e.ws.ID})
	if err != nil || tot.CostUSD != 0.75 {
		t.Fatalf("totals %+v %v", tot, err)
	}
}
