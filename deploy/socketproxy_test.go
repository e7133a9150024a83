package deploy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"aicode/services/dockerproxy"
	"aicode/services/engine"
	"aicode/testutil"
)

// engineCalls maps each Docker client method services/engine calls to a
// request it makes ("" for none). A new call fails
// TestSocketProxyCoversEngineCalls until it is listed here, and the proxy
// must allow it (services/dockerproxy.Rules) unless it is marked refused.
var engineCalls = map[string]struct {
	method, path string
	refused      bool
}{
	"Ping":                    {"HEAD", "/_ping", false},
	"NegotiateAPIVersionPing": {"", "", false},
	"ClientVersion":           {"", "", false},
	"Close":                   {"", "", false},
	"Info":                    {"GET", "/v1.41/info", false},
	"ImageInspect":            {"GET", "/v1.41/images/registry.example.com:5000/team/aicode-workspace:latest/json", false},
	"ContainerCreate":         {"POST", "/v1.41/containers/create", false},
	"ContainerStart":          {"POST", "/v1.41/containers/0123abc/start", false},
	"ContainerStop":           {"POST", "/v1.41/containers/0123abc/stop", false},
	"ContainerRestart":        {"POST", "/v1.41/containers/0123abc/restart", false},
	"ContainerRemove":         {"DELETE", "/v1.41/containers/0123abc", false},
	"ContainerInspect":        {"GET", "/v1.41/containers/0123abc/json", false},
	"ContainerList":           {"GET", "/v1.41/containers/json", false},
	"ContainerLogs":           {"GET", "/v1.41/containers/0123abc/logs", false},
	"ContainerStats":          {"GET", "/v1.41/containers/0123abc/stats", false},
	"ContainerStatsOneShot":   {"GET", "/v1.41/containers/0123abc/stats", false},
	"ContainerExecCreate":     {"POST", "/v1.41/containers/0123abc/exec", false},
	"ContainerExecAttach":     {"POST", "/v1.41/exec/0123abc/start", false},
	"ContainerExecResize":     {"POST", "/v1.41/exec/0123abc/resize", false},
	"ContainerExecInspect":    {"GET", "/v1.41/exec/0123abc/json", false},
	"Events":                  {"GET", "/v1.41/events", false},
	// Only tests import images (testutil, talking to the engine directly);
	// the app never does, so the proxy refuses it.
	"ImageImport": {"POST", "/v1.41/images/create", true},
}

func TestSocketProxyCoversEngineCalls(t *testing.T) {
	files, err := filepath.Glob(repoPath(t, "services/engine/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.cli\.([A-Z]\w*)\(`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
	}
	if len(seen) < 15 {
		t.Fatalf("found only %d Docker client calls in services/engine; the pattern is stale", len(seen))
	}
	var missing []string
	for m := range seen {
		if _, ok := engineCalls[m]; !ok {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("services/engine calls %v: list them in engineCalls and allow them in services/dockerproxy", missing)
	}
	for name, c := range engineCalls {
		if c.method == "" {
			continue
		}
		u, _ := url.Parse(c.path)
		if ok, why := dockerproxy.Allowed(c.method, u); ok == c.refused {
			t.Errorf("%s (%s %s): allowed %v (%s)", name, c.method, c.path, ok, why)
		}
	}
}

// startSocketProxy runs the Docker API proxy (what `aicli docker-proxy`
// runs) on a loopback port, in front of the engine the tests use.
func startSocketProxy(t *testing.T) string {
	t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Fatalf("the socket proxy test needs the engine on a unix socket, DOCKER_HOST is %s", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dockerproxy.New(sock, slog.New(slog.NewTextHandler(io.Discard, nil))).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return ln.Addr().String()
}

// The app's engine adapter does everything the app does through the proxy:
// lifecycle, events, logs, stats, a terminal (TTY exec with resize), runs
// and captures.
func TestSocketProxyServesTheEngineAdapter(t *testing.T) {
	direct := testutil.Engine(t)
	image := testutil.BusyboxImage(t)
	eng, err := engine.New(engine.Options{Host: "tcp://" + startSocketProxy(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s through the proxy: %v", what, err)
		}
	}
	must("ping", eng.Ping(ctx))
	info, err := eng.Info(ctx)
	must("info", err)
	if info.APIVersion == "" || info.ServerVersion == "" {
		t.Errorf("info: %+v", info)
	}
	ok, err := eng.ImageExists(ctx, image)
	must("inspect image", err)
	if !ok {
		t.Errorf("image %s not found through the proxy", image)
	}
	if ok, err := eng.ImageExists(ctx, "aicode-no-such-image:none"); ok || err != nil {
		t.Errorf("a missing image: %v, %v (want false, nil: the engine's 404, not the proxy's 403)", ok, err)
	}

	evctx, evcancel := context.WithCancel(ctx)
	defer evcancel()
	events, _ := eng.Events(evctx, time.Time{})

	name := testutil.UniqueName("aicode-proxytest")
	id, err := eng.CreateContainer(ctx, engine.ContainerSpec{
		Name: name, Image: image, User: "1000:1000", WorkDir: "/workspace",
		Cmd:        []string{"sh", "-c", "echo hello-from-logs; exec sleep 600"},
		Labels:     map[string]string{engine.LabelManagedBy: engine.ManagedByValue, engine.LabelWorkspaceID: name},
		BindSource: t.TempDir(), BindTarget: "/workspace",
		MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, PidsLimit: 64, NetworkMode: "none",
	})
	must("create container", err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		direct.RemoveContainer(ctx, id) // already gone when the test got that far
	})
	must("start", eng.StartContainer(ctx, id))
	st, err := eng.InspectContainer(ctx, id)
	must("inspect", err)
	if st.State != "running" {
		t.Fatalf("not running: %+v", st)
	}
	list, err := eng.ListManaged(ctx)
	must("list", err)
	if !containsContainer(list, id) {
		t.Errorf("the new container is not listed")
	}
	waitEvent(t, events, id, "start")

	logs, err := eng.Logs(ctx, id, engine.LogOptions{Tail: 10})
	must("logs", err)
	line, err := logs.Next()
	logs.Close()
	if err != nil || line.Line != "hello-from-logs" {
		t.Errorf("first log line %q, %v", line.Line, err)
	}
	_, err = eng.StatsOnce(ctx, id)
	must("one-shot stats", err)
	stream, err := eng.StatsStream(ctx, id)
	must("stats stream", err)
	_, err = stream.Next()
	stream.Close()
	must("stats sample", err)

	// A terminal: TTY exec, resized, typed into.
	term, err := eng.StartExec(ctx, id, engine.ExecSpec{Cmd: []string{"sh"}, User: "1000:1000", WorkDir: "/workspace", Tty: true, Cols: 80, Rows: 24})
	must("open terminal", err)
	must("resize terminal", eng.ResizeExec(ctx, term.ID, 100, 30))
	if _, err := term.Write([]byte("stty size; exit\n")); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(io.LimitReader(term, 1<<16))
	term.Close()
	if !bytes.Contains(out, []byte("30 100")) {
		t.Errorf("terminal output %q lacks the resized size", out)
	}
	xs, err := eng.InspectExec(ctx, term.ID)
	must("inspect exec", err)
	if xs.Running || xs.ExitCode != 0 {
		t.Errorf("terminal exec state %+v", xs)
	}

	runOut, code, err := eng.Run(ctx, id, engine.ExecSpec{Cmd: []string{"sh", "-c", "echo run-ok"}, User: "1000:1000"})
	must("run", err)
	if code != 0 || strings.TrimSpace(runOut) != "run-ok" {
		t.Errorf("run: %d %q", code, runOut)
	}
	capt, err := eng.Capture(ctx, id, engine.ExecSpec{Cmd: []string{"cat"}, User: "1000:1000"}, strings.NewReader("captured"), 1024)
	must("capture", err)
	if string(capt.Stdout) != "captured" || capt.ExitCode != 0 {
		t.Errorf("capture: %+v", capt)
	}

	must("restart", eng.RestartContainer(ctx, id, 2*time.Second))
	must("stop", eng.StopContainer(ctx, id, 2*time.Second))
	must("remove", eng.RemoveContainer(ctx, id))
	waitEvent(t, events, id, "destroy")
}

func containsContainer(list []engine.ContainerState, id string) bool {
	for _, c := range list {
		if c.ID == id {
			return true
		}
	}
	return false
}

func waitEvent(t *testing.T, events <-chan engine.Event, id, action string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the event stream through the proxy ended before %s", action)
			}
			if ev.ContainerID == id && ev.Action == action {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event through the proxy", action)
		}
	}
}

// Everything the app does not do is refused by the proxy itself, and so is
// a container creation asking for more than the app ever asks.
func TestSocketProxyRefusesTheRest(t *testing.T) {
	testutil.Engine(t)
	base := "http://" + startSocketProxy(t) + "/v1.41"
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path, body string, chunked bool) (int, string) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
			if chunked {
				r = io.MultiReader(r) // unknown length: sent chunked
			}
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	refused := []struct{ method, path string }{
		{"GET", "/volumes"},
		{"POST", "/volumes/create"},
		{"POST", "/build"},
		{"POST", "/images/create?fromImage=busybox&tag=latest"},
		{"DELETE", "/images/busybox"},
		{"POST", "/images/busybox/push"},
		{"POST", "/commit?container=x"},
		{"GET", "/containers/x/archive?path=/"},
		{"PUT", "/containers/x/archive?path=/"},
		{"GET", "/containers/x/export"},
		{"POST", "/containers/x/attach?stream=1"},
		{"POST", "/containers/x/kill"},
		{"POST", "/containers/x/update"},
		{"POST", "/containers/x/rename?name=y"},
		{"POST", "/containers/prune"},
		{"POST", "/networks/create"},
		{"GET", "/networks"},
		{"GET", "/system/df"},
		{"POST", "/swarm/init"},
		{"GET", "/secrets"},
		{"GET", "/plugins"},
		{"POST", "/auth"},
		{"GET", "/containers/x%2F..%2F..%2Fvolumes/json"},
		{"GET", "/exec/x/../../volumes"},
		{"GET", "/containers/x/json/../../../volumes"},
		{"GET", "/v1.41//volumes"},
	}
	for _, r := range refused {
		if code, body := do(r.method, r.path, "", false); code != http.StatusForbidden {
			t.Errorf("%s %s: %d %q, want 403 from the proxy", r.method, r.path, code, body)
		}
	}

	// The app's own kind of create reaches the engine (which has no such
	// image, so nothing is created): only refused requests get 403.
	hostConfig := func(extra string) string {
		hc := `"CapDrop":["ALL"],"SecurityOpt":["no-new-privileges:true"],"Privileged":false,"CapAdd":null,` +
			`"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/workspace"}]`
		if extra != "" {
			hc += "," + extra
		}
		return `{"Image":"aicode-no-such-image:none","User":"1000:1000","HostConfig":{` + hc + `}}`
	}
	if code, body := do("POST", "/containers/create", hostConfig(""), false); code != http.StatusNotFound {
		t.Fatalf("an ordinary create: %d %q, want the engine's 404", code, body)
	}
	for _, extra := range []string{`"Privileged":true`, `"privileged" : true`, `"Privil\u0065ged":true`, `"CapAdd":["SYS_ADMIN"]`, `"Binds":["/:/host"]`, `"PidMode":"host"`} {
		if code, body := do("POST", "/containers/create", hostConfig(extra), false); code != http.StatusForbidden {
			t.Errorf("create with %s: %d %q, want 403", extra, code, body)
		}
	}
	if code, _ := do("POST", "/containers/create", hostConfig(""), true); code != http.StatusNotFound {
		t.Errorf("a create body sent chunked: %d, want the engine's 404", code)
	}
	if code, _ := do("POST", "/containers/create", `{"Image":"x","Labels":{"pad":"`+strings.Repeat("x", 300<<10)+`"}}`, false); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 300 KiB create body: %d, want 413", code)
	}
	// Methods outside the allowed one are refused on allowed paths.
	for _, r := range []struct{ method, path string }{
		{"POST", "/containers/json"},
		{"DELETE", "/containers/x/json"},
		{"GET", "/containers/create"},
		{"PUT", "/containers/x"},
		{"GET", "/exec/abc/start"},
	} {
		if code, body := do(r.method, r.path, "", false); code != http.StatusForbidden {
			t.Errorf("%s %s: %d %q, want 403", r.method, r.path, code, body)
		}
	}
}
