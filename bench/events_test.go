package bench

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// engineEvents records when the engine reported each container's create
// and start, so a create-to-running time can be split into the part before
// the engine had created the container, the part until it had started it,
// and the part after (the caller's own work). The engine and the benchmark
// share the host clock.
type engineEvents struct {
	mu      sync.Mutex
	changed chan struct{}
	at      map[string]map[string]time.Time // container id -> action -> time
}

func watchEngineEvents(b *testing.B, cli *client.Client) *engineEvents {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since: strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", "create"),
			filters.Arg("event", "start"),
		),
	})
	ev := &engineEvents{changed: make(chan struct{}), at: map[string]map[string]time.Time{}}
	go func() {
		for {
			select {
			case m := <-msgs:
				ev.mu.Lock()
				if ev.at[m.Actor.ID] == nil {
					ev.at[m.Actor.ID] = map[string]time.Time{}
				}
				ev.at[m.Actor.ID][string(m.Action)] = time.Unix(0, m.TimeNano)
				close(ev.changed)
				ev.changed = make(chan struct{})
				ev.mu.Unlock()
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return ev
}

// wait returns the create and start times of container id, waiting up to
// ten seconds for the events to arrive; ok is false if they did not.
func (e *engineEvents) wait(id string) (created, started time.Time, ok bool) {
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		c, okc := e.at[id]["create"]
		s, oks := e.at[id]["start"]
		ch := e.changed
		e.mu.Unlock()
		if okc && oks {
			return c, s, true
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, time.Time{}, false
		}
	}
}
