package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"aicode/services/store"
	"aicode/testutil"
)

const adminPW = "correct-horse-battery"

// rawDocker is the SDK client tests use to look behind the app's back.
func rawDocker(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var rowIDRe = regexp.MustCompile(`id="ws-row-([a-z0-9]+)"`)

// createWorkspace submits the create form as htmx does and returns the id.
func createWorkspace(t *testing.T, s *testutil.Server, c *testutil.Client, vals url.Values) store.Workspace {
	t.Helper()
	r := c.Post("/workspaces", vals, true)
	if r.Status != http.StatusCreated {
		t.Fatalf("create %v: %d %s", vals, r.Status, r.Body)
	}
	w, err := s.App.Store.GetWorkspaceByName(context.Background(), vals.Get("name"))
	if err != nil {
		t.Fatalf("created workspace not stored: %v", err)
	}
	return w
}

// waitStatus polls the store until the workspace reaches want.
func waitStatus(t *testing.T, s *testutil.Server, id string, want store.Status, within time.Duration) store.Workspace {
	t.Helper()
	deadline := time.Now().Add(within)
	var w store.Workspace
	var err error
	for time.Now().Before(deadline) {
		w, err = s.App.Store.GetWorkspace(context.Background(), id)
		if err == nil && w.Status == want {
			return w
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("workspace %s: status %q (detail %q, err %v), want %q within %s", id, w.Status, w.StatusDetail, err, want, within)
	return w
}

func TestWorkspaceLifecycleOnRealEngine(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	cli := rawDocker(t)
	ctx := context.Background()

	name := testutil.UniqueName("life")
	w := createWorkspace(t, s, admin, url.Values{"name": {name}, "memory_mb": {"96"}, "cpus": {"0.25"}, "pids_limit": {"48"}})
	if w.Status != store.StatusRunning {
		t.Fatalf("after create: status %s (%s), want running", w.Status, w.StatusDetail)
	}
	if w.ProjectPath != filepath.Join(s.WorkspacesRoot(), name) {
		t.Fatalf("project path %s", w.ProjectPath)
	}

	// Limits and hardening, as the engine sees them.
	ins, err := cli.ContainerInspect(ctx, w.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	hc := ins.HostConfig
	checks := []struct {
		what string
		ok   bool
	}{
		{"running", ins.State.Running},
		{"memory 96 MiB", hc.Memory == 96<<20},
		{"no extra swap", hc.MemorySwap == 96<<20},
		{"0.25 CPU", hc.NanoCPUs == 250_000_000},
		{"pids 48", hc.PidsLimit != nil && *hc.PidsLimit == 48},
		{"cap drop ALL", len(hc.CapDrop) == 1 && strings.EqualFold(hc.CapDrop[0], "ALL")},
		{"no caps added", len(hc.CapAdd) == 0},
		{"no-new-privileges", contains(hc.SecurityOpt, "no-new-privileges:true") || contains(hc.SecurityOpt, "no-new-privileges")},
		{"not privileged", !hc.Privileged},
		{"network none", string(hc.NetworkMode) == "none"},
		{"restart unless-stopped", hc.RestartPolicy.Name == container.RestartPolicyUnlessStopped},
		{"non-root user", ins.Config.User != "" && !strings.HasPrefix(ins.Config.User, "0") && ins.Config.User != "root"},
		{"workdir /workspace", ins.Config.WorkingDir == "/workspace"},
		{"managed label", ins.Config.Labels["io.aicode.managed-by"] == "aicode"},
		{"workspace id label", ins.Config.Labels["io.aicode.workspace-id"] == w.ID},
		{"name", strings.HasPrefix(strings.TrimPrefix(ins.Name, "/"), "aicode-"+name+"-")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("container check failed: %s (host config %+v, user %q)", c.what, hc.Resources, ins.Config.User)
		}
	}
	var bind bool
	for _, m := range ins.Mounts {
		if m.Destination == "/workspace" && m.Source == w.ProjectPath && m.RW {
			bind = true
		}
		if strings.Contains(m.Source, "docker.sock") {
			t.Errorf("docker socket mounted into the workspace: %+v", m)
		}
	}
	if !bind {
		t.Errorf("project not bind-mounted read-write at /workspace: %+v", ins.Mounts)
	}

	// The workspace user can write its project, and the file lands on the host.
	execWrite(t, cli, w.ContainerID, "echo hello > /workspace/hello.txt && id -u")
	if b, err := os.ReadFile(filepath.Join(w.ProjectPath, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("file written in the container not on the host: %q %v", b, err)
	}

	// stop -> start -> restart, each observed by the app.
	act := func(action string, want store.Status) {
		t.Helper()
		r := admin.Post("/workspaces/"+w.ID+"/"+action, url.Values{"view": {"row"}}, true)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", action, r.Status, r.Body)
		}
		if !strings.Contains(r.Body, `data-status="`+string(want)+`"`) {
			t.Fatalf("%s: row does not show %s: %s", action, want, r.Body)
		}
		waitStatus(t, s, w.ID, want, 10*time.Second)
	}
	act("stop", store.StatusStopped)
	if ins, _ := cli.ContainerInspect(ctx, w.ContainerID); ins.State.Running {
		t.Fatal("container still running after stop")
	}
	act("start", store.StatusRunning)
	before, _ := cli.ContainerInspect(ctx, w.ContainerID)
	act("restart", store.StatusRunning)
	after, _ := cli.ContainerInspect(ctx, w.ContainerID)
	if after.State.StartedAt == before.State.StartedAt {
		t.Fatal("restart did not restart the container")
	}

	// Delete keeping files: container gone, row gone, files still there.
	r := admin.Post("/workspaces/"+w.ID+"/delete", url.Values{"files": {"keep"}}, true)
	if r.Status != http.StatusNoContent || r.Header.Get("HX-Redirect") != "/workspaces" {
		t.Fatalf("delete: %d %v %s", r.Status, r.Header, r.Body)
	}
	if _, err := cli.ContainerInspect(ctx, w.ContainerID); err == nil {
		t.Fatal("container still exists after delete")
	}
	if _, err := s.App.Store.GetWorkspace(ctx, w.ID); err == nil {
		t.Fatal("workspace row still exists after delete")
	}
	if _, err := os.Stat(filepath.Join(w.ProjectPath, "hello.txt")); err != nil {
		t.Fatalf("files were not kept: %v", err)
	}

	// A new workspace adopts the kept directory; deleting it with files
	// removes the directory.
	w2 := createWorkspace(t, s, admin, url.Values{"name": {name + "-again"}, "directory": {name}})
	if w2.ProjectPath != w.ProjectPath || w2.CreatedDir {
		t.Fatalf("existing directory not adopted: %+v", w2)
	}
	r = admin.Post("/workspaces/"+w2.ID+"/delete", url.Values{"files": {"delete"}, "confirm_name": {"wrong"}}, true)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("delete files without the right name: %d", r.Status)
	}
	r = admin.Post("/workspaces/"+w2.ID+"/delete", url.Values{"files": {"delete"}, "confirm_name": {w2.Name}}, true)
	if r.Status != http.StatusNoContent {
		t.Fatalf("delete with files: %d %s", r.Status, r.Body)
	}
	if _, err := os.Stat(w.ProjectPath); !os.IsNotExist(err) {
		t.Fatalf("project directory survived delete with files: %v", err)
	}

	// Every step is in the audit log.
	events, err := s.App.Store.ListAudit(ctx, store.AuditFilter{Action: "workspace.", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range events {
		if e.Result == "ok" {
			seen[e.Action]++
		}
	}
	for _, a := range []string{"workspace.create", "workspace.stop", "workspace.start", "workspace.restart", "workspace.delete"} {
		if seen[a] == 0 {
			t.Errorf("audit log lacks %s: %v", a, seen)
		}
	}
}

func execWrite(t *testing.T, cli *client.Client, id, script string) string {
	t.Helper()
	ctx := context.Background()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"/bin/sh", "-c", script}, AttachStdout: true, AttachStderr: true})
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
	insp, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil || insp.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d, %v, output %q", script, insp.ExitCode, err, out.String())
	}
	return out.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestExternalRemovalAndRestartReconcile(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	cli := rawDocker(t)
	ctx := context.Background()

	a := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("ext-a")}})
	b := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("ext-b")}})
	c := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("ext-c")}})

	// Killed and removed behind the app's back: seen within a second.
	if err := cli.ContainerKill(ctx, a.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, s, a.ID, store.StatusStopped, time.Second)
	if !strings.Contains(got.StatusDetail, "outside the app") {
		t.Errorf("kill detail: %q", got.StatusDetail)
	}
	if err := cli.ContainerRemove(ctx, b.ContainerID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, b.ID, store.StatusMissing, time.Second)

	// The detail page says so.
	page := admin.Get("/workspaces/" + b.ID)
	if !strings.Contains(page.Body, `data-status="missing"`) || !strings.Contains(page.Body, "removed outside the app") {
		t.Fatalf("detail page does not show the missing container")
	}

	// While the app is down, c is stopped and a is started again by hand.
	s.Stop(t)
	if err := cli.ContainerStop(ctx, c.ContainerID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, a.ContainerID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	s3 := s.Restart(t)
	waitStatus(t, s3, c.ID, store.StatusStopped, 5*time.Second)
	waitStatus(t, s3, a.ID, store.StatusRunning, 5*time.Second)
	waitStatus(t, s3, b.ID, store.StatusMissing, 5*time.Second)

	// Start re-creates the missing container from the saved settings.
	admin3 := testutil.Login(t, s3.URL, "admin", adminPW)
	r := admin3.Post("/workspaces/"+b.ID+"/start", url.Values{"view": {"detail"}}, true)
	if r.Status != http.StatusOK {
		t.Fatalf("start missing: %d %s", r.Status, r.Body)
	}
	nb := waitStatus(t, s3, b.ID, store.StatusRunning, 5*time.Second)
	if nb.ContainerID == b.ContainerID || nb.ContainerID == "" {
		t.Fatalf("container not re-created: %q", nb.ContainerID)
	}
}
