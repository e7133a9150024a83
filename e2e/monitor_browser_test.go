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

	"aicode/services/engine"
	"aicode/services/store"
	"aicode/testutil"
)

// TestBrowserMonitor: the Monitor tab's charts receive points over the
// stream, its figures fill in, the stored ranges load, and the fleet page
// lists the workspace for an admin.
func TestBrowserMonitor(t *testing.T) {
	// A whole CPU, so the burner's share is clearly above 50% of one.
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_WORKSPACE_CPUS": "1"}})
	admin := testutil.Setup(t, s.URL, "admin", pw)
	name := testutil.UniqueName("charts")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		t.Fatalf("create: %d", r.Status)
	}
	ctx := context.Background()
	var w store.Workspace
	deadline := time.Now().Add(30 * time.Second)
	for {
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
	if _, code, err := s.App.Engine.Run(ctx, w.ContainerID, engine.ExecSpec{Cmd: []string{"sh", "-c", "(while :; do :; done) >/dev/null 2>&1 &"}}); err != nil || code != 0 {
		t.Fatalf("start a CPU burner: %d %v", code, err)
	}
	// A stored point, so the 24 h range has something to draw.
	if err := s.App.Store.SaveStatsPoints(ctx, []store.StatsPoint{{WorkspaceID: w.ID, At: time.Now().Add(-time.Hour), CPUPercent: 12, MemUsed: 1 << 20, MemLimit: 1 << 30, Pids: 3}}); err != nil {
		t.Fatal(err)
	}

	b := testutil.NewBrowser(t)
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }
	b.Do(t, "sign in", 20*time.Second,
		chromedp.Navigate(s.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(sel("field-username")), "admin"),
		chromedp.SendKeys(chromedp.CSS(sel("field-password")), pw),
		testutil.Click(sel("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-list"))),
	)
	b.Do(t, "open the Monitor tab", 30*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		testutil.Click(sel("tab-monitor")),
		chromedp.WaitVisible(chromedp.CSS(sel("monitor"))),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="monitor-state"] [data-state="live"]`)),
	)
	points := func(chart string) int {
		return int(testutil.Eval[float64](t, b, `+document.querySelector('[data-testid="chart-`+chart+`"]').dataset.points`))
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				b.Screenshot(t, "monitor-"+strings.ReplaceAll(what, " ", "-"))
				t.Fatalf("%s never happened", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the CPU chart getting three points", 20*time.Second, func() bool { return points("cpu") >= 3 })
	if points("mem") < 3 || points("pids") < 3 {
		t.Errorf("other charts lag: mem %d, pids %d", points("mem"), points("pids"))
	}
	// uPlot drew a canvas of the card's width.
	if wd := testutil.Eval[float64](t, b, `document.querySelector('[data-testid="chart-cpu"] canvas').getBoundingClientRect().width`); wd < 150 {
		t.Errorf("CPU chart canvas is %v px wide", wd)
	}
	cpuText := func() string {
		return testutil.Eval[string](t, b, `document.querySelector('[data-testid="figure-cpu"] [data-value]').textContent.trim()`)
	}
	waitFor("the CPU figure showing a busy container", 20*time.Second, func() bool {
		v, err := strconv.ParseFloat(strings.TrimSuffix(cpuText(), "%"), 64)
		return err == nil && v > 50
	})
	b.Screenshot(t, "monitor-live")

	// The stored range replaces the live points, and back.
	b.Do(t, "24 hours", 10*time.Second, testutil.Click(sel("range-24h")))
	waitFor("the 24 h range loading its stored point", 10*time.Second, func() bool { return points("cpu") == 1 })
	b.Do(t, "live again", 10*time.Second, testutil.Click(sel("range-live")))
	waitFor("the live points back", 10*time.Second, func() bool { return points("cpu") >= 3 })

	// A reload fills the chart at once from the server's history.
	b.Do(t, "reload", 20*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="monitor-state"] [data-state="live"]`)),
	)
	waitFor("history on reload", 5*time.Second, func() bool { return points("cpu") >= 3 })

	b.Do(t, "fleet page", 20*time.Second,
		testutil.Click(`a[href="/fleet"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="fleet-row"][data-workspace-id="`+w.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="fleet-row"][data-workspace-id="`+w.ID+`"] [data-testid="fleet-mempct"]`)),
	)
	b.Screenshot(t, "fleet")
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages logged errors (CSP violations, exceptions): %v", errs)
	}
}
