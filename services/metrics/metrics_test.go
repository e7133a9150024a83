package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"aicode/services/engine"
)

// full is a registry with every metric present (vectors appear only once
// they have a child).
func full(t *testing.T) *Metrics {
	t.Helper()
	m := New()
	m.WatchTerminals(func() (int, int) { return 2, 3 })
	m.WatchStats(func() int { return 1 }, func() int { return 4 })
	m.WatchTasks(func(context.Context) (int, int, error) { return 5, 1, nil }, time.Second)
	m.ObserveHTTP("GET", "/workspaces/:id", 200, 3*time.Millisecond)
	m.EngineError("start container", "unavailable")
	return m
}

func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestRegistryServesEveryMetric(t *testing.T) {
	fams := families(t, full(t))
	want := map[string]float64{
		NameTerminalSessions: 2,
		NameTerminalViewers:  3,
		NameStatsStreams:     1,
		NameStatsSubscribers: 4,
	}
	for name, v := range want {
		mf := fams[name]
		if mf == nil || mf.GetMetric()[0].GetGauge().GetValue() != v {
			t.Errorf("%s: %v", name, mf)
		}
	}
	tasks := map[string]float64{}
	for _, mt := range fams[NameTasks].GetMetric() {
		tasks[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
	}
	if tasks["queued"] != 5 || tasks["running"] != 1 {
		t.Errorf("tasks: %v", tasks)
	}
	h := fams[NameHTTPDuration].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range h.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["route"] != "/workspaces/:id" || labels["status"] != "2xx" || labels["method"] != "GET" || h.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("histogram: %v", h)
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes", NameEngineErrors} {
		if fams[n] == nil {
			t.Errorf("%s missing", n)
		}
	}
	// A registry of its own: nothing leaks into the global default one.
	other := families(t, New())
	if other[NameHTTPDuration] != nil {
		t.Error("two registries share the request histogram")
	}
}

func TestStatusClass(t *testing.T) {
	for in, want := range map[int]string{200: "2xx", 204: "2xx", 303: "3xx", 404: "4xx", 503: "5xx", 0: "other", 999: "other"} {
		if got := StatusClass(in); got != want {
			t.Errorf("%d: %s", in, got)
		}
	}
}

// The store is asked at most once per cache period, and a failing count
// does not hide the other metrics.
func TestTaskCountsAreCached(t *testing.T) {
	m := New()
	var calls atomic.Int32
	var fail atomic.Bool
	m.WatchTasks(func(context.Context) (int, int, error) {
		calls.Add(1)
		if fail.Load() {
			return 0, 0, errors.New("database down")
		}
		return int(calls.Load()), 0, nil
	}, 200*time.Millisecond)
	for range 5 {
		if _, err := m.Registry.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d store reads for 5 scrapes within the cache period", n)
	}
	time.Sleep(250 * time.Millisecond)
	fams := families(t, m)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d store reads after the cache period", n)
	}
	if v := fams[NameTasks].GetMetric()[0].GetGauge().GetValue(); v != 2 {
		t.Fatalf("queued after refresh: %v", v)
	}
	time.Sleep(250 * time.Millisecond)
	fail.Store(true)
	mfs, err := m.Registry.Gather()
	if err == nil || !strings.Contains(err.Error(), "database down") {
		t.Fatalf("failing count: %v", err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "go_goroutines"
	}
	if !found {
		t.Fatal("a failing count hid the other metrics")
	}
}

// Engine failures reach the counter through the adapter's one hook, with
// bounded labels.
func TestEngineErrorsAreCounted(t *testing.T) {
	m := New()
	eng, err := engine.New(engine.Options{Host: "unix:///nonexistent/aicode-test/docker.sock", OnError: m.EngineError})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := eng.InspectContainer(ctx, "nope"); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("inspect: %v", err)
	}
	if _, err := eng.InspectContainer(ctx, "nope"); err == nil {
		t.Fatal("second inspect worked")
	}
	if _, err := eng.ImageExists(ctx, "some/image:tag"); err == nil {
		t.Fatal("image check worked")
	}
	got := map[string]float64{}
	for _, mt := range families(t, m)[NameEngineErrors].GetMetric() {
		l := map[string]string{}
		for _, p := range mt.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got[l["op"]+"/"+l["kind"]] = mt.GetCounter().GetValue()
	}
	want := map[string]float64{"inspect container/unavailable": 2, "inspect image/unavailable": 1}
	if len(got) != len(want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("counted %v, want %v", got, want)
		}
	}
}

// Every metric the Grafana dashboard queries is served, and every metric
// of the app's own has a panel: the two cannot drift apart.
func TestDashboardMatchesRegistry(t *testing.T) {
	raw, err := os.ReadFile("../../docker/grafana/dashboards/aicode.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" {
		t.Error("dashboard without uid")
	}
	hasDSVar := false
	var exprs []string
	for _, v := range dash.Templating.List {
		hasDSVar = hasDSVar || v.Type == "datasource" && v.Name == "datasource"
		exprs = append(exprs, v.Definition)
	}
	if !hasDSVar {
		t.Error("no datasource variable")
	}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}

	fams := families(t, full(t))
	nameRe := regexp.MustCompile(`\b(?:aicode|go|process)_[a-z0-9_]+\b`)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range nameRe.FindAllString(e, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(n, suf); ok && fams[b] != nil && fams[b].GetType() == dto.MetricType_HISTOGRAM {
					base = b
				}
			}
			if fams[base] == nil {
				t.Errorf("dashboard queries %s, which the app does not serve (in %q)", n, e)
			}
			used[base] = true
		}
	}
	var unused []string
	for name := range fams {
		if strings.HasPrefix(name, "aicode_") && !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("metrics without a dashboard panel: %v", unused)
	}
}
