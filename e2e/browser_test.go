// Package e2e drives the real application in headless Chromium.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/client"

	"aicode/services/store"
	"aicode/testutil"
)

const pw = "browser-secret-42"

// First run, sign-in, creating a workspace, watching it run, stopping it,
// and seeing a change made outside the app arrive live.
func TestBrowserFirstRunToStoppedWorkspace(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	b := testutil.NewBrowser(t)
	name := testutil.UniqueName("web")
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }
	row := `tr[data-name="` + name + `"]`

	// A fresh installation sends everyone to the setup form.
	b.Do(t, "open the app", 20*time.Second,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(sel("setup-form"))),
	)
	if url := testutil.Eval[string](t, b, "location.href"); !strings.HasSuffix(url, "/setup") {
		t.Fatalf("fresh app did not redirect to setup: %s", url)
	}
	b.Do(t, "complete setup", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS(sel("field-username")), "admin"),
		chromedp.SendKeys(chromedp.CSS(sel("field-password")), pw),
		chromedp.SendKeys(chromedp.CSS(sel("field-password2")), pw),
		testutil.Click(sel("setup-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("empty-state"))),
		chromedp.WaitVisible(chromedp.CSS(sel("toast"))),
	)

	// Sign out, then in again.
	b.Do(t, "sign out", 10*time.Second,
		testutil.Click(sel("logout")),
		chromedp.WaitVisible(chromedp.CSS(sel("login-form"))),
	)
	b.Do(t, "sign in", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS(sel("field-username")), "admin"),
		chromedp.SendKeys(chromedp.CSS(sel("field-password")), pw),
		testutil.Click(sel("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("create-form"))),
	)

	// Create: the inline form, then the row appears and reads running.
	b.Do(t, "create a workspace", 60*time.Second,
		testutil.Click(sel("create-form")+" summary"),
		chromedp.WaitVisible(chromedp.CSS(sel("field-name"))),
		chromedp.SendKeys(chromedp.CSS(sel("field-name")), name),
		testutil.Click(sel("create-submit")),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-status="running"]`)),
	)

	// Stop from the list without a page load.
	before := testutil.Eval[float64](t, b, "performance.timeOrigin")
	b.Do(t, "stop it", 30*time.Second,
		testutil.Click(row+` [data-testid="action-stop"]`),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-status="stopped"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-testid="action-start"]`)),
	)
	if after := testutil.Eval[float64](t, b, "performance.timeOrigin"); before != after {
		t.Errorf("stopping reloaded the page")
	}

	// Start it from the detail page, then kill the container behind the
	// app's back: the badge changes live, without a reload.
	b.Do(t, "start from the detail page", 30*time.Second,
		testutil.Click(row+` a[href^="/workspaces/"]`),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status"))),
		testutil.Click(sel("workspace-status")+` [data-testid="action-start"]`),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status")+` [data-status="running"]`)),
	)
	w, err := s.App.Store.GetWorkspaceByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.ContainerKill(context.Background(), w.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	b.Do(t, "see the outside kill arrive live", 10*time.Second,
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status")+` [data-status="stopped"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel("status-detail"))),
	)

	// Dark mode toggles and is remembered.
	isDark := "document.documentElement.classList.contains('dark')"
	wasDark := testutil.Eval[bool](t, b, isDark)
	b.Do(t, "toggle dark mode", 10*time.Second, testutil.Click(`[data-theme-toggle]`))
	dark := testutil.Eval[bool](t, b, isDark)
	if dark == wasDark {
		t.Errorf("dark mode toggle did nothing")
	}
	b.Do(t, "reload keeps the theme", 10*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status"))),
	)
	if again := testutil.Eval[bool](t, b, isDark); again != dark {
		t.Errorf("theme not remembered across reload: %v then %v", dark, again)
	}

	b.Screenshot(t, "detail")
	b.Do(t, "back to the list", 10*time.Second, chromedp.Navigate(s.URL+"/workspaces"), chromedp.WaitVisible(chromedp.CSS(row)))
	b.Screenshot(t, "workspaces")

	// On a phone the pages fit the screen (no sideways scrolling) and the
	// row's actions stay reachable.
	fits := "document.documentElement.scrollWidth <= window.innerWidth + 1"
	b.Do(t, "phone-sized list", 15*time.Second,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(s.URL+"/workspaces"),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-testid="action-start"]`)),
	)
	if !testutil.Eval[bool](t, b, fits) {
		t.Errorf("the list overflows a phone screen: %v px wide", testutil.Eval[float64](t, b, "document.documentElement.scrollWidth"))
	}
	b.Screenshot(t, "phone-list")
	// The styles really arrived: the badge's status dot is coloured (its
	// class is built in Go, so only a safelist keeps it in the CSS).
	dot := testutil.Eval[string](t, b, `getComputedStyle(document.querySelector('`+row+` [data-testid="status-badge"]'), '::before').backgroundColor`)
	if dot == "" || dot == "rgba(0, 0, 0, 0)" {
		t.Errorf("status dot has no colour (%q): the status classes are missing from the CSS", dot)
	}
	b.Do(t, "phone-sized detail", 15*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		chromedp.WaitVisible(chromedp.CSS(sel("workspace-status")+` [data-testid="action-start"]`)),
	)
	if !testutil.Eval[bool](t, b, fits) {
		t.Errorf("the detail page overflows a phone screen")
	}

	// Delete from the list: the dialog asks, insists on the name before
	// deleting files, and the row goes away.
	b.Do(t, "open the delete dialog", 15*time.Second,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(s.URL+"/workspaces"),
		testutil.Click(row+` [data-testid="action-delete"]`),
		chromedp.WaitVisible(chromedp.CSS(sel("delete-dialog"))),
		testutil.Click(sel("files-delete")),
		chromedp.SendKeys(chromedp.CSS(sel("delete-dialog")+` `+sel("field-confirm_name")), "not-the-name"),
		testutil.Click(sel("delete-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("delete-dialog")+` `+sel("alert-error"))),
	)
	b.Screenshot(t, "delete-dialog")
	if !testutil.Eval[bool](t, b, `document.querySelector('[data-testid="files-delete"]').checked`) {
		t.Error("the dialog forgot the choice to delete files after the error")
	}
	b.Do(t, "confirm the delete", 30*time.Second,
		chromedp.SetValue(chromedp.CSS(sel("delete-dialog")+` `+sel("field-confirm_name")), name),
		testutil.Click(sel("delete-submit")),
		chromedp.WaitVisible(chromedp.CSS(sel("empty-state"))),
		chromedp.WaitVisible(chromedp.CSS(sel("toast"))),
	)
	if _, err := s.App.Store.GetWorkspace(context.Background(), w.ID); err == nil {
		t.Error("workspace still stored after delete")
	}

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the pages logged errors (CSP violations, exceptions): %v", errs)
	}
}

// A shell in the browser: type into xterm.js, read the answer from the
// page, reload, and the screen comes back from the server's scrollback.
func TestBrowserTerminal(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", pw)
	name := testutil.UniqueName("shell")
	r := admin.Post("/workspaces", url.Values{"name": {name}}, true)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d", r.Status)
	}
	// Running before the page loads: a status change arriving while the
	// test clicks re-renders parts of the page under it.
	var w store.Workspace
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		w, err = s.App.Store.GetWorkspaceByName(context.Background(), name)
		if err == nil && w.Status == store.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace not running: %+v %v", w, err)
		}
		time.Sleep(50 * time.Millisecond)
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
	screenText := `(function(){var t=window.aicodeTerminal;if(!t)return '';var b=t.buffer.active,out=[];for(var i=0;i<b.length;i++){var l=b.getLine(i);if(l)out.push(l.translateToString(true));}return out.join('\n');})()`
	waitScreen := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(testutil.Eval[string](t, b, screenText), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q never appeared; screen:\n%s", what, want, testutil.Eval[string](t, b, screenText))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.Do(t, "open a terminal from the tab", 30*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		testutil.Click(sel("tab-terminal")),
		chromedp.WaitVisible(chromedp.CSS(sel("terminal-new"))),
		testutil.Click(sel("terminal-new")),
		chromedp.WaitVisible(chromedp.CSS(sel("terminal-chip"))),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="terminal-status"][data-state="live"]`)),
		testutil.Click(sel("terminal-screen")),
		testutil.TypeLine("echo browser-$((6*7))"),
	)
	waitScreen("typed command", "browser-42")
	b.Screenshot(t, "terminal")
	b.Do(t, "reload", 20*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="terminal-status"][data-state="live"]`)),
	)
	waitScreen("after reload", "browser-42")

	// The shell's size follows the browser's (fit addon → exec resize).
	cols, rows := testutil.Eval[float64](t, b, "window.aicodeTerminal.cols"), testutil.Eval[float64](t, b, "window.aicodeTerminal.rows")
	b.Do(t, "ask the shell its size", 10*time.Second, testutil.TypeLine("stty size"))
	waitScreen("stty size", fmt.Sprintf("%d %d", int(rows), int(cols)))
	b.Do(t, "shrink the window", 10*time.Second, chromedp.EmulateViewport(900, 700))
	time.Sleep(500 * time.Millisecond)
	cols2, rows2 := testutil.Eval[float64](t, b, "window.aicodeTerminal.cols"), testutil.Eval[float64](t, b, "window.aicodeTerminal.rows")
	if cols2 == cols && rows2 == rows {
		t.Errorf("the terminal did not follow the window: still %vx%v", cols, rows)
	}
	b.Do(t, "ask again", 10*time.Second, testutil.TypeLine("stty size"))
	waitScreen("stty size after resize", fmt.Sprintf("%d %d", int(rows2), int(cols2)))

	// The full-page view attaches to the same shell.
	tid := testutil.Eval[string](t, b, `document.querySelector('[data-testid="terminal-chip"]').dataset.terminalId`)
	b.Do(t, "full page", 20*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID+"/terminals/"+tid),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="terminal-status"][data-state="live"]`)),
	)
	waitScreen("full page", "browser-42")
	// xterm.js laid itself out: its injected styles were admitted by the
	// page's nonce (a blocked style would leave the rows unsized).
	if h := testutil.Eval[float64](t, b, `document.querySelector('.xterm-screen').getBoundingClientRect().height`); h < 100 {
		t.Errorf("terminal screen is %v px tall", h)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the terminal pages logged errors (CSP violations, exceptions): %v", errs)
	}
}
