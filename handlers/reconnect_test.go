package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"aicode/services/store"
	"aicode/testutil"
)

// When the engine's event stream breaks, the app says so, and once the
// engine is back it reconciles what changed while it could not see.
func TestEventStreamBreakThenReconcile(t *testing.T) {
	proxy := testutil.NewEngineProxy(t)
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"DOCKER_HOST": proxy.Host}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	cli := rawDocker(t) // straight to the engine, not through the proxy
	ctx := context.Background()
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("flaky")}})

	proxy.Break()
	// The banner appears once the app has noticed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		page := admin.Get("/workspaces")
		if page.Status == http.StatusOK && strings.Contains(page.Body, `data-testid="engine-banner"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no engine banner after the connection to the engine broke")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Meanwhile someone stops the container; the app cannot see it.
	if err := cli.ContainerStop(ctx, w.ContainerID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got, _ := s.App.Store.GetWorkspace(ctx, w.ID); got.Status != store.StatusRunning {
		t.Fatalf("status changed while the engine was unreachable: %s", got.Status)
	}

	proxy.Restore()
	// The watcher retries with backoff (at most 10 s) and reconciles.
	waitStatus(t, s, w.ID, store.StatusStopped, 15*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for strings.Contains(admin.Get("/workspaces").Body, `data-testid="engine-banner"`) {
		if time.Now().After(deadline) {
			t.Fatal("the engine banner stayed after the engine came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And live events flow again.
	if err := cli.ContainerStart(ctx, w.ContainerID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, w.ID, store.StatusRunning, 2*time.Second)
}
