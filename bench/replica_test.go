package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/services/workspace"
	"aicode/testutil"
)

// Replica event latency: a workspace change published on replica A's bus
// travels through Redis to replica B, whose SSE stream renders it for a
// browser. Two real app instances share one PostgreSQL database and the
// test Redis. Events go one at a time (each waits for the previous to
// arrive), so the figure is the latency of one event, not of a queue.
const (
	replicaEvents = 1000
	replicaWarmup = 50
)

func BenchmarkReplicaEventLatency(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	rs := testutil.StartReplicas(b, testutil.RedisURL(b), testutil.Options{Env: serverEnv}, testutil.Options{Env: serverEnv})
	a, bb := rs[0], rs[1]
	admin := testutil.Setup(b, a.URL, adminUser, adminPW)
	name := testutil.UniqueName("bench-repl")
	if r := admin.Post("/workspaces", url.Values{"name": {name}}, true); r.Status != http.StatusCreated {
		b.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	w, err := a.App.Store.GetWorkspaceByName(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}

	// B's stream, read line by line; every status event reports its detail.
	req, _ := http.NewRequest(http.MethodGet, bb.URL+"/workspaces/"+w.ID+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := admin.HTTP.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("open B's stream: %v %v", err, resp)
	}
	b.Cleanup(func() { resp.Body.Close() })
	arrived := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "bench-evt-"); i >= 0 {
				j := i + len("bench-evt-")
				for j < len(line) && line[j] >= '0' && line[j] <= '9' {
					j++
				}
				arrived <- line[i:j]
			}
		}
		close(arrived)
	}()
	// Let B's subscription register before the first event.
	time.Sleep(300 * time.Millisecond)

	var lat []float64
	for i := -replicaWarmup; i < replicaEvents; i++ {
		tag := fmt.Sprintf("bench-evt-%d", i+replicaWarmup)
		ev := w
		ev.Status, ev.StatusDetail = store.StatusRunning, tag
		start := time.Now()
		a.App.Bus.Publish(workspace.TopicStatus, workspace.Change{Workspace: ev})
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case got, ok := <-arrived:
				if !ok {
					b.Fatal("B's stream ended")
				}
				if got == tag {
					break wait
				}
			case <-deadline:
				b.Fatalf("event %s did not reach B's stream within 5s", tag)
			}
		}
		if i >= 0 {
			lat = append(lat, ms(time.Since(start)))
		}
	}
	emit("replica_event_p50_ms", percentile(lat, 50), "ms")
	emit("replica_event_p99_ms", percentile(lat, 99), "ms")
	st := a.App.Replica.Bridge.Stats()
	if st.Dropped > 0 {
		b.Fatalf("A's bridge dropped %d events", st.Dropped)
	}
}
