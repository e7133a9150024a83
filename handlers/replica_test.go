package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"aicode/services/bus"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/testutil"
)

// deadDocker points a replica at an engine that is not there: whatever
// workspace news reaches it came from another replica through Redis, not
// from its own view of the engine.
const deadDocker = "unix:///nonexistent/docker.sock"

// on returns a client of another replica with c's session (the session
// lives in the shared database; the cookie jar ignores ports).
func on(t *testing.T, c *testutil.Client, s *testutil.Server) *testutil.Client {
	oc := testutil.NewClient(t, s.URL)
	oc.HTTP, oc.CSRF = c.HTTP, c.CSRF
	return oc
}

// Two replicas on one database and one Redis: what happens on one is seen
// live on the other, a terminal held by one is listed, watched, typed
// into, renamed and closed through the other, and sign-in failures count
// on both.
func TestReplicasShareEventsTerminalsAndLimits(t *testing.T) {
	rs := testutil.StartReplicas(t, testutil.RedisURL(t),
		testutil.Options{Env: map[string]string{"AICODE_LOGIN_RATE_LIMIT": "3"}},
		testutil.Options{Env: map[string]string{"AICODE_LOGIN_RATE_LIMIT": "3", "DOCKER_HOST": deadDocker}})
	a, b := rs[0], rs[1]
	admin := testutil.Setup(t, a.URL, "admin", adminPW)
	onB := on(t, admin, b)
	if r := admin.Post("/admin/users", url.Values{"username": {"bob"}, "password": {"bob-password-123"}, "role": {"member"}}, false); r.Status >= 400 {
		t.Fatalf("create bob: %d %.300s", r.Status, r.Body)
	}
	w := createWorkspace(t, a, admin, url.Values{"name": {testutil.UniqueName("repl")}})
	waitStatus(t, a, w.ID, store.StatusRunning, 60*time.Second)

	// Live events: B shows what A did.
	detailB := openLogSSE(t, onB, "/workspaces/"+w.ID+"/events")
	listB := openLogSSE(t, onB, "/workspaces/events")
	if detailB.Resp.StatusCode != http.StatusOK || listB.Resp.StatusCode != http.StatusOK {
		t.Fatalf("streams on B: %d %d", detailB.Resp.StatusCode, listB.Resp.StatusCode)
	}
	time.Sleep(200 * time.Millisecond) // subscribed
	if r := admin.Post("/workspaces/"+w.ID+"/shares", url.Values{"username": {"bob"}}, false); r.Status >= 400 {
		t.Fatalf("share: %d %.300s", r.Status, r.Body)
	}
	detailB.wait("status", nil, 5*time.Second)
	listB.wait("workspaces-changed", nil, 5*time.Second)

	// A terminal opened on A.
	tid := openTerminal(t, admin, w.ID, 90, 25)
	page := onB.Get("/workspaces/" + w.ID + "/terminal?t=" + tid)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `data-terminal-id="`+tid+`"`) {
		t.Fatalf("B's terminal tab does not list A's terminal: %d", page.Status)
	}
	if r := onB.Get("/workspaces/" + w.ID + "/terminals/" + tid); r.Status != http.StatusOK {
		t.Fatalf("B's full-window page of A's terminal: %d", r.Status)
	}
	// Attached through B (forwarded to A), and directly on A: one shell.
	viaB := dial(t, onB, b, w.ID, tid)
	if hello := viaB.WaitControl("hello", 10*time.Second); hello["id"] != tid || hello["canWrite"] != true {
		t.Fatalf("hello through B: %v", hello)
	}
	viaB.WaitControl("resync", 5*time.Second)
	viaB.Type("export WHERE=on-a; echo typed-$((40+2))\r")
	viaB.WaitOutput("typed-42", 10*time.Second)
	direct := dial(t, admin, a, w.ID, tid)
	direct.WaitControl("resync", 5*time.Second)
	direct.WaitOutput("typed-42", 5*time.Second)
	direct.Type("echo $WHERE-$((1+1))\r")
	direct.WaitOutput("on-a-2", 5*time.Second)
	viaB.WaitOutput("on-a-2", 5*time.Second)
	if got := a.App.Console.Manager().List(w.ID); len(got) != 1 || got[0].Viewers != 2 {
		t.Fatalf("A holds %+v; want one session with two viewers", got)
	}
	if n, _ := b.App.Console.Manager().Count(); n != 0 {
		t.Fatalf("B holds %d sessions of its own", n)
	}
	// A resize sent through B reaches the shell.
	if err := viaB.Send(map[string]any{"type": "resize", "cols": 120, "rows": 40}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	viaB.Type("stty size\r")
	viaB.WaitOutput("40 120", 5*time.Second)

	// B still checks the origin itself, and A checks the session.
	if _, err := testutil.DialTerminal(t, onB, termPath(w.ID, tid), "http://evil.example"); err == nil {
		t.Fatal("a cross-site handshake through B was accepted")
	}
	anon := testutil.NewClient(t, b.URL)
	if _, err := testutil.DialTerminal(t, anon, termPath(w.ID, tid), b.URL); err == nil {
		t.Fatal("a handshake without a session was accepted")
	}

	// Rename and close through B.
	onB.Get("/workspaces/" + w.ID + "/terminal?t=" + tid)
	if r := onB.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/rename", url.Values{"name": {"shared box"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("rename through B: %d %.300s", r.Status, r.Body)
	}
	if got := a.App.Console.Manager().List(w.ID); len(got) != 1 || got[0].Name != "shared box" {
		t.Fatalf("after rename through B, A holds %+v", got)
	}
	if page := onB.Get("/workspaces/" + w.ID + "/terminal"); !strings.Contains(page.Body, "shared box") {
		t.Fatal("B's list does not show the new name")
	}
	r := onB.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/close", nil, false)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/workspaces/"+w.ID+"/terminal" {
		t.Fatalf("close through B: %d %q", r.Status, r.Header.Get("Location"))
	}
	viaB.WaitControl("exit", 5*time.Second)
	viaB.WaitFor("closed", 5*time.Second, func(tm *testutil.Term) bool { return tm.Closed() })
	if page := onB.Get("/workspaces/" + w.ID + "/terminal"); strings.Contains(page.Body, `data-terminal-id="`+tid+`"`) {
		t.Fatal("B still lists the closed terminal")
	}
	// Gone everywhere: B answers itself, as for any ended terminal.
	gone := dial(t, onB, b, w.ID, tid)
	if m := gone.WaitControl("error", 5*time.Second); !strings.Contains(m["message"].(string), "ended") {
		t.Fatalf("reattaching an ended terminal through B: %v", m)
	}

	// An owner that cannot be reached (it died; its entries have not
	// expired yet): B answers itself rather than hang or fail oddly.
	tid2 := openTerminal(t, admin, w.ID, 80, 24)
	a.App.Replica.Presence.SetURL("http://127.0.0.1:1")
	if err := a.App.Replica.Presence.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := dial(t, onB, b, w.ID, tid2)
	if m := lost.WaitControl("error", 10*time.Second); m["fatal"] != true {
		t.Fatalf("attaching through B to an unreachable owner: %v", m)
	}
	onB.Get("/workspaces/" + w.ID + "/terminal")
	if r := onB.Post("/workspaces/"+w.ID+"/terminals/"+tid2+"/rename", url.Values{"name": {"x"}}, false); r.Status != http.StatusNotFound {
		t.Fatalf("renaming through B at an unreachable owner: %d; want 404", r.Status)
	}
	a.App.Replica.Presence.SetURL(a.URL)

	// A status change made on A reaches B's viewers.
	if r := admin.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status >= 400 {
		t.Fatalf("stop: %d %.300s", r.Status, r.Body)
	}
	detailB.wait("status", func(d string) bool { return strings.Contains(d, "stopped") || strings.Contains(d, "Stopped") }, 30*time.Second)

	// Sign-in failures count on every replica: 2 on A and 1 on B reach
	// the limit of 3, and then even the right password is refused on B.
	for i, s := range []*testutil.Server{a, a, b} {
		c := testutil.NewClient(t, s.URL)
		c.Get("/login")
		if r := c.Post("/login", url.Values{"username": {"bob"}, "password": {"wrong-password"}}, false); r.Status == http.StatusSeeOther || r.Status == http.StatusTooManyRequests {
			t.Fatalf("wrong password %d: %d", i+1, r.Status)
		}
	}
	c := testutil.NewClient(t, b.URL)
	c.Get("/login")
	if r := c.Post("/login", url.Values{"username": {"bob"}, "password": {"bob-password-123"}}, false); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures across replicas, sign-in on B: %d; want 429", r.Status)
	}
}

// Tasks queued on either replica run exactly once (River on PostgreSQL
// hands each job to one of them), both replicas' buses see each task's
// outcome, and the per-user task limit counts on both.
func TestReplicasRunTasksOnce(t *testing.T) {
	env := func(i int) map[string]string {
		return map[string]string{
			"ANTHROPIC_API_KEY":             testAPIKey,
			"AICODE_TASK_CANCEL_GRACE":      "3s",
			"AICODE_TASK_CREATE_PER_MINUTE": "3",
			// Distinct runner names (they derive from it; the test servers
			// listen elsewhere).
			"AICODE_LISTEN_ADDR": "127.0.0.1:1808" + string(rune('0'+i)),
		}
	}
	image := testutil.BusyboxImage(t)
	rs := testutil.StartReplicas(t, testutil.RedisURL(t), testutil.Options{Image: image, Env: env(0)}, testutil.Options{Image: image, Env: env(1)})
	a, b := rs[0], rs[1]
	admin := testutil.Setup(t, a.URL, "admin", adminPW)
	onB := on(t, admin, b)
	w := createWorkspace(t, a, admin, url.Values{"name": {testutil.UniqueName("repltask")}})
	w = waitStatus(t, a, w.ID, store.StatusRunning, 60*time.Second)
	e := &taskEnv{s: a, admin: admin, ws: w}
	// A stand-in CLI that records every run.
	script := `#!/bin/sh
for a in "$@"; do case "$a" in run-*) echo "$a" >> /tmp/runs.log;; esac; done
echo '{"type":"system","subtype":"init","session_id":"s-1","model":"m-1","tools":[],"permissionMode":"acceptEdits","cwd":"/workspace"}'
sleep 1
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0.01,"duration_ms":1000,"usage":{"input_tokens":1,"output_tokens":1},"session_id":"s-1"}'
`
	installStandIn(t, a, w.ContainerID, script)

	subs := []*bus.Subscription{a.App.Bus.Subscribe(tasks.TopicTasks, 1024), b.App.Bus.Subscribe(tasks.TopicTasks, 1024)}
	var ids []string
	for i, c := range []*testutil.Client{admin, onB, admin} {
		c.Get("/workspaces/" + w.ID + "/tasks")
		r := c.Post("/workspaces/"+w.ID+"/tasks", url.Values{"prompt": {"run-" + itoa(i)}}, false)
		m := taskURLRe.FindStringSubmatch(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || m == nil {
			t.Fatalf("queue task %d: %d %q %.300s", i, r.Status, r.Header.Get("Location"), r.Body)
		}
		ids = append(ids, m[1])
	}
	// The fourth within the minute is refused, on whichever replica.
	onB.Get("/workspaces/" + w.ID + "/tasks")
	if r := onB.Post("/workspaces/"+w.ID+"/tasks", url.Values{"prompt": {"run-3"}}, false); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth task in a minute (limit 3, across replicas): %d; want 429 with Retry-After", r.Status)
	}

	runners := map[string]bool{}
	for _, id := range ids {
		tk := e.waitFinal(t, id, 2*time.Minute)
		if tk.Status != store.TaskSucceeded || tk.Attempts != 1 {
			t.Fatalf("task %s: %s after %d attempts (%q)", id, tk.Status, tk.Attempts, tk.Detail)
		}
		runners[tk.Runner] = true
	}
	t.Logf("tasks ran on %d distinct replica(s)", len(runners))
	runs := e.sh(t, "cat /tmp/runs.log")
	for i := range ids {
		if n := strings.Count(runs, "run-"+itoa(i)+"\n"); n != 1 {
			t.Fatalf("task run-%d ran %d times:\n%s", i, n, runs)
		}
	}
	// Each replica's bus saw every task finish: the runner's locally, the
	// other's through Redis.
	for ri, sub := range subs {
		final := map[string]bool{}
		deadline := time.After(10 * time.Second)
		for len(final) < len(ids) {
			select {
			case m := <-sub.C():
				if u, ok := m.(tasks.Update); ok && u.Task != nil && u.Task.Status.Final() {
					final[u.Task.ID] = true
				}
			case <-deadline:
				t.Fatalf("replica %d's bus saw %d of %d tasks finish", ri, len(final), len(ids))
			}
		}
	}
}

func installStandIn(t *testing.T, s *testutil.Server, containerID, script string) {
	t.Helper()
	res, err := s.App.Engine.Capture(context.Background(), containerID, engine.ExecSpec{Cmd: []string{"sh", "-c", "cat > /bin/claude && chmod 755 /bin/claude"}, User: "0:0"}, strings.NewReader(script), 4096)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("install the stand-in: %v %d %s", err, res.ExitCode, res.Stderr)
	}
}

// Redis stops: every replica keeps serving pages, sign-in and its own live
// updates, /readyz says Redis is down, and news stops crossing. Redis
// comes back on the same address: news crosses again, with no restart.
func TestReplicasSurviveRedisOutage(t *testing.T) {
	srv := testutil.StartRedis(t)
	rs := testutil.StartReplicas(t, srv.URL,
		testutil.Options{},
		testutil.Options{Env: map[string]string{"DOCKER_HOST": deadDocker}})
	a, b := rs[0], rs[1]
	admin := testutil.Setup(t, a.URL, "admin", adminPW)
	onB := on(t, admin, b)
	if r := admin.Post("/admin/users", url.Values{"username": {"bob"}, "password": {"bob-password-123"}, "role": {"member"}}, false); r.Status >= 400 {
		t.Fatalf("create bob: %d", r.Status)
	}
	w := createWorkspace(t, a, admin, url.Values{"name": {testutil.UniqueName("outage")}})
	waitStatus(t, a, w.ID, store.StatusRunning, 60*time.Second)
	for _, s := range rs {
		if ok, _ := redisReady(t, s); !ok {
			t.Fatalf("%s: /readyz reports Redis down while it runs", s.URL)
		}
	}
	detailA := openLogSSE(t, admin, "/workspaces/"+w.ID+"/events")
	detailB := openLogSSE(t, onB, "/workspaces/"+w.ID+"/events")
	time.Sleep(200 * time.Millisecond)
	share := func(path string) {
		t.Helper()
		admin.Get("/workspaces/" + w.ID)
		if r := admin.Post(path, url.Values{"username": {"bob"}}, false); r.Status >= 400 {
			t.Fatalf("%s: %d %.300s", path, r.Status, r.Body)
		}
	}
	share("/workspaces/" + w.ID + "/shares")
	detailA.wait("status", nil, 5*time.Second)
	detailB.wait("status", nil, 5*time.Second)

	srv.Stop()
	for _, s := range rs {
		waitUntil(t, s.URL+" reports Redis down", 15*time.Second, func() bool {
			ok, status := redisReady(t, s)
			return !ok && status == http.StatusServiceUnavailable
		})
	}
	// Pages, sign-in (rate limits fall back to counting locally) and
	// local live updates go on.
	for _, s := range rs {
		if r := on(t, admin, s).Get("/workspaces"); r.Status != http.StatusOK {
			t.Fatalf("%s: workspace list with Redis down: %d", s.URL, r.Status)
		}
		testutil.Login(t, s.URL, "bob", "bob-password-123")
	}
	u, err := a.App.Store.GetUserByUsername(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	share("/workspaces/" + w.ID + "/shares/" + u.ID + "/delete")
	detailA.wait("status", nil, 5*time.Second)
	mark := detailB.mark()
	time.Sleep(1500 * time.Millisecond)
	if names := detailB.names(); len(names) > mark {
		t.Fatalf("B received %v while Redis was down", names[mark:])
	}

	srv.Start()
	for _, s := range rs {
		waitUntil(t, s.URL+" reports Redis back", 15*time.Second, func() bool { ok, _ := redisReady(t, s); return ok })
		waitUntil(t, s.URL+" resubscribes", 15*time.Second, func() bool { return s.App.Replica.Bridge.Stats().Connected })
	}
	share("/workspaces/" + w.ID + "/shares")
	detailA.wait("status", nil, 5*time.Second)
	detailB.wait("status", nil, 5*time.Second)
	if st := a.App.Replica.Bridge.Stats(); st.Reconnects != 1 {
		t.Fatalf("A's bridge stats %+v; want one reconnect", st)
	}
}

// redisReady reads /readyz's verdict on Redis and the response status.
func redisReady(t *testing.T, s *testutil.Server) (bool, int) {
	t.Helper()
	r := testutil.NewClient(t, s.URL).Get("/readyz")
	var body struct {
		Checks map[string]struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatalf("/readyz: %d %q", r.Status, r.Body)
	}
	chk, ok := body.Checks["redis"]
	if !ok {
		t.Fatalf("/readyz does not report Redis: %s", r.Body)
	}
	return chk.OK, r.Status
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
