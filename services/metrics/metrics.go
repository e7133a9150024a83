// Package metrics keeps the application's Prometheus metrics in a registry
// of its own (not the process-global default), so tests and several apps
// in one process never share counters.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, shared with the Grafana dashboard (a test checks that
// every name the dashboard queries is served).
const (
	NameHTTPDuration     = "aicode_http_request_duration_seconds"
	NameTerminalSessions = "aicode_terminal_sessions"
	NameTerminalViewers  = "aicode_terminal_viewers"
	NameStatsStreams     = "aicode_stats_streams"
	NameStatsSubscribers = "aicode_stats_subscribers"
	NameTasks            = "aicode_tasks"
	NameEngineErrors     = "aicode_engine_errors_total"
)

// Metrics is the application's registry and the metrics it updates
// itself; gauges that read a service's state are added with the Watch
// methods.
type Metrics struct {
	Registry *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	engineErrors *prometheus.CounterVec
}

// New builds a registry with the Go runtime and process collectors and the
// application's own metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: NameHTTPDuration,
			Help: "Time to answer HTTP requests, by method, route pattern and status class (streams count until they close).",
			// Pages and fragments take milliseconds; the top buckets catch
			// engine calls and streams.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route", "status"}),
		engineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameEngineErrors,
			Help: "Failed Docker engine API calls, by operation and kind (unavailable, not_found, conflict, too_old, other).",
		}, []string{"op", "kind"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpDuration,
		m.engineErrors,
	)
	return m
}

// ObserveHTTP records one answered request. route must be the route
// pattern (bounded), never the raw path.
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	m.httpDuration.WithLabelValues(method, route, StatusClass(status)).Observe(d.Seconds())
}

// StatusClass is "2xx", "4xx" and so on.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// EngineError counts one failed engine call. op and kind must come from a
// bounded set (the engine adapter's operation names).
func (m *Metrics) EngineError(op, kind string) {
	m.engineErrors.WithLabelValues(op, kind).Inc()
}

// WatchTerminals serves the open terminal sessions and their viewers, as
// count reports them at scrape time.
func (m *Metrics) WatchTerminals(count func() (sessions, viewers int)) {
	m.Registry.MustRegister(&pairCollector{
		read: count,
		a:    prometheus.NewDesc(NameTerminalSessions, "Open terminal sessions (shells running in workspaces).", nil, nil),
		b:    prometheus.NewDesc(NameTerminalViewers, "Viewers attached to terminal sessions.", nil, nil),
	})
}

// WatchStats serves the engine stats streams open and their subscribers.
func (m *Metrics) WatchStats(upstreams, subscribers func() int) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameStatsStreams, Help: "Engine stats streams open (one per watched container)."},
			func() float64 { return float64(upstreams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameStatsSubscribers, Help: "Live subscriptions to container stats (charts, fleet page)."},
			func() float64 { return float64(subscribers()) }),
	)
}

// TaskCounts reads how many tasks are queued and running.
type TaskCounts func(ctx context.Context) (queued, running int, err error)

// WatchTasks serves queued and running tasks. The store is asked at most
// once per cacheFor, however often (and by however many scrapers) the
// endpoint is read; a failed read serves nothing for that scrape.
func (m *Metrics) WatchTasks(count TaskCounts, cacheFor time.Duration) {
	m.Registry.MustRegister(&taskCollector{
		count:    count,
		cacheFor: cacheFor,
		desc:     prometheus.NewDesc(NameTasks, "Claude Code tasks by status (queued, running), deployment-wide.", []string{"status"}, nil),
	})
}

// Handler serves the registry in the Prometheus text formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		// The web layer compresses responses itself.
		DisableCompression: true,
		// Errors from a collector must not hide the rest.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// pairCollector reads two related gauges with one call.
type pairCollector struct {
	read func() (int, int)
	a, b *prometheus.Desc
}

func (c *pairCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.a; ch <- c.b }

func (c *pairCollector) Collect(ch chan<- prometheus.Metric) {
	x, y := c.read()
	ch <- prometheus.MustNewConstMetric(c.a, prometheus.GaugeValue, float64(x))
	ch <- prometheus.MustNewConstMetric(c.b, prometheus.GaugeValue, float64(y))
}

type taskCollector struct {
	count    TaskCounts
	cacheFor time.Duration
	desc     *prometheus.Desc

	mu              sync.Mutex
	at              time.Time
	queued, running int
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= c.cacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		q, r, err := c.count(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
		c.queued, c.running, c.at = q, r, time.Now()
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.queued), "queued")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.running), "running")
}
