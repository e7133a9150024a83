package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aicode/services/auth"
	"aicode/services/blob"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/services/workspace"
	"aicode/testutil"
	taskview "aicode/views/pages/tasks"
)

// Sizes of the task benchmarks.
const (
	ingestEvents  = 10_000
	ingestViewers = 10
	ingestRounds  = 3
)

// recordedTranscript is ingestEvents lines recorded from the real CLI
// (services/tasks/streamjson/testdata), put together as one long session
// would print them: one init, then the recordings' messages (assistant
// text and tool calls, tool results, retries) over and over, then a
// successful result.
func recordedTranscript(b *testing.B) []byte {
	b.Helper()
	files, err := filepath.Glob("../services/tasks/streamjson/testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		b.Fatalf("no recordings: %v", err)
	}
	sort.Strings(files)
	var init, result []byte
	var lines [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			switch {
			case len(bytes.TrimSpace(l)) == 0:
			case bytes.Contains(l, []byte(`"subtype":"init"`)):
				if init == nil {
					init = l
				}
			case bytes.Contains(l, []byte(`"type":"result"`)):
				if result == nil && bytes.Contains(l, []byte(`"is_error":false`)) {
					result = l
				}
			case bytes.HasPrefix(l, []byte(`{"type":"stream_event"`)):
				// Partial messages come only with a flag tasks do not set.
			default:
				lines = append(lines, l)
			}
		}
	}
	if init == nil || result == nil || len(lines) == 0 {
		b.Fatal("the recordings lack an init, a result or messages")
	}
	var out bytes.Buffer
	out.Write(init)
	out.WriteByte('\n')
	for i := 0; i < ingestEvents-2; i++ {
		out.Write(lines[i%len(lines)])
		out.WriteByte('\n')
	}
	out.Write(result)
	out.WriteByte('\n')
	// One session, as one run prints (the recordings come from several).
	return sessionIDRe.ReplaceAll(out.Bytes(), []byte(`"session_id":"5b0e4c1e-0000-4000-8000-000000000001"`))
}

// sseViewer reads a task page's stream as the browser does and notes
// every event id it gets, until the stream says the task ended.
type sseViewer struct {
	ids  map[int64]bool
	done chan error
}

func openTaskViewer(b *testing.B, c *testutil.Client, url string) *sseViewer {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HTTP.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("open stream: %v", err)
	}
	v := &sseViewer{ids: map[int64]bool{}, done: make(chan error, 1)}
	opened := make(chan struct{})
	go func() {
		defer resp.Body.Close()
		rd := bufio.NewReaderSize(resp.Body, 64<<10)
		event := ""
		for {
			line, err := rd.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				// A long data line: the rest of it says nothing we need.
				for err == bufio.ErrBufferFull {
					_, err = rd.ReadSlice('\n')
				}
				continue
			}
			if err != nil {
				v.done <- err
				return
			}
			switch {
			case bytes.HasPrefix(line, []byte(": connected")):
				close(opened)
			case bytes.HasPrefix(line, []byte("id: ")):
				id, _ := strconv.ParseInt(string(bytes.TrimSpace(line[4:])), 10, 64)
				v.ids[id] = true
			case bytes.HasPrefix(line, []byte("event: ")):
				event = string(bytes.TrimSpace(line[7:]))
			case len(bytes.TrimSpace(line)) == 0 && event == "end":
				v.done <- nil
				return
			}
		}
	}()
	select {
	case <-opened:
	case err := <-v.done:
		b.Fatalf("stream closed before it opened: %v", err)
	}
	return v
}

// BenchmarkTaskIngest replays a recorded 10,000-event transcript through
// the app's tasks service on SQLite (parse, transcript spool, event
// index, publish) while 10 viewers read the task page's stream over HTTP,
// as browsers do.
//
// Prints task_events_sse10_per_s: events over the time until every viewer
// has read the last one over HTTP (the viewers' reading shares the two
// cores), and task_events_sse10_ingest_per_s, the service's own part.
// Medians of three rounds.
func BenchmarkTaskIngestSSE(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	ctx := context.Background()
	s := testutil.StartServer(b, testutil.Options{Env: map[string]string{"AICODE_LOG_LEVEL": "warn"}})
	admin := testutil.Setup(b, s.URL, "admin", "bench-password-1")
	name := testutil.UniqueName("ingest")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		b.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	w, err := s.App.Store.GetWorkspaceByName(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	transcript := recordedTranscript(b)

	var all, alone []float64
	for round := 0; round < ingestRounds; round++ {
		// Straight into the store: a queued job would run it for real.
		t := store.Task{WorkspaceID: w.ID, CreatedBy: w.OwnerID, Prompt: "bench " + strconv.Itoa(round)}
		if err := s.App.Store.CreateTask(ctx, &t); err != nil {
			b.Fatal(err)
		}
		viewers := make([]*sseViewer, envInt("AICODE_BENCH_TASK_VIEWERS", ingestViewers))
		for i := range viewers {
			viewers[i] = openTaskViewer(b, admin, s.URL+"/workspaces/"+w.ID+"/tasks/"+t.ID+"/stream")
		}
		start := time.Now()
		done, err := s.App.Tasks.Replay(ctx, t.ID, bytes.NewReader(transcript))
		replayed := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for i, v := range viewers {
			select {
			case err := <-v.done:
				if err != nil {
					b.Fatalf("viewer %d: %v", i, err)
				}
			case <-time.After(2 * time.Minute):
				b.Fatalf("viewer %d did not see the end", i)
			}
			if len(v.ids) != ingestEvents {
				b.Fatalf("viewer %d got %d distinct events of %d", i, len(v.ids), ingestEvents)
			}
		}
		elapsed := time.Since(start)
		if done.Events != ingestEvents || done.Status != store.TaskSucceeded {
			b.Fatalf("replayed task: %d events, %s %q", done.Events, done.Status, done.Detail)
		}
		idx, err := s.App.Store.ListTaskEvents(ctx, t.ID, 0, 0)
		if err != nil || len(idx) != ingestEvents {
			b.Fatalf("indexed %d events: %v", len(idx), err)
		}
		all = append(all, ingestEvents/elapsed.Seconds())
		alone = append(alone, ingestEvents/replayed.Seconds())
		b.Logf("round %d: service %s, all viewers %s", round, replayed, elapsed)
	}
	emit("task_events_sse10_per_s", percentile(all, 50), "events/s")
	emit("task_events_sse10_ingest_per_s", percentile(alone, 50), "events/s")
}

// ownerOnly stands in for the workspace service: one workspace, owned by
// the benchmark's user.
type ownerOnly struct{ w store.Workspace }

func (o ownerOnly) GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error) {
	if id != o.w.ID {
		return store.Workspace{}, auth.Access{}, workspace.ErrNotFound
	}
	return o.w, auth.Access{OwnerID: o.w.OwnerID}, nil
}

func (o ownerOnly) Do(ctx context.Context, p auth.Principal, id string, a workspace.Action) (store.Workspace, error) {
	return o.w, nil
}

// BenchmarkTaskIngest replays a recorded 10,000-event transcript through
// the tasks service on SQLite (parse, transcript spool, event index,
// publish) with 10 viewers subscribed to the task, as the task page's
// streams are: each takes every event, rendered once for all of them,
// and catches up from the transcript if it falls behind.
//
// Prints task_events_per_s: events over the time until every viewer has
// the last one (target >= 20,000), median of three rounds.
func BenchmarkTaskIngest(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := store.Migrate(ctx, st); err != nil {
		b.Fatal(err)
	}
	u := store.User{Username: "bench", PasswordHash: "x", Role: store.RoleMember}
	if err := st.CreateUser(ctx, &u); err != nil {
		b.Fatal(err)
	}
	w := store.Workspace{Name: "bench", OwnerID: u.ID, ProjectPath: dir, Image: "x", Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64},
		Desired: store.DesiredStopped, Status: store.StatusStopped}
	if err := st.CreateWorkspace(ctx, &w); err != nil {
		b.Fatal(err)
	}
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.LoadFrom(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	bs := bus.New()
	svc, err := tasks.New(tasks.Deps{Store: st, Blobs: blobs, Bus: bs, Workspaces: ownerOnly{w},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: cfg.Tasks, SpoolDir: filepath.Join(dir, "spool"), Runner: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	p := auth.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
	transcript := recordedTranscript(b)

	var all []float64
	for round := 0; round < ingestRounds; round++ {
		t := store.Task{WorkspaceID: w.ID, CreatedBy: u.ID, Prompt: "bench " + strconv.Itoa(round)}
		if err := st.CreateTask(ctx, &t); err != nil {
			b.Fatal(err)
		}
		// The render each event gets once, shared by the viewers.
		var rendered sync.Map
		html := func(e tasks.Event) []byte {
			if v, ok := rendered.Load(e.Seq); ok {
				return v.([]byte)
			}
			var buf bytes.Buffer
			_ = taskview.EventItem(e).Render(ctx, &buf)
			v, _ := rendered.LoadOrStore(e.Seq, buf.Bytes())
			return v.([]byte)
		}
		var wg sync.WaitGroup
		lagged := make([]int, ingestViewers)
		for v := 0; v < ingestViewers; v++ {
			sub := bs.Subscribe(tasks.TopicTask(t.ID), 16384)
			wg.Go(func() {
				defer sub.Close()
				var last, end int64
				var out int
				take := func(e tasks.Event) {
					out += len(html(e))
					last, end = e.Seq, e.End
				}
				for last < ingestEvents {
					msg := <-sub.C()
					if sub.Lagged() {
						lagged[v]++
						evs, _, err := svc.EventsFrom(ctx, p, w.ID, t.ID, tasks.Cursor{Seq: last, Pos: end}, 0)
						if err != nil {
							b.Error(err)
							return
						}
						for _, e := range evs {
							take(e)
						}
					}
					if u, ok := msg.(tasks.Update); ok && u.Event != nil && u.Event.Seq == last+1 {
						take(*u.Event)
					}
				}
			})
		}
		start := time.Now()
		done, err := svc.Replay(ctx, t.ID, bytes.NewReader(transcript))
		if err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		elapsed := time.Since(start)
		if done.Events != ingestEvents || done.Status != store.TaskSucceeded {
			b.Fatalf("replayed task: %d events, %s %q", done.Events, done.Status, done.Detail)
		}
		idx, err := st.ListTaskEvents(ctx, t.ID, 0, 0)
		if err != nil || len(idx) != ingestEvents {
			b.Fatalf("indexed %d events: %v", len(idx), err)
		}
		all = append(all, ingestEvents/elapsed.Seconds())
		b.Logf("round %d: %s, catch-ups %v", round, elapsed, lagged)
	}
	emit("task_events_per_s", percentile(all, 50), "events/s")
}

// Sizes of the latency run.
const (
	latencyEvents = 2000
	latencyRate   = 200
)

var sessionIDRe = regexp.MustCompile(`"session_id":"[^"]*"`)

var evTimeRe = regexp.MustCompile(`t=(\d+) i=(\d+)`)

// BenchmarkTaskEventLatency runs a task in a real container through the
// app, with bench/eventwriter standing in for the CLI (2,000 lines at 200
// a second, each stamped with the time it was printed), and reads the
// task page's stream over HTTP as a browser does.
//
// Prints task_event_to_viewer_p99_ms (target <= 50) and the p50 and max:
// from the line printed in the container to the event read by the viewer.
func BenchmarkTaskEventLatency(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "eventwriter")
	if err := goBuild("./bench/eventwriter", bin, "CGO_ENABLED=0"); err != nil {
		b.Fatal(err)
	}
	s := testutil.StartServer(b, testutil.Options{Env: map[string]string{
		"ANTHROPIC_API_KEY": "sk-ant-bench-0000000000000000",
		"AICODE_LOG_LEVEL":  "warn",
	}})
	admin := testutil.Setup(b, s.URL, "admin", "bench-password-1")
	name := testutil.UniqueName("tasklat")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		b.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	var w store.Workspace
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		w, err = s.App.Store.GetWorkspaceByName(ctx, name)
		if err == nil && w.Status == store.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("workspace not running: %v %s", err, w.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f, err := os.Open(bin)
	if err != nil {
		b.Fatal(err)
	}
	res, err := s.App.Engine.Capture(ctx, w.ContainerID, engine.ExecSpec{
		Cmd: []string{"sh", "-c", "cat > /bin/claude && chmod 755 /bin/claude"}, User: "0:0",
	}, f, 4096)
	f.Close()
	if err != nil || res.ExitCode != 0 {
		b.Fatalf("install the stand-in CLI: %v %d %s", err, res.ExitCode, res.Stderr)
	}

	r := admin.Post("/workspaces/"+w.ID+"/tasks", url.Values{"prompt": {"latency"}}, false)
	loc := r.Header.Get("Location")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	if r.Status != http.StatusSeeOther || id == "" {
		b.Fatalf("queue task: %d %s", r.Status, r.Body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/workspaces/"+w.ID+"/tasks/"+id+"/stream", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := admin.HTTP.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("open stream: %v", err)
	}
	defer resp.Body.Close()
	var delays []float64
	seen := map[int]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	event := ""
	readDeadline := time.AfterFunc(3*time.Minute, func() { resp.Body.Close() })
	defer readDeadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: ") && event == "ev":
			if m := evTimeRe.FindStringSubmatch(line); m != nil {
				at := time.Now().UnixNano()
				sent, _ := strconv.ParseInt(m[1], 10, 64)
				i, _ := strconv.Atoi(m[2])
				if !seen[i] {
					seen[i] = true
					delays = append(delays, float64(at-sent)/1e6)
				}
			}
		case strings.HasPrefix(line, "data: ") && event == "end":
			goto done
		}
	}
done:
	if len(delays) != latencyEvents {
		tk, _ := s.App.Store.GetTask(ctx, id)
		b.Fatalf("viewer got %d of %d events (task %s %q)", len(delays), latencyEvents, tk.Status, tk.Detail)
	}
	sort.Float64s(delays)
	emit("task_event_to_viewer_p50_ms", percentile(delays, 50), "ms")
	emit("task_event_to_viewer_p99_ms", percentile(delays, 99), "ms")
	emit("task_event_to_viewer_max_ms", delays[len(delays)-1], "ms")
}
