package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/services/store"
	"aicode/testutil"
)

// sseMsg is one server-sent event as a browser's EventSource sees it.
type sseMsg struct {
	Name, Data string
}

// openSSE connects to an event stream with c's cookies and delivers its
// events on a channel until the returned stop is called or the stream ends.
func openSSE(t *testing.T, c *testutil.Client, path string) (<-chan sseMsg, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	hc := &http.Client{Jar: c.HTTP.Jar}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("GET %s: stream headers %v", path, resp.Header)
	}
	ch := make(chan sseMsg, 256)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var m sseMsg
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.Name != "" || len(data) > 0 {
					m.Data = strings.Join(data, "\n")
					select {
					case ch <- m:
					case <-ctx.Done():
						return
					}
				}
				m, data = sseMsg{}, nil
			case strings.HasPrefix(line, "event: "):
				m.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	stop := func() { cancel() }
	t.Cleanup(stop)
	return ch, stop
}

// waitEvent reads events until match accepts one.
func waitEvent(t *testing.T, ch <-chan sseMsg, within time.Duration, what string, match func(sseMsg) bool) sseMsg {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, within)
		}
	}
}

type chartPoint struct {
	T    int64   `json:"t"`
	CPU  float64 `json:"cpu"`
	Mem  uint64  `json:"mem"`
	Lim  uint64  `json:"lim"`
	Pids uint64  `json:"pids"`
}

func TestMonitorStreamFollowsTheContainer(t *testing.T) {
	// A whole CPU, so the burner's share is clearly above 50% of one.
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_STATS_GRACE": "1s", "AICODE_WORKSPACE_CPUS": "1"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("mon")}})
	w = waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)

	// Page: the tab, its charts and the stream it connects to.
	r := admin.Get("/workspaces/" + w.ID + "/monitor")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `data-chart="cpu"`) || !strings.Contains(r.Body, "/workspaces/"+w.ID+"/monitor/stream") || !strings.Contains(r.Body, "uPlot.iife.min.js") {
		t.Fatalf("monitor tab: %d\n%.2000s", r.Status, r.Body)
	}

	// A CPU burner in the container.
	ctx := context.Background()
	if out, code, err := s.App.Engine.Run(ctx, w.ContainerID, engine.ExecSpec{Cmd: []string{"sh", "-c", "(while :; do :; done) >/dev/null 2>&1 &"}}); err != nil || code != 0 {
		t.Fatalf("start burner: %d %v %s", code, err, out)
	}

	events, stop1 := openSSE(t, admin, "/workspaces/"+w.ID+"/monitor/stream")
	waitEvent(t, events, 10*time.Second, "history", func(m sseMsg) bool { return m.Name == "history" })
	waitEvent(t, events, 10*time.Second, "live state", func(m sseMsg) bool {
		return m.Name == "state" && strings.Contains(m.Data, `data-state="live"`)
	})
	var last chartPoint
	samples := 0
	waitEvent(t, events, 30*time.Second, "samples with CPU above 50%", func(m sseMsg) bool {
		if m.Name != "sample" {
			return false
		}
		if err := json.Unmarshal([]byte(m.Data), &last); err != nil {
			t.Fatalf("sample %q: %v", m.Data, err)
		}
		samples++
		return last.CPU > 50 && samples >= 3
	})
	if last.Mem == 0 || last.Lim == 0 || last.Pids < 2 || last.T == 0 {
		t.Fatalf("sample lacks figures: %+v", last)
	}
	waitEvent(t, events, 5*time.Second, "numbers", func(m sseMsg) bool {
		return m.Name == "numbers" && strings.Contains(m.Data, `data-testid="figure-cpu"`) && strings.Contains(m.Data, "%")
	})

	// A second viewer shares the engine stream and gets the history at once.
	events2, stop2 := openSSE(t, admin, "/workspaces/"+w.ID+"/monitor/stream")
	h := waitEvent(t, events2, 10*time.Second, "history", func(m sseMsg) bool { return m.Name == "history" })
	var hist []chartPoint
	if err := json.Unmarshal([]byte(h.Data), &hist); err != nil || len(hist) < 2 {
		t.Fatalf("history for a late viewer: %d points, %v", len(hist), err)
	}
	if n := s.App.Stats.Upstreams(); n != 1 {
		t.Fatalf("%d engine stats streams for one container, want 1", n)
	}

	// Stopping the workspace ends the figures and says so; the stream
	// stays open and resumes when it runs again.
	if r := admin.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status >= 400 {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	waitEvent(t, events, 30*time.Second, "stopped state", func(m sseMsg) bool {
		return m.Name == "state" && strings.Contains(m.Data, `data-state="stopped"`)
	})
	if r := admin.Post("/workspaces/"+w.ID+"/start", nil, true); r.Status >= 400 {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	waitEvent(t, events, 30*time.Second, "live again", func(m sseMsg) bool {
		return m.Name == "state" && strings.Contains(m.Data, `data-state="live"`)
	})
	waitEvent(t, events, 10*time.Second, "a sample after the restart", func(m sseMsg) bool { return m.Name == "sample" })

	// Nobody watching: the engine stream stops after the grace period.
	stop1()
	stop2()
	deadline := time.Now().Add(20 * time.Second)
	for s.App.Stats.Upstreams() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d engine stats streams still open with nobody watching", s.App.Stats.Upstreams())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMonitorHistoryServesStoredPoints(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Image: "aicode-test:unused", Env: map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	ctx := context.Background()
	st := s.App.Store
	u, err := st.GetUserByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	w := store.Workspace{Name: "hist", OwnerID: u.ID, ProjectPath: s.WorkspacesRoot() + "/hist", Image: "x", Desired: store.DesiredStopped, Status: store.StatusStopped}
	if err := st.CreateWorkspace(ctx, &w); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	pts := []store.StatsPoint{
		{WorkspaceID: w.ID, At: now.Add(-8 * 24 * time.Hour), CPUPercent: 1},
		{WorkspaceID: w.ID, At: now.Add(-3 * 24 * time.Hour), CPUPercent: 2},
		{WorkspaceID: w.ID, At: now.Add(-2 * time.Hour), CPUPercent: 3, MemUsed: 100, MemLimit: 1000, Pids: 4},
		{WorkspaceID: w.ID, At: now.Add(-time.Minute), CPUPercent: 4},
	}
	if err := st.SaveStatsPoints(ctx, pts); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Points []chartPoint `json:"points"`
	}
	get := func(rng string) []float64 {
		r := admin.Get("/workspaces/" + w.ID + "/monitor/history?range=" + rng)
		if r.Status != http.StatusOK {
			t.Fatalf("history %s: %d %s", rng, r.Status, r.Body)
		}
		body.Points = nil
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatal(err)
		}
		var cpus []float64
		for _, p := range body.Points {
			cpus = append(cpus, p.CPU)
		}
		return cpus
	}
	if got := get("24h"); len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("24h: %v", got)
	}
	if body.Points[0].Mem != 100 || body.Points[0].Lim != 1000 || body.Points[0].Pids != 4 {
		t.Fatalf("24h point: %+v", body.Points[0])
	}
	if got := get("7d"); len(got) != 3 || got[0] != 2 {
		t.Fatalf("7d: %v", got)
	}
	for _, bad := range []string{"", "1y", "24h%27"} {
		if r := admin.Get("/workspaces/" + w.ID + "/monitor/history?range=" + bad); r.Status != http.StatusBadRequest {
			t.Fatalf("range %q: %d", bad, r.Status)
		}
	}
}

func TestFleetShowsRunningWorkspaces(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_STATS_GRACE": "1s"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	running := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("fleet-a")}})
	stopped := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("fleet-b")}})
	running = waitStatus(t, s, running.ID, store.StatusRunning, 30*time.Second)
	waitStatus(t, s, stopped.ID, store.StatusRunning, 30*time.Second)
	if r := admin.Post("/workspaces/"+stopped.ID+"/stop", nil, true); r.Status >= 400 {
		t.Fatalf("stop: %d", r.Status)
	}
	waitStatus(t, s, stopped.ID, store.StatusStopped, 30*time.Second)

	// An OOM kill of the stopped one is counted and listed.
	if _, err := s.App.Store.AppendWorkspaceEvent(context.Background(), &store.WorkspaceEvent{
		WorkspaceID: stopped.ID, ContainerID: stopped.ContainerID, Kind: store.EventOOM, At: time.Now().Add(-time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	r := admin.Get("/fleet")
	if !strings.Contains(r.Body, `data-testid="fleet-oom-item"`) || !strings.Contains(r.Body, stopped.Name) {
		t.Errorf("fleet page does not list the OOM kill:\n%.4000s", r.Body)
	}
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `data-testid="host-cpus"`) ||
		!strings.Contains(r.Body, `data-workspace-id="`+running.ID+`"`) || strings.Contains(r.Body, `data-workspace-id="`+stopped.ID+`"`) {
		t.Fatalf("fleet page: %d\n%.3000s", r.Status, r.Body)
	}

	// Three admins watching hold one engine stream for the one container,
	// and their rows fill with figures.
	var stops []func()
	var first <-chan sseMsg
	for i := 0; i < 3; i++ {
		ch, stop := openSSE(t, admin, "/fleet/stream?sort=mem&desc=1")
		stops = append(stops, stop)
		if first == nil {
			first = ch
		}
	}
	waitEvent(t, first, 20*time.Second, "a row with figures", func(m sseMsg) bool {
		return m.Name == "rows" && strings.Contains(m.Data, `data-workspace-id="`+running.ID+`"`) && strings.Contains(m.Data, `data-testid="fleet-mempct"`)
	})
	if n := s.App.Stats.Upstreams(); n != 1 {
		t.Fatalf("%d engine stats streams, want 1", n)
	}
	for _, stop := range stops {
		stop()
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.App.Stats.Upstreams() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d engine stats streams left after the fleet viewers left", s.App.Stats.Upstreams())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestListStreamsUsageOfRunningWorkspaces(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_STATS_GRACE": "1s"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("member", adminPW, "member")
	member := testutil.Login(t, s.URL, "member", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("usage")}})
	waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)

	if r := admin.Get("/workspaces"); !strings.Contains(r.Body, `sse-swap="usage-`+w.ID+`"`) {
		t.Fatalf("list row has no usage cell:\n%.3000s", r.Body)
	}
	a1, _ := openSSE(t, admin, "/workspaces/events")
	a2, _ := openSSE(t, admin, "/workspaces/events")
	m1, _ := openSSE(t, member, "/workspaces/events")
	for _, ch := range []<-chan sseMsg{a1, a2} {
		waitEvent(t, ch, 20*time.Second, "usage of the running workspace", func(m sseMsg) bool {
			return m.Name == "usage-"+w.ID && strings.Contains(m.Data, `data-testid="usage-cpu"`) && strings.Contains(m.Data, "iB")
		})
	}
	if n := s.App.Stats.Upstreams(); n != 1 {
		t.Fatalf("%d engine streams for one container watched by two lists", n)
	}
	// A member does not see the admin's workspace, nor its figures.
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-m1:
			if strings.HasPrefix(m.Name, "usage-") {
				t.Fatalf("member got %s", m.Name)
			}
			continue
		case <-timeout:
		}
		break
	}
}
