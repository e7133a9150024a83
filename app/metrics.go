package app

import (
	"time"

	"aicode/services/metrics"
	"aicode/services/stats"
	"aicode/services/store"
	"aicode/services/terminal"
)

// taskCountsCache is how long the queued/running task counts are reused
// between scrapes, so scrapers cannot load the database.
const taskCountsCache = 5 * time.Second

// watchServices adds the gauges that read services' state at scrape time.
func watchServices(m *metrics.Metrics, terms *terminal.Manager, hub *stats.Hub, st store.Store) {
	m.WatchTerminals(terms.Count)
	m.WatchStats(hub.Upstreams, hub.Subscribers)
	m.WatchTasks(st.CountActiveTasks, taskCountsCache)
}
