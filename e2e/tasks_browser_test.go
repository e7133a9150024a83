package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"aicode/services/engine"
	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/fakeanthropic"
)

// TestBrowserTaskStreamsLive queues a task from the Tasks tab and watches
// the real claude CLI's events arrive on the task page while it runs (the
// fake model answers slowly), then the result, the summary turning to
// succeeded and the changed files, all without a reload; a reload then
// shows the same events from the stored history, once each.
func TestBrowserTaskStreamsLive(t *testing.T) {
	start := time.Now()
	const prompt = "Create hello.txt saying hello. Then stop."
	// Six 24-byte chunks of text, each after 300 ms: the text event reaches
	// the page seconds before the tool call, its result and the answer.
	intro := "I'll look at the workspace first and then create hello.txt with a friendly greeting in it."
	fake := fakeanthropic.New(t, fakeanthropic.WithTurns(
		fakeanthropic.Turn{Delay: 300 * time.Millisecond, Blocks: []fakeanthropic.Block{
			fakeanthropic.TextBlock(intro),
			fakeanthropic.ToolUse("Write", map[string]string{"file_path": "/workspace/hello.txt", "content": "hello from claude\n"}),
		}},
		fakeanthropic.Turn{Delay: 150 * time.Millisecond, Blocks: []fakeanthropic.Block{
			fakeanthropic.TextBlock("Created hello.txt."),
		}},
	))
	image := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE")
	if image == "" {
		image = "aicode-workspace:latest"
	}
	// The workspace image has the real CLI; on the host network it reaches
	// the fake Messages API on loopback.
	s := testutil.StartServer(t, testutil.Options{Image: image, Env: map[string]string{
		"AICODE_WORKSPACE_NETWORK":   "host",
		"AICODE_WORKSPACE_MEMORY_MB": "1024",
		"AICODE_WORKSPACE_CPUS":      "1",
		"AICODE_WORKSPACE_PIDS":      "256",
		"AICODE_CLAUDE_BASE_URL":     fake.URL(),
		"ANTHROPIC_API_KEY":          "sk-ant-api03-browser-test-0123456789abcdef",
	}})
	admin := testutil.Setup(t, s.URL, "admin", pw)
	if r := admin.Get("/static/tasks.js"); r.Status != http.StatusOK {
		t.Fatalf("/static/tasks.js answers %d: the front-end assets are not built into the binary (run `make assets` before the tests)", r.Status)
	}
	name := testutil.UniqueName("tasks")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		t.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	var w store.Workspace
	for deadline := time.Now().Add(90 * time.Second); ; {
		var err error
		w, err = s.App.Store.GetWorkspaceByName(ctx, name)
		if err == nil && w.Status == store.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace not running: %+v %v", w, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A repository, so the task gets a branch and a diff.
	res, err := s.App.Engine.Capture(ctx, w.ContainerID, engine.ExecSpec{
		Cmd:  []string{"sh", "-c", `git init -q -b main && echo base > README.md && git add -A && git -c user.name=t -c user.email=t@example.com commit -q -m init`},
		User: "1000:1000", WorkDir: "/workspace",
	}, nil, 1<<20)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("git init in the workspace: %v exit %d %s %s", err, res.ExitCode, res.Stdout, res.Stderr)
	}
	t.Logf("workspace ready after %s", time.Since(start).Round(time.Millisecond))

	b := testutil.NewBrowser(t)
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }
	// dump fails the test with the task page as it is, for the log.
	dump := func(format string, args ...any) {
		t.Helper()
		b.Screenshot(t, "tasks-failure")
		dctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
		defer cancel()
		html, herr := chromedp.Run(dctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		if herr != nil {
			html = "(page HTML unavailable: " + herr.Error() + ")"
		}
		if len(html) > 60000 {
			html = html[:60000] + "…"
		}
		args = append(args, b.Errors(), html)
		t.Fatalf(format+"\npage errors: %v\npage HTML:\n%s", args...)
	}
	waitJS := func(what, expr string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !testutil.Eval[bool](t, b, expr) {
			if time.Now().After(deadline) {
				tk, _ := s.App.Store.GetTask(ctx, taskIDOf(testutil.Eval[string](t, b, `location.pathname`)))
				dump("%s: %s did not hold within %s (task in the store: status %q, detail %q, %d events)",
					what, expr, within, tk.Status, tk.Detail, tk.Events)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	b.Do(t, "sign in", 20*time.Second,
		chromedp.Navigate(s.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(sel("field-username")), "admin"),
		chromedp.SendKeys(chromedp.CSS(sel("field-password")), pw),
		testutil.Click(sel("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-list"))),
	)
	b.Do(t, "open the Tasks tab", 30*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		testutil.Click(sel("tab-tasks")),
		chromedp.WaitVisible(chromedp.CSS(sel("new-task-form"))),
	)
	b.Do(t, "queue the task", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS(sel("new-task-form")+" "+sel("field-prompt")), prompt),
		testutil.Click(sel("submit-task")),
		chromedp.WaitVisible(chromedp.CSS(sel("task-events"))),
	)
	path := testutil.Eval[string](t, b, `location.pathname`)
	id := taskIDOf(path)
	if id == "" || !strings.HasPrefix(path, "/workspaces/"+w.ID+"/tasks/") {
		dump("submitting the form led to %q, not a task page of workspace %s", path, w.ID)
	}
	if got := testutil.Eval[string](t, b, `document.querySelector('`+sel("task-prompt")+`').textContent`); got != prompt {
		dump("the task page shows the prompt %q, want %q", got, prompt)
	}
	queuedAt := time.Now()

	// Watch the page from now on: when the first assistant text arrives,
	// note the summary's status and whether the result is there yet. The
	// marker on window proves later that nothing reloaded the page.
	testutil.Eval[bool](t, b, `(function () {
		window.__noReload = true;
		var w = window.__watch = { initialAfter: +document.querySelector('[data-task-stream]').dataset.after, firstText: null, statuses: [] };
		function summary() { var s = document.querySelector('[data-testid="task-summary"]'); return s ? s.dataset.status : ''; }
		function look() {
			var st = summary();
			if (w.statuses[w.statuses.length - 1] !== st) w.statuses.push(st);
			if (w.firstText) return;
			var el = document.querySelector('[data-testid="event-list"] [data-testid="event-text"]');
			if (!el) return;
			w.firstText = {
				status: st,
				seq: +el.closest('[data-seq]').dataset.seq,
				result: !!document.querySelector('[data-testid="event-result"]'),
				files: !!document.querySelector('[data-testid="task-files"]'),
				text: el.textContent
			};
		}
		new MutationObserver(look).observe(document.querySelector('[data-testid="task-detail"]'), { childList: true, subtree: true, attributes: true, attributeFilter: ['data-status'] });
		look();
		return true;
	})()`)

	waitJS("the first assistant text, live", `!!window.__watch.firstText`, 3*time.Minute)
	type firstText struct {
		Status string  `json:"status"`
		Seq    float64 `json:"seq"`
		Result bool    `json:"result"`
		Files  bool    `json:"files"`
		Text   string  `json:"text"`
	}
	ft := testutil.Eval[firstText](t, b, `window.__watch.firstText`)
	initialAfter := testutil.Eval[float64](t, b, `window.__watch.initialAfter`)
	t.Logf("first text on the page %s after queueing: %+v (page loaded after seq %v)", time.Since(queuedAt).Round(time.Millisecond), ft, initialAfter)
	if ft.Status != string(store.TaskRunning) || ft.Result || ft.Files {
		dump("the first text arrived with the summary at %q (want running), result shown %v, files shown %v: not live", ft.Status, ft.Result, ft.Files)
	}
	if ft.Seq <= initialAfter {
		dump("the first text (seq %v) was in the page as loaded (after %v), not streamed", ft.Seq, initialAfter)
	}
	if !strings.Contains(ft.Text, "create hello.txt") {
		dump("the first text reads %q", ft.Text)
	}

	// The rest streams in: the tool call, its result, the answer; then the
	// summary turns to succeeded and the changed files appear.
	waitJS("the Write call", `!!document.querySelector('`+sel("event-list")+` [data-testid="event-tool-use"][data-tool="Write"]')`, 2*time.Minute)
	waitJS("the tool result", `!!document.querySelector('`+sel("event-list")+` `+sel("event-tool-result")+`')`, 2*time.Minute)
	waitJS("the final result", `!!document.querySelector('`+sel("event-list")+` `+sel("event-result")+`')`, 2*time.Minute)
	waitJS("the summary saying succeeded", `document.querySelector('`+sel("task-summary")+`').dataset.status === 'succeeded'`, 2*time.Minute)
	waitJS("the changed files", `!!document.querySelector('`+sel("task-files")+` `+sel("changed-file")+`[data-path="hello.txt"]')`, time.Minute)
	t.Logf("finished on the page %s after queueing; statuses seen: %v", time.Since(queuedAt).Round(time.Millisecond),
		testutil.Eval[[]string](t, b, `window.__watch.statuses`))
	if !testutil.Eval[bool](t, b, `window.__noReload === true`) {
		dump("the page reloaded while the task ran")
	}
	if got := testutil.Eval[string](t, b, `document.querySelector('`+sel("event-result")+`').textContent`); !strings.Contains(got, "Created hello.txt.") {
		dump("the result reads %q", got)
	}
	if testutil.Eval[bool](t, b, `!!document.querySelector('[data-live-note]')`) {
		dump("the live note stayed after the task ended")
	}
	if !testutil.Eval[bool](t, b, `!!document.querySelector('`+sel("followup-form")+`')`) {
		dump("no follow-up form after the task succeeded")
	}
	b.Screenshot(t, "task-finished")
	// The outcome came over the stream; htmx must have processed it, so
	// opening the diff loads it.
	b.Do(t, "open the diff", 10*time.Second, testutil.Click(sel("diff")+" summary"))
	waitJS("the diff loaded", `document.querySelector('`+sel("diff-body")+`').textContent.indexOf('+hello from claude') >= 0`, 15*time.Second)

	tk, err := s.App.Store.GetTask(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != store.TaskSucceeded {
		dump("task %s in the store: %s %q", id, tk.Status, tk.Detail)
	}
	// The stream may still be delivering the last events when the outcome
	// shows (it never does: the outcome follows a catch-up), so compare now.
	seqsJS := `Array.from(document.querySelectorAll('` + sel("event-list") + ` ` + sel("event") + `')).map(function (el) { return +el.dataset.seq; })`
	live := testutil.Eval[[]int64](t, b, seqsJS)
	checkSeqs := func(when string, seqs []int64) {
		t.Helper()
		seen := map[int64]bool{}
		for _, q := range seqs {
			if seen[q] {
				dump("%s: event %d is shown twice (events %v)", when, q, seqs)
			}
			seen[q] = true
		}
		if !slices.IsSorted(seqs) {
			dump("%s: events out of order: %v", when, seqs)
		}
		if int64(len(seqs)) != tk.Events {
			dump("%s: %d events shown, the task has %d: %v", when, len(seqs), tk.Events, seqs)
		}
	}
	checkSeqs("live", live)
	b.Screenshot(t, "task-live")

	// A reload renders the same events from the stored history.
	b.Do(t, "reload the task page", 30*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(sel("task-events")+"[data-final]")),
		chromedp.WaitVisible(chromedp.CSS(sel("event-result"))),
		chromedp.WaitVisible(chromedp.CSS(sel("task-files")+" "+sel("changed-file")+`[data-path="hello.txt"]`)),
	)
	// Give a (wrongly) reconnecting stream a moment to add anything.
	time.Sleep(500 * time.Millisecond)
	if testutil.Eval[bool](t, b, `window.__noReload === true`) {
		dump("the page did not reload")
	}
	reloaded := testutil.Eval[[]int64](t, b, seqsJS)
	checkSeqs("after the reload", reloaded)
	if !slices.Equal(live, reloaded) {
		dump("the reloaded page shows events %v, live it showed %v", reloaded, live)
	}
	if st := testutil.Eval[string](t, b, `document.querySelector('`+sel("task-summary")+`').dataset.status`); st != "succeeded" {
		dump("after the reload the summary says %q", st)
	}
	for _, q := range []string{
		sel("event-list") + ` [data-testid="event-tool-use"][data-tool="Write"]`,
		sel("event-list") + " " + sel("event-tool-result"),
		sel("event-list") + " " + sel("event-text"),
	} {
		if !testutil.Eval[bool](t, b, `!!document.querySelector('`+q+`')`) {
			dump("after the reload the page lacks %s", q)
		}
	}
	b.Screenshot(t, "task-reloaded")

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the task pages logged errors (CSP violations, exceptions): %v", errs)
	}
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

var taskPathRe = regexp.MustCompile(`^/workspaces/[a-z0-9]+/tasks/([a-z0-9]+)$`)

// taskIDOf is the task id of a task page's path, or "".
func taskIDOf(path string) string {
	if m := taskPathRe.FindStringSubmatch(path); m != nil {
		return m[1]
	}
	return ""
}
