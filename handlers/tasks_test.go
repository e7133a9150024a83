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
