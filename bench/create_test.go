package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"

	"aicode/services/store"
	"aicode/testutil"
)

const (
	createSamples = 20 // measured pairs (app, raw)
	createWarmup  = 2  // pairs run first and not counted
	// settle lets the engine and the app's watcher finish the asynchronous
	// work one measurement leaves behind (events, removal) before the next
	// one starts, so neither side is charged for the other's tail.
	settle = 200 * time.Millisecond
)

// keepAlive must equal the app's keep-alive command (keepAlive in
// services/workspace/workspace.go, unexported there). The benchmark checks
// it against the Cmd of a container the app created, so drift fails loudly.
var keepAlive = []string{"/bin/sh", "-c", `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`}

// BenchmarkCreateToRunning compares the app's create-to-running time (an
// admin submitting the create form as htmx does; the handler answers once
// the container runs) with the bare engine calls for an equivalent
// container, interleaved app, raw, app, raw... so machine noise hits both.
//
// Prints create_to_running_ratio (median app / median raw; target <= 1.2)
// and both medians.
func BenchmarkCreateToRunning(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	s := testutil.StartServer(b, testutil.Options{Env: serverEnv})
	admin := testutil.Setup(b, s.URL, adminUser, adminPW)
	cli := rawDocker(b)
	image := s.Opts.Image
	def := s.App.Config.Workspace
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)

	// Raw containers are tracked so a failure part-way leaves none behind.
	rawIDs := map[string]bool{}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for id := range rawIDs {
			_ = cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	})

	ev := watchEngineEvents(b, cli)
	var appMS, rawMS []float64
	// Each side's time split at the engine's create and start events:
	// [0] request start -> create event, [1] create -> start event,
	// [2] start event -> done.
	var appSplit, rawSplit [3][]float64
	splitOK := true
	split := func(dst *[3][]float64, id string, t0, t1 time.Time) {
		created, started, ok := ev.wait(id)
		if !ok {
			splitOK = false
			return
		}
		dst[0] = append(dst[0], ms(created.Sub(t0)))
		dst[1] = append(dst[1], ms(started.Sub(created)))
		dst[2] = append(dst[2], ms(t1.Sub(started)))
	}
	// The first app container is kept until the first raw one exists, to
	// compare their configurations (during warm-up, not measured).
	var firstApp *store.Workspace
	compared := false
	for i := -createWarmup; i < createSamples; i++ {
		// App side.
		name := fmt.Sprintf("bench-app-%s-%02d", suffix, i+createWarmup)
		time.Sleep(settle)
		start := time.Now()
		r := admin.Post("/workspaces", url.Values{"name": {name}}, true)
		end := time.Now()
		appDur := end.Sub(start)
		if r.Status != http.StatusCreated {
			b.Fatalf("create %s: %d %s", name, r.Status, r.Body)
		}
		if trig := r.Header.Get("HX-Trigger"); !strings.Contains(trig, "is running.") {
			b.Fatalf("create %s: response does not report running: HX-Trigger %q", name, trig)
		}
		w, err := s.App.Store.GetWorkspaceByName(context.Background(), name)
		if err != nil {
			b.Fatalf("created workspace %s not stored: %v", name, err)
		}
		if w.Status != store.StatusRunning {
			b.Fatalf("workspace %s: status %s (%s), want running", name, w.Status, w.StatusDetail)
		}
		mustRunning(b, cli, w.ContainerID)
		if i >= 0 {
			split(&appSplit, w.ContainerID, start, end)
		}
		if firstApp == nil {
			firstApp = &w
		} else {
			deleteWorkspace(b, admin, w)
		}

		// Raw side.
		time.Sleep(settle)
		rawStart, rawEnd, id := rawCreate(b, cli, rawIDs, image, def.User, fmt.Sprintf("bench-raw-%s-%02d", suffix, i+createWarmup),
			def.MemoryMB, def.CPUs, def.PidsLimit, def.Network)
		rawDur := rawEnd.Sub(rawStart)
		mustRunning(b, cli, id)
		if i >= 0 {
			split(&rawSplit, id, rawStart, rawEnd)
		}
		if !compared {
			compared = true
			sameConfig(b, cli, firstApp.ContainerID, id)
			deleteWorkspace(b, admin, *firstApp)
		}
		removeRaw(b, cli, rawIDs, id)

		if i >= 0 {
			appMS = append(appMS, ms(appDur))
			rawMS = append(rawMS, ms(rawDur))
		}
	}

	app, raw := median(appMS), median(rawMS)
	emit("create_to_running_ratio", app/raw, "ratio")
	emit("create_to_running_app_median_ms", app, "ms")
	emit("create_to_running_raw_median_ms", raw, "ms")
	emit("create_to_running_app_p90_ms", percentile(appMS, 90), "ms")
	emit("create_to_running_raw_p90_ms", percentile(rawMS, 90), "ms")
	if !splitOK {
		b.Logf("some engine create/start events did not arrive; no split printed")
		return
	}
	// Where the time goes, per side: before the engine reported the
	// container created (the app: validation, store writes, mkdir, image
	// check, then the create call), create to start (the start call), and
	// after the start (the app: audit, inspect, store update, render; raw:
	// the inspect).
	for _, sd := range []struct {
		side  string
		parts [3][]float64
	}{{"app", appSplit}, {"raw", rawSplit}} {
		emit("create_split_"+sd.side+"_until_create_event_median_ms", median(sd.parts[0]), "ms")
		emit("create_split_"+sd.side+"_create_to_start_event_median_ms", median(sd.parts[1]), "ms")
		emit("create_split_"+sd.side+"_after_start_event_median_ms", median(sd.parts[2]), "ms")
	}
}

// rawCreate creates and starts a container configured as the app
// configures a workspace container (services/engine CreateContainer with
// services/workspace spec), straight through the SDK, and returns how long
// when the timed engine calls began and ended. The timed section is ContainerCreate +
// ContainerStart + one ContainerInspect, because the app's create also
// inspects once (observe) after starting before it answers. The project
// directory is made (and handed to the workspace user) before the clock
// starts: only the engine calls are the baseline.
func rawCreate(b *testing.B, cli *client.Client, ids map[string]bool, image, user, name string, memMB int64, cpus float64, pids int64, network string) (start, end time.Time, id string) {
	b.Helper()
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if os.Geteuid() == 0 {
		var uid, gid int
		if _, err := fmt.Sscanf(user, "%d:%d", &uid, &gid); err == nil {
			if err := os.Chown(dir, uid, gid); err != nil {
				b.Fatal(err)
			}
		}
	}
	init := true
	pidsLimit := pids
	mem := memMB << 20
	cfg := &container.Config{
		Image:      image,
		Cmd:        keepAlive,
		User:       user,
		Hostname:   name,
		WorkingDir: "/workspace",
		Env:        []string{"AICODE_WORKSPACE=" + name},
		// The same number of labels as the app sets, but not the app's
		// keys: its watcher must not take these containers for its own.
		Labels: map[string]string{
			"io.aicode-bench.kind": "raw",
			"io.aicode-bench.name": name,
			"io.aicode-bench.run":  "create-to-running",
		},
	}
	hc := &container.HostConfig{
		Mounts:        []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/workspace"}},
		NetworkMode:   container.NetworkMode(network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		CapDrop:       []string{"ALL"},
		SecurityOpt:   []string{"no-new-privileges:true"},
		Init:          &init,
		Resources: container.Resources{
			Memory:     mem,
			MemorySwap: mem,
			NanoCPUs:   int64(math.Round(cpus * 1e9)),
			PidsLimit:  &pidsLimit,
		},
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	start = time.Now()
	resp, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		b.Fatalf("raw create %s: %v", name, err)
	}
	ids[resp.ID] = true
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		b.Fatalf("raw start %s: %v", name, err)
	}
	ins, err := cli.ContainerInspect(ctx, resp.ID)
	end = time.Now()
	if err != nil {
		b.Fatalf("raw inspect %s: %v", name, err)
	}
	if ins.State == nil || !ins.State.Running {
		b.Fatalf("raw container %s not running after start: %+v", name, ins.State)
	}
	return start, end, resp.ID
}

func removeRaw(b *testing.B, cli *client.Client, ids map[string]bool, id string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		b.Fatalf("remove raw container: %v", err)
	}
	delete(ids, id)
}

// deleteWorkspace deletes a workspace and its files as the delete dialog
// does.
func deleteWorkspace(b *testing.B, c *testutil.Client, w store.Workspace) {
	b.Helper()
	r := c.Post("/workspaces/"+w.ID+"/delete", url.Values{"files": {"delete"}, "confirm_name": {w.Name}}, true)
	if r.Status != http.StatusNoContent {
		b.Fatalf("delete %s: %d %s", w.Name, r.Status, r.Body)
	}
}

func mustRunning(b *testing.B, cli *client.Client, id string) {
	b.Helper()
	ins, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		b.Fatalf("inspect %s: %v", id, err)
	}
	if ins.State == nil || !ins.State.Running {
		b.Fatalf("container %s not running: %+v", id, ins.State)
	}
}

// sameConfig fails unless the raw container is configured like the app's
// in every respect that can affect create and start time.
func sameConfig(b *testing.B, cli *client.Client, appID, rawID string) {
	b.Helper()
	ctx := context.Background()
	a, err := cli.ContainerInspect(ctx, appID)
	if err != nil {
		b.Fatal(err)
	}
	r, err := cli.ContainerInspect(ctx, rawID)
	if err != nil {
		b.Fatal(err)
	}
	ah, rh := a.HostConfig, r.HostConfig
	checks := []struct {
		what     string
		app, raw any
	}{
		{"image", a.Config.Image, r.Config.Image},
		{"cmd", []string(a.Config.Cmd), []string(r.Config.Cmd)},
		{"user", a.Config.User, r.Config.User},
		{"workdir", a.Config.WorkingDir, r.Config.WorkingDir},
		{"env count", len(a.Config.Env), len(r.Config.Env)},
		{"label count", len(a.Config.Labels), len(r.Config.Labels)},
		{"network", ah.NetworkMode, rh.NetworkMode},
		{"memory", ah.Memory, rh.Memory},
		{"swap", ah.MemorySwap, rh.MemorySwap},
		{"cpus", ah.NanoCPUs, rh.NanoCPUs},
		{"pids", *ah.PidsLimit, *rh.PidsLimit},
		{"cap drop", []string(ah.CapDrop), []string(rh.CapDrop)},
		{"cap add", len(ah.CapAdd), len(rh.CapAdd)},
		{"security opt", ah.SecurityOpt, rh.SecurityOpt},
		{"init", *ah.Init, *rh.Init},
		{"restart", ah.RestartPolicy, rh.RestartPolicy},
		{"log config", ah.LogConfig, rh.LogConfig},
		{"mount count", len(a.Mounts), len(r.Mounts)},
		{"mount target", a.Mounts[0].Destination, r.Mounts[0].Destination},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.app, c.raw) {
			b.Fatalf("raw container differs from the app's in %s: app %v, raw %v", c.what, c.app, c.raw)
		}
	}
}
