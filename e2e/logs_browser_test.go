package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"aicode/testutil"
)

// printInContainer has a process write lines to the container's own output
// (its init's stdout or stderr), which is what the Logs tab shows.
func printInContainer(t *testing.T, cli *client.Client, id, fd, line string) {
	t.Helper()
	ctx := context.Background()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd:          []string{"/bin/sh", "-c", `printf '%s\n' "$1" > /proc/1/fd/` + fd, "sh", line},
		AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	var out strings.Builder
	_, _ = stdcopy.StdCopy(&out, &out, att.Reader)
	if insp, err := cli.ContainerExecInspect(ctx, ex.ID); err != nil || insp.ExitCode != 0 {
		t.Fatalf("print in container: exit %d, %v, %q", insp.ExitCode, err, out.String())
	}
}

// The Logs tab shows what the container printed, stdout and stderr apart
// and as text (never markup), filters, pauses, and shows a stop and a start
// in the event feed as they happen, with the output continuing after.
func TestBrowserLogs(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", pw)
	name := testutil.UniqueName("logs")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		t.Fatalf("create: %d", r.Status)
	}
	w, err := s.App.Store.GetWorkspaceByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	printInContainer(t, cli, w.ContainerID, "1", "browser-hello-out")
	printInContainer(t, cli, w.ContainerID, "2", "browser-hello-err")
	printInContainer(t, cli, w.ContainerID, "1", "<img src=x data-injected>")

	b := testutil.NewBrowser(t)
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }
	output := sel("log-output")
	b.Do(t, "sign in", 20*time.Second,
		chromedp.Navigate(s.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(sel("field-username")), "admin"),
		chromedp.SendKeys(chromedp.CSS(sel("field-password")), pw),
		testutil.Click(sel("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-list"))),
	)
	b.Do(t, "open the Logs tab", 30*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		testutil.Click(sel("tab-logs")),
		chromedp.WaitVisible(chromedp.CSS(output)),
		chromedp.WaitVisible(chromedp.CSS(sel("logs-status")+`[data-state="live"]`)),
	)
	waitJS := func(what, expr string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !testutil.Eval[bool](t, b, expr) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s never held; output: %q, status: %q", what, expr,
					testutil.Eval[string](t, b, `document.querySelector('`+output+`').innerText`),
					testutil.Eval[string](t, b, `document.querySelector('`+sel("logs-status")+`').innerText`))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	lineWith := func(text, stream string) string {
		return `Array.from(document.querySelectorAll('` + output + ` [data-line]')).some(function (el) {
			return el.dataset.stream === '` + stream + `' && el.textContent.indexOf(` + jsString(text) + `) >= 0 && !el.hidden; })`
	}
	waitJS("the printed lines", lineWith("browser-hello-out", "stdout")+" && "+lineWith("browser-hello-err", "stderr"), 15*time.Second)
	waitJS("markup shown as text", lineWith("<img src=x data-injected>", "stdout"), 5*time.Second)
	if testutil.Eval[bool](t, b, `!!document.querySelector('[data-injected]')`) {
		t.Fatal("a log line was rendered as markup")
	}
	// stderr looks different from stdout.
	if testutil.Eval[bool](t, b, `(function(){
		var o = document.querySelector('`+output+` [data-stream="stdout"]'), e = document.querySelector('`+output+` [data-stream="stderr"]');
		return getComputedStyle(o).color === getComputedStyle(e).color; })()`) {
		t.Error("stderr lines look like stdout lines")
	}
	// The start of the workspace is in the feed already.
	b.Do(t, "the feed has the start", 10*time.Second, chromedp.WaitVisible(chromedp.CSS(sel("events-feed")+` [data-kind="start"]`)))

	// The filter hides other lines at once.
	b.Do(t, "filter", 10*time.Second, chromedp.SendKeys(chromedp.CSS(sel("logs-filter")), "HELLO-ERR"))
	waitJS("filtered", "!("+lineWith("browser-hello-out", "stdout")+") && "+lineWith("browser-hello-err", "stderr"), 5*time.Second)
	b.Do(t, "clear the filter", 10*time.Second,
		chromedp.Evaluate[chromedp.Void](`(function(){var f=document.querySelector('`+sel("logs-filter")+`');f.value='';f.dispatchEvent(new Event('input'));})()`))
	waitJS("unfiltered", lineWith("browser-hello-out", "stdout"), 5*time.Second)

	// Paused, new lines wait; resumed, they appear.
	b.Do(t, "pause", 10*time.Second, testutil.Click(sel("logs-pause")),
		chromedp.WaitVisible(chromedp.CSS(sel("logs-status")+`[data-state="paused"]`)))
	printInContainer(t, cli, w.ContainerID, "1", "while-paused")
	waitJS("held while paused", `document.querySelector('`+sel("logs-status")+`').innerText.indexOf('1 new line') >= 0`, 10*time.Second)
	if testutil.Eval[bool](t, b, lineWith("while-paused", "stdout")) {
		t.Error("a line appeared while paused")
	}
	b.Do(t, "resume", 10*time.Second, testutil.Click(sel("logs-pause")))
	waitJS("shown after resuming", lineWith("while-paused", "stdout"), 5*time.Second)

	// Stop and start from the status card: the feed shows both live, and
	// the output goes on after the start.
	b.Do(t, "stop", 30*time.Second,
		testutil.Click(sel("workspace-status")+` [data-testid="action-stop"]`),
		chromedp.WaitVisible(chromedp.CSS(sel("events-feed")+` [data-kind="die"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel("logs-status")+`[data-state="ended"]`)),
		// And the status card offers Start, as the other browser tests
		// wait for, before it is clicked: the feed's die event can come
		// before the app has recorded the stop.
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status")+` [data-testid="action-start"]`)),
	)
	starts := `document.querySelectorAll('` + sel("events-feed") + ` [data-kind="start"]').length`
	before := testutil.Eval[float64](t, b, starts)
	b.Do(t, "start", 30*time.Second,
		testutil.Click(sel("workspace-status")+` [data-testid="action-start"]`),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status")+` [data-status="running"]`)),
	)
	waitJS("a new start in the feed", starts+" > "+ftoa(before), 15*time.Second)
	if first := testutil.Eval[string](t, b, `document.querySelector('`+sel("events-feed")+` [data-kind]').dataset.kind`); first != "start" {
		t.Errorf("newest event is %q, want start", first)
	}
	waitJS("live again", `document.querySelector('`+sel("logs-status")+`').dataset.state === 'live'`, 15*time.Second)
	printInContainer(t, cli, w.ContainerID, "1", "after-the-start")
	waitJS("output after the start", lineWith("after-the-start", "stdout"), 15*time.Second)

	b.Screenshot(t, "logs")
	// Clear empties the view.
	b.Do(t, "clear", 10*time.Second, testutil.Click(sel("logs-clear")))
	if n := testutil.Eval[float64](t, b, `document.querySelectorAll('`+output+` [data-line]').length`); n != 0 {
		t.Errorf("%v lines after clearing", n)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the logs page logged errors (CSP violations, exceptions): %v", errs)
	}
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
