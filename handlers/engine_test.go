package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/pgtest"
)

// With the engine unreachable the dashboard keeps serving, says so, and
// every action fails with a readable message instead of a stack trace.
func TestEngineUnreachableDashboardServes(t *testing.T) {
	s := noEngineServer(t, nil)
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	ctx := context.Background()
	w := &store.Workspace{Name: "stranded", OwnerID: mustUser(t, s, "admin").ID, ProjectPath: s.MkdirInRoot(t, "stranded"), Image: "x",
		Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredRunning, Status: store.StatusRunning, ContainerID: "abc"}
	if err := s.App.Store.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}

	page := admin.Get("/workspaces")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `data-testid="engine-banner"`) {
		t.Fatalf("list page without engine: %d, banner shown: %v", page.Status, strings.Contains(page.Body, "engine-banner"))
	}
	if !strings.Contains(page.Body, "nonexistent/docker.sock") {
		t.Error("banner does not say which engine endpoint failed")
	}
	if r := admin.Get("/workspaces/" + w.ID); r.Status != http.StatusOK {
		t.Errorf("detail page without engine: %d", r.Status)
	}

	for _, tc := range []struct {
		path string
		vals url.Values
	}{
		{"/workspaces", url.Values{"name": {"new-one"}}},
		{"/workspaces/" + w.ID + "/stop", nil},
		{"/workspaces/" + w.ID + "/start", nil},
		{"/workspaces/" + w.ID + "/delete", url.Values{"files": {"keep"}}},
	} {
		r := admin.Post(tc.path, tc.vals, true)
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("POST %s without engine: %d, want 503", tc.path, r.Status)
		}
		trig := r.Header.Get("HX-Trigger")
		if !strings.Contains(trig, "Docker engine unreachable") || strings.Contains(r.Body, "goroutine") || strings.Contains(r.Body, ".go:") {
			t.Errorf("POST %s: unclear error: %s / %s", tc.path, trig, r.Body)
		}
	}
	// Nothing was deleted by the failed delete.
	if _, err := s.App.Store.GetWorkspace(ctx, w.ID); err != nil {
		t.Errorf("failed delete removed the workspace: %v", err)
	}

	// Readiness names the broken dependency.
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready  bool
		Checks map[string]struct {
			OK    bool
			Error string
		}
	}
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || ready.Ready || !ready.Checks["store"].OK || ready.Checks["engine"].OK || ready.Checks["engine"].Error == "" {
		t.Errorf("readyz without engine: %d %+v", resp.StatusCode, ready)
	}
	if r, _ := hc.Get(s.URL + "/healthz"); r == nil || r.StatusCode != http.StatusOK {
		t.Error("healthz must stay up without the engine")
	}
}

func mustUser(t *testing.T, s *testutil.Server, name string) store.User {
	t.Helper()
	u, err := s.App.Store.GetUserByUsername(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Pinned to API 1.41 (Docker 20.10), the oldest the app supports, the whole
// lifecycle works; with negotiation the client settles on the engine's
// version.
func TestEngineAPI141(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"DOCKER_API_VERSION": "1.41"}})
	if v := s.App.Engine.APIVersion(); v != "1.41" {
		t.Fatalf("client speaks %s, want 1.41", v)
	}
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("api141")}})
	if w.Status != store.StatusRunning {
		t.Fatalf("status %s", w.Status)
	}
	for _, a := range []string{"stop", "start", "restart"} {
		if r := admin.Post("/workspaces/"+w.ID+"/"+a, nil, true); r.Status != http.StatusOK {
			t.Fatalf("%s on API 1.41: %d %s", a, r.Status, r.Header.Get("HX-Trigger"))
		}
	}
	if r := admin.Post("/workspaces/"+w.ID+"/delete", url.Values{"files": {"delete"}, "confirm_name": {w.Name}}, true); r.Status != http.StatusNoContent {
		t.Fatalf("delete on API 1.41: %d", r.Status)
	}

	neg := testutil.StartServer(t, testutil.Options{})
	if v := neg.App.Engine.APIVersion(); v == "" || v > "1.99" {
		t.Errorf("negotiated version %q", v)
	}
}

// The same app on PostgreSQL: create, stop, restart the app, delete.
func TestWorkspaceLifecycleOnPostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	s := testutil.StartServer(t, testutil.Options{DatabaseURL: dbURL})
	if s.App.Store.Dialect() != "postgres" {
		t.Fatalf("dialect %s", s.App.Store.Dialect())
	}
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("pg")}})
	if r := admin.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status != http.StatusOK {
		t.Fatalf("stop: %d", r.Status)
	}
	s2 := s.Restart(t)
	got := waitStatus(t, s2, w.ID, store.StatusStopped, 5*time.Second)
	if got.ContainerID != w.ContainerID {
		t.Errorf("container id lost across restart: %q vs %q", got.ContainerID, w.ContainerID)
	}
	admin2 := testutil.Login(t, s2.URL, "admin", adminPW)
	if r := admin2.Post("/workspaces/"+w.ID+"/delete", url.Values{"files": {"delete"}, "confirm_name": {w.Name}}, true); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
}

// The default workspace image (built offline by scripts/test-env.sh): the
// container runs as the non-root dev user with git and the Claude Code CLI.
func TestDefaultWorkspaceImage(t *testing.T) {
	image := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE")
	if image == "" {
		image = "aicode-workspace:latest"
	}
	eng := testutil.Engine(t)
	if ok, err := eng.ImageExists(context.Background(), image); err != nil || !ok {
		t.Fatalf("image %s missing (%v); build it with `sudo make workspace-image-offline` (scripts/test-env.sh does)", image, err)
	}
	s := testutil.StartServer(t, testutil.Options{Image: image})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("full")}})
	out := execWrite(t, rawDocker(t), w.ContainerID, "id -un; id -u; git --version; claude --version; touch /workspace/ok && echo writable")
	for _, want := range []string{"dev\n", "1000\n", "git version", "Claude Code", "writable"} {
		if !strings.Contains(out, want) {
			t.Errorf("workspace image output lacks %q:\n%s", want, out)
		}
	}
}
