package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"aicode/testutil"
)

// The Snapshots tab takes a snapshot with one click and shows it being
// taken, then ready with its size; the Files tab browses folders with
// breadcrumbs and offers upload and download.
func TestBrowserSnapshotsAndFiles(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", pw)
	name := testutil.UniqueName("snapui")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		t.Fatalf("create: %d", r.Status)
	}
	w, err := s.App.Store.GetWorkspaceByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.ProjectPath, "src/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"README.md", "src/main.go", "src/app/app.go"} {
		if err := os.WriteFile(filepath.Join(w.ProjectPath, f), []byte("content of "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
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
	b.Do(t, "open the snapshots tab", 20*time.Second,
		chromedp.Navigate(s.URL+"/workspaces/"+w.ID),
		testutil.Click(sel("tab-snapshots")),
		chromedp.WaitVisible(chromedp.CSS(sel("snapshots-tab"))),
		chromedp.WaitVisible(chromedp.CSS(sel("empty-state"))),
	)
	b.Screenshot(t, "snapshots-empty")
	b.Do(t, "take a snapshot", 60*time.Second,
		chromedp.SendKeys(chromedp.CSS(sel("field-label")), "first"),
		testutil.Click(sel("snapshot-take")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="snapshot-row"][data-status="ready"]`)),
	)
	size := testutil.Eval[string](t, b, `document.querySelector('[data-testid="snapshot-size"]').innerText`)
	if size == "" {
		t.Error("the ready snapshot shows no size")
	}
	b.Do(t, "open the actions", 10*time.Second,
		testutil.Click(sel("snapshot-actions")),
		chromedp.WaitVisible(chromedp.CSS(sel("restore-new"))),
	)
	b.Screenshot(t, "snapshots-ready")
	b.Do(t, "browse files", 20*time.Second,
		testutil.Click(sel("tab-files")),
		chromedp.WaitVisible(chromedp.CSS(sel("file-browser"))),
		testutil.Click(`[data-testid="file-row"][data-name="src"] a`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="file-row"][data-name="app"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel("upload-form"))),
	)
	crumbs := testutil.Eval[string](t, b, `document.querySelector('[data-testid="breadcrumbs"]').innerText`)
	if crumbs != "/workspace/src" && crumbs != "/workspace / src" {
		t.Logf("breadcrumbs read %q", crumbs)
	}
	b.Screenshot(t, "files-src")
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
