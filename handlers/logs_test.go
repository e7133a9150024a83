package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"aicode/services/store"
	"aicode/testutil"
)

// logSSEMsg is one server-sent event.
type logSSEMsg struct{ Name, Data string }

// logSSEStream reads a server-sent event stream in the background.
type logSSEStream struct {
	t    *testing.T
	Resp *http.Response
	mu   sync.Mutex
	got  []logSSEMsg
	next int
	more chan struct{}
	done bool
}

// openLogSSE opens an event stream with c's session; it asks for gzip, which
// the server must not apply to a stream.
func openLogSSE(t *testing.T, c *testutil.Client, path string) *logSSEStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.Base+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	st := &logSSEStream{t: t, Resp: resp, more: make(chan struct{}, 1)}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return st
	}
	go st.read()
	return st
}

func (st *logSSEStream) read() {
	sc := bufio.NewScanner(st.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var name string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if name != "" || len(data) > 0 {
				st.mu.Lock()
				st.got = append(st.got, logSSEMsg{Name: name, Data: strings.Join(data, "\n")})
				st.mu.Unlock()
				st.signal()
			}
			name, data = "", nil
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	st.signal()
}

func (st *logSSEStream) signal() {
	select {
	case st.more <- struct{}{}:
	default:
	}
}

// wait returns the next event named name for which ok holds, skipping
// others; it fails the test after within.
func (st *logSSEStream) wait(name string, ok func(data string) bool, within time.Duration) logSSEMsg {
	st.t.Helper()
	deadline := time.After(within)
	for {
		st.mu.Lock()
		for st.next < len(st.got) {
			m := st.got[st.next]
			st.next++
			if m.Name == name && (ok == nil || ok(m.Data)) {
				st.mu.Unlock()
				return m
			}
		}
		done := st.done
		st.mu.Unlock()
		if done {
			st.t.Fatalf("the stream ended while waiting for %q; it sent %v", name, st.names())
		}
		select {
		case <-st.more:
		case <-deadline:
			st.t.Fatalf("no %q event within %s; the stream sent %v", name, within, st.names())
		}
	}
}

// mark and rewind let a test wait for several events that may come in
// either order: each wait starts from the mark.
func (st *logSSEStream) mark() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.next
}

func (st *logSSEStream) rewind(i int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.next = i
}

func (st *logSSEStream) names() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for _, m := range st.got {
		out = append(out, m.Name)
	}
	return out
}

type logLineMsg struct {
	S    string `json:"s"`
	T    string `json:"t"`
	L    string `json:"l"`
	Skip int    `json:"skip"`
}

// lines collects log lines from log-lines events until have(all) holds.
func (st *logSSEStream) lines(have func(all []logLineMsg) bool, within time.Duration) []logLineMsg {
	st.t.Helper()
	var all []logLineMsg
	deadline := time.Now().Add(within)
	for !have(all) {
		left := time.Until(deadline)
		if left <= 0 {
			st.t.Fatalf("log lines never arrived; got %+v", all)
		}
		m := st.wait("log-lines", nil, left)
		var batch struct{ Lines []logLineMsg }
		if err := json.Unmarshal([]byte(m.Data), &batch); err != nil {
			st.t.Fatalf("log-lines data %q: %v", m.Data, err)
		}
		all = append(all, batch.Lines...)
	}
	return all
}

func hasLine(text, stream string) func([]logLineMsg) bool {
	return func(all []logLineMsg) bool {
		for _, l := range all {
			if l.L == text && (stream == "" || l.S == stream) {
				return true
			}
		}
		return false
	}
}

// toContainerLog has a process in the container write to the container's
// own output (the init's stdout and stderr), which is what its log holds.
func toContainerLog(t *testing.T, s *testutil.Server, id, stdout, stderr string) {
	t.Helper()
	script := ""
	if stdout != "" {
		script += "printf '%s\\n' '" + stdout + "' > /proc/1/fd/1; "
	}
	if stderr != "" {
		script += "printf '%s\\n' '" + stderr + "' > /proc/1/fd/2; "
	}
	execWrite(t, rawDocker(t), id, script)
}

func waitWorkspaceEvent(t *testing.T, s *testutil.Server, wsID, kind string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		list, err := s.App.Store.ListWorkspaceEvents(context.Background(), store.WorkspaceEventFilter{WorkspaceID: wsID, Kind: kind, Limit: 1})
		if err == nil && len(list) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event recorded for the workspace (err %v)", kind, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The Logs tab end to end over HTTP: the page, the container's output with
// stdout and stderr told apart, the filter, the bounds on the options, the
// events of a stop and a start, and output continuing after the start.
func TestLogsTabStreamsOutputAndEvents(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("logs")}})
	toContainerLog(t, s, w.ContainerID, "hello-stdout", "hello-stderr")
	toContainerLog(t, s, w.ContainerID, "<script>alert(1)</script>", "")
	waitWorkspaceEvent(t, s, w.ID, store.EventStart, 10*time.Second)

	page := admin.Get("/workspaces/" + w.ID + "/logs")
	if page.Status != http.StatusOK {
		t.Fatalf("logs tab: %d", page.Status)
	}
	for _, want := range []string{`data-testid="tab-logs"`, `aria-current="page"`, `data-testid="log-output"`, `data-testid="events-feed"`, `data-kind="start"`, `logs.js`} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("logs tab lacks %s", want)
		}
	}
	if detail := admin.Get("/workspaces/" + w.ID); !strings.Contains(detail.Body, `href="/workspaces/`+w.ID+`/logs"`) {
		t.Error("the detail page has no Logs tab link")
	}

	ev := openLogSSE(t, admin, "/workspaces/"+w.ID+"/logs/stream?tail=100")
	if ev.Resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", ev.Resp.StatusCode)
	}
	h := ev.Resp.Header
	if !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || h.Get("X-Accel-Buffering") != "no" || h.Get("Content-Encoding") != "" {
		t.Errorf("stream headers: %v", h)
	}
	ev.wait("events", func(d string) bool { return strings.Contains(d, `data-kind="start"`) }, 5*time.Second)
	ev.wait("log-open", func(d string) bool { return strings.Contains(d, `"running":true`) }, 10*time.Second)
	got := ev.lines(func(all []logLineMsg) bool {
		return hasLine("hello-stdout", "out")(all) && hasLine("hello-stderr", "err")(all) && hasLine("<script>alert(1)</script>", "out")(all)
	}, 15*time.Second)
	for _, l := range got {
		if l.T == "" {
			t.Errorf("line without a time: %+v", l)
		}
	}

	// The server-side filter (case-insensitive) sends only matching lines.
	filtered := openLogSSE(t, admin, "/workspaces/"+w.ID+"/logs/stream?tail=100&q=STDERR")
	for _, l := range filtered.lines(hasLine("hello-stderr", "err"), 15*time.Second) {
		if !strings.Contains(strings.ToLower(l.L), "stderr") {
			t.Errorf("the filter let %q through", l.L)
		}
	}
	filtered.Resp.Body.Close()

	// Options are validated: garbage is a 400, the bounds are accepted.
	for _, q := range []string{"tail=abc", "tail=-1", "tail=5001", "tail=1e3", "tail=%205", "follow=maybe", "timestamps=2", "since=yesterday", "q=" + strings.Repeat("x", 201)} {
		for _, path := range []string{"/logs/stream?", "/logs?"} {
			r := admin.Get("/workspaces/" + w.ID + path + q)
			if r.Status != http.StatusBadRequest {
				t.Errorf("GET %s%s: %d, want 400", path, q, r.Status)
			}
		}
	}
	if r := admin.Get("/workspaces/" + w.ID + "/logs/stream?tail=abc"); !strings.Contains(strings.ToLower(r.Body), "tail must be a whole number") {
		t.Errorf("bad tail explained as %q", r.Body)
	}
	edge := openLogSSE(t, admin, "/workspaces/"+w.ID+"/logs/stream?tail=5000&follow=0&timestamps=0&q=hello")
	if edge.Resp.StatusCode != http.StatusOK {
		t.Errorf("tail=5000: %d", edge.Resp.StatusCode)
	}
	// Without follow the stream says the output ended.
	edge.wait("log-end", nil, 15*time.Second)
	edge.Resp.Body.Close()

	// Stop: the output ends, and the feed shows the exit.
	if r := admin.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status != http.StatusOK {
		t.Fatalf("stop: %d", r.Status)
	}
	// The end of the output and the engine's die event race each other.
	stopped := ev.mark()
	ev.wait("log-end", func(d string) bool { return strings.Contains(d, "stopped") }, 20*time.Second)
	ev.rewind(stopped)
	ev.wait("event", func(d string) bool { return strings.Contains(d, `data-kind="die"`) }, 10*time.Second)

	// Start: the feed shows it and the output continues where it ended.
	if r := admin.Post("/workspaces/"+w.ID+"/start", nil, true); r.Status != http.StatusOK {
		t.Fatalf("start: %d", r.Status)
	}
	ev.wait("event", func(d string) bool { return strings.Contains(d, `data-kind="start"`) }, 10*time.Second)
	ev.wait("log-open", nil, 10*time.Second)
	toContainerLog(t, s, w.ContainerID, "after-restart", "")
	for _, l := range ev.lines(hasLine("after-restart", "out"), 15*time.Second) {
		if l.L == "hello-stdout" {
			t.Error("output before the stop was sent again after the start")
		}
	}
	ev.Resp.Body.Close()

	// A container removed behind the app's back: the stream says so.
	if err := rawDocker(t).ContainerRemove(context.Background(), w.ContainerID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	gone := openLogSSE(t, admin, "/workspaces/"+w.ID+"/logs/stream")
	gone.wait("log-error", func(d string) bool { return strings.Contains(d, "gone") }, 10*time.Second)
}

// Who may read logs: owners, admins, viewers and those a workspace is
// shared with; to anyone else the workspace does not exist.
func TestLogsAuthorization(t *testing.T) {
	s := noEngineServer(t, nil)
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("owner", adminPW, "member")
	admin.CreateUser("other", adminPW, "member")
	admin.CreateUser("friend", adminPW, "member")
	admin.CreateUser("watcher", adminPW, "viewer")
	ctx := context.Background()
	w := &store.Workspace{Name: "private", OwnerID: mustUser(t, s, "owner").ID, ProjectPath: s.MkdirInRoot(t, "private"), Image: "x",
		Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredRunning, Status: store.StatusRunning, ContainerID: "abc"}
	if err := s.App.Store.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.App.Store.SetShare(ctx, store.Share{WorkspaceID: w.ID, UserID: mustUser(t, s, "friend").ID}); err != nil {
		t.Fatal(err)
	}
	code := 137
	if _, err := s.App.Store.AppendWorkspaceEvent(ctx, &store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "abc", Kind: store.EventOOM, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.App.Store.AppendWorkspaceEvent(ctx, &store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "abc", Kind: store.EventDie, ExitCode: &code, At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		user string
		want int
	}{{"owner", 200}, {"admin", 200}, {"friend", 200}, {"watcher", 200}, {"other", 404}} {
		c := admin
		if tc.user != "admin" {
			c = testutil.Login(t, s.URL, tc.user, adminPW)
		}
		r := c.Get("/workspaces/" + w.ID + "/logs")
		if r.Status != tc.want {
			t.Errorf("%s: logs tab %d, want %d", tc.user, r.Status, tc.want)
		}
		st := openLogSSE(t, c, "/workspaces/"+w.ID+"/logs/stream")
		if st.Resp.StatusCode != tc.want {
			t.Errorf("%s: logs stream %d, want %d", tc.user, st.Resp.StatusCode, tc.want)
		}
		if tc.want == 200 {
			if !strings.Contains(r.Body, `data-testid="event-oom"`) || !strings.Contains(r.Body, "Exited with code 137") {
				t.Errorf("%s: the feed does not show the OOM kill and the exit", tc.user)
			}
			// With the engine away the stream says so in words.
			st.wait("log-error", func(d string) bool { return strings.Contains(d, "Docker engine") }, 10*time.Second)
		}
		st.Resp.Body.Close()
	}
	// Anonymous: the stream answers 401 rather than a sign-in page.
	anon := testutil.NewClient(t, s.URL)
	if st := openLogSSE(t, anon, "/workspaces/"+w.ID+"/logs/stream"); st.Resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous stream: %d", st.Resp.StatusCode)
	}
}
