package handlers_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"aicode/services/store"
	"aicode/services/terminal"
	"aicode/testutil"
)

// scrape reads /metrics and parses it.
func scrape(t *testing.T, base, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Fatalf("%s not served", name)
	}
	for _, m := range mf.GetMetric() {
		if hasLabels(m, labels...) {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s%v not served", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, kv ...string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if got[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

func TestMetricsEndpoint(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{
		Image: "aicode-test:unused",
		Env:   map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
	})
	ctx := context.Background()
	st := s.App.Store
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	u, err := st.GetUserByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Workspace{Name: "metrics-ws", OwnerID: u.ID, ProjectPath: s.MkdirInRoot(t, "metrics-ws"), Image: "x",
		Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredStopped, Status: store.StatusStopped}
	if err := st.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	// Three queued tasks, before the first scrape reads (and caches) the
	// counts.
	for range 3 {
		if err := st.CreateTask(ctx, &store.Task{WorkspaceID: w.ID, CreatedBy: u.ID, Prompt: "count me"}); err != nil {
			t.Fatal(err)
		}
	}
	// A terminal with one viewer.
	mgr := s.App.Console.Manager()
	sess, err := mgr.Open(ctx, terminal.OpenSpec{WorkspaceID: w.ID}, fakeShell)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close(ctx, w.ID, sess.ID(), "test over")
	if _, err := sess.Attach(true); err != nil {
		t.Fatal(err)
	}

	for range 3 {
		admin.Get("/workspaces/" + w.ID)
	}
	admin.Get("/workspaces")
	admin.Get("/no/such/page/" + w.ID)

	fams := scrape(t, s.URL, "")
	if got := gauge(t, fams, "aicode_terminal_sessions"); got != 1 {
		t.Errorf("terminal sessions: %v", got)
	}
	if got := gauge(t, fams, "aicode_terminal_viewers"); got != 1 {
		t.Errorf("terminal viewers: %v", got)
	}
	if got := gauge(t, fams, "aicode_tasks", "status", "queued"); got != 3 {
		t.Errorf("queued tasks: %v", got)
	}
	if got := gauge(t, fams, "aicode_tasks", "status", "running"); got != 0 {
		t.Errorf("running tasks: %v", got)
	}
	if got := gauge(t, fams, "aicode_stats_streams"); got != 0 {
		t.Errorf("stats streams: %v", got)
	}
	// Requests are labelled by route pattern, never by raw path.
	var byRoute = map[string]uint64{}
	for _, m := range fams["aicode_http_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), w.ID) {
				t.Errorf("a raw path became a label: %v", m.GetLabel())
			}
		}
		if hasLabels(m, "method", "GET", "status", "2xx") || hasLabels(m, "method", "GET", "status", "4xx") {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					byRoute[l.GetValue()+" "+statusOf(m)] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if byRoute["/workspaces/:id 2xx"] != 3 || byRoute["/workspaces 2xx"] < 1 || byRoute["unmatched 4xx"] < 1 {
		t.Errorf("request counts by route: %v", byRoute)
	}
	// The engine is unreachable: its failed calls are counted.
	var engineErrs float64
	for _, m := range fams["aicode_engine_errors_total"].GetMetric() {
		if hasLabels(m, "kind", "unavailable") {
			engineErrs += m.GetCounter().GetValue()
		}
	}
	if engineErrs < 1 {
		t.Errorf("engine errors: %v", fams["aicode_engine_errors_total"])
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[n] == nil {
			t.Errorf("%s not served", n)
		}
	}

	// Closing the terminal moves the gauge back.
	if err := mgr.Close(ctx, w.ID, sess.ID(), "test over"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for gauge(t, scrape(t, s.URL, ""), "aicode_terminal_sessions") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("terminal gauge stayed at 1 after close")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOf(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "status" {
			return l.GetValue()
		}
	}
	return ""
}

func TestMetricsNeedToken(t *testing.T) {
	const token = "metrics-token-0123456789"
	s := testutil.StartServer(t, testutil.Options{
		Image: "aicode-test:unused",
		Env:   map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock", "AICODE_METRICS_TOKEN": token},
	})
	for _, auth := range []string{"", "Bearer ", "Bearer wrong-token-0123456789", "Basic " + token, token, "Bearer " + token + "x"} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(b), "aicode_") {
			t.Errorf("Authorization %q: %d %.80s", auth, resp.StatusCode, b)
		}
	}
	fams := scrape(t, s.URL, token)
	if fams["aicode_terminal_sessions"] == nil {
		t.Error("metrics missing with the right token")
	}
	// Before setup, too: /metrics is no page that sends to /setup.
	if fams["aicode_http_request_duration_seconds"] == nil {
		t.Error("request histogram missing")
	}
}

// Without a token only loopback peers are answered; a forwarded-for
// header naming loopback changes nothing for a remote peer.
func TestMetricsLoopbackOnly(t *testing.T) {
	ip := nonLoopbackIP(t)
	s := testutil.StartServer(t, testutil.Options{
		Image: "aicode-test:unused",
		Env: map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock",
			// Even a trusted proxy's header is not believed for /metrics.
			"AICODE_TRUSTED_PROXIES": ip.String()},
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.App.Serve(ln) }()
	remote := "http://" + ln.Addr().String()
	req, _ := http.NewRequest(http.MethodGet, remote+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.Contains(string(b), "aicode_") {
		t.Errorf("from %s: %d %.80s", ip, resp.StatusCode, b)
	}
	// The same server answers on loopback.
	if scrape(t, s.URL, "")["aicode_terminal_sessions"] == nil {
		t.Error("loopback scrape incomplete")
	}
}

// nonLoopbackIP is an address of this machine other than loopback.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to test remote clients with")
	return nil
}
