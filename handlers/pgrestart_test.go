package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/fakeanthropic"
)

// PostgreSQL restarted under a running app: requests fail while it is
// down (with a page, not a crash), and once it is back the app reconnects
// by itself: pages, /readyz and the task queue (River) all work again
// without restarting the app.
func TestPostgresRestartReconnects(t *testing.T) {
	pg := testutil.StartPostgres(t)
	fake := fakeanthropic.New(t)
	e := newTaskEnv(t, fake, map[string]string{"image": testutil.BusyboxImage(t), "DATABASE_URL": pg.URL})
	script := `#!/bin/sh
echo '{"type":"system","subtype":"init","session_id":"s-1","model":"m-1","tools":[],"permissionMode":"acceptEdits","cwd":"/workspace"}'
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0.25,"duration_ms":10,"usage":{"input_tokens":1,"output_tokens":1},"session_id":"s-1"}'
`
	res, err := e.s.App.Engine.Capture(context.Background(), e.ws.ContainerID, engine.ExecSpec{
		Cmd: []string{"sh", "-c", "cat > /bin/claude && chmod 755 /bin/claude"}, User: "0:0",
	}, strings.NewReader(script), 4096)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("install the stand-in: %v %d %s", err, res.ExitCode, res.Stderr)
	}
	if tk := e.waitFinal(t, e.queue(t, "before", nil), time.Minute); tk.Status != store.TaskSucceeded {
		t.Fatalf("task before the restart: %s %q", tk.Status, tk.Detail)
	}

	pg.Stop(t)
	if r := e.admin.Get("/workspaces"); r.Status < 500 {
		t.Fatalf("workspace list with the database down: %d", r.Status)
	}
	if r := e.admin.Get("/readyz"); r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, `"store":{"error"`) {
		t.Fatalf("readyz with the database down: %d %s", r.Status, r.Body)
	}
	if r := e.admin.Get("/healthz"); r.Status != http.StatusOK {
		t.Fatalf("healthz with the database down: %d", r.Status)
	}
	time.Sleep(2 * time.Second) // let pools and River notice
	pg.Start(t)

	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.admin.Get("/workspaces")
		if r.Status == http.StatusOK && strings.Contains(r.Body, e.ws.Name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not reconnect: %d", r.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if r := e.admin.Get("/readyz"); r.Status != http.StatusOK {
		t.Fatalf("readyz after the restart: %d %s", r.Status, r.Body)
	}
	// The queue picks up new work: River reconnected too.
	if tk := e.waitFinal(t, e.queue(t, "after", nil), 2*time.Minute); tk.Status != store.TaskSucceeded {
		t.Fatalf("task after the restart: %s %q", tk.Status, tk.Detail)
	}
}
