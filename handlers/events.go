package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/workspace"
	wsview "aicode/views/pages/workspaces"
)

// heartbeatEvery keeps proxies from closing idle streams and detects
// vanished clients (a write to a closed connection fails).
const heartbeatEvery = 15 * time.Second

// sseBuffer bounds each viewer's queue; a slow viewer loses its oldest
// updates and is told to reload, never stalling anyone else.
const sseBuffer = 64

// sseEvent is one server-sent event.
type sseEvent struct {
	Name string
	HTML templ.Component
}

// stream sends events produced by next until the client goes away or the
// server shuts down. next returns the events for one bus message.
func (s *Server) stream(c *fiber.Ctx, topic string, next func(msg any, lagged bool) []sseEvent) error {
	return s.streamWith(c, topic, next, nil)
}

// periodicEvents produces events on a timer next to a bus stream; close
// releases what it holds when the stream ends.
type periodicEvents struct {
	every time.Duration
	tick  func() []sseEvent
	close func()
}

// streamWith is stream with, optionally, events produced periodically.
func (s *Server) streamWith(c *fiber.Ctx, topic string, next func(msg any, lagged bool) []sseEvent, periodic *periodicEvents) error {
	sseHeaders(c)
	ctx := s.Streams
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(w *bufio.Writer) {
		sub := s.Bus.Subscribe(topic, sseBuffer)
		defer sub.Close()
		tick := time.NewTicker(heartbeatEvery)
		defer tick.Stop()
		var periodicC <-chan time.Time
		if periodic != nil {
			pt := time.NewTicker(periodic.every)
			defer pt.Stop()
			periodicC = pt.C
			if periodic.close != nil {
				defer periodic.close()
			}
		}
		if sseOpen(w) != nil {
			return
		}
		var buf bytes.Buffer
		send := func(evs []sseEvent) bool {
			for _, ev := range evs {
				buf.Reset()
				if ev.HTML != nil {
					if err := ev.HTML.Render(context.Background(), &buf); err != nil {
						s.Log.Warn("render stream event", "event", ev.Name, "err", err)
						continue
					}
				}
				if writeEvent(w, ev.Name, buf.Bytes()) != nil {
					return false
				}
			}
			return w.Flush() == nil
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case <-periodicC:
				if !send(periodic.tick()) {
					return
				}
			case msg := <-sub.C():
				if !send(next(msg, sub.Lagged())) {
					return
				}
			}
		}
	}))
	return nil
}

// sseWriter writes server-sent events to one client and remembers the
// first failure (the client went away).
type sseWriter struct {
	w   *bufio.Writer
	buf bytes.Buffer
	err error
}

func (e *sseWriter) html(name string, comp templ.Component) {
	if e.err != nil {
		return
	}
	e.buf.Reset()
	if err := comp.Render(context.Background(), &e.buf); err != nil {
		e.err = err
		return
	}
	e.raw(name, e.buf.Bytes())
}

func (e *sseWriter) json(name string, v any) {
	if e.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		e.err = err
		return
	}
	e.raw(name, b)
}

func (e *sseWriter) raw(name string, data []byte) {
	if e.err == nil {
		e.err = writeEvent(e.w, name, data)
	}
}

func (e *sseWriter) comment(text string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(": " + text + "\n\n")
	}
}

func (e *sseWriter) flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// sseHeaders marks a response as an event stream that proxies must not
// buffer (compression is skipped by path: see isStream).
func sseHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
}

// sseOpen starts a stream: the browser is told to retry quickly after a
// drop, and the headers go out now so it knows the stream is open.
func sseOpen(w *bufio.Writer) error {
	if _, err := w.WriteString("retry: 2000\n: connected\n\n"); err != nil {
		return err
	}
	return w.Flush()
}

// writeEvent frames data as an SSE event, one data: line per line.
func writeEvent(w *bufio.Writer, name string, data []byte) error {
	appendEvent(w, name, data)
	// A bufio.Writer keeps its first error; an empty write reports it.
	_, err := w.Write(nil)
	return err
}

// frameWriter is what appendEvent writes to: a buffer or a bufio.Writer.
type frameWriter interface {
	io.Writer
	io.StringWriter
	io.ByteWriter
}

// appendEvent frames data as an SSE event into w.
func appendEvent(w frameWriter, name string, data []byte) {
	w.WriteString("event: ")
	w.WriteString(name)
	w.WriteByte('\n')
	for {
		w.WriteString("data: ")
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			w.Write(data)
			w.WriteString("\n\n")
			return
		}
		w.Write(data[:i+1])
		data = data[i+1:]
	}
}

// listEvents streams row updates for the workspace list: each changed
// workspace the viewer may see re-renders its row; creations, deletions and
// lost updates tell the list to reload.
func (s *Server) listEvents(c *fiber.Ctx) error {
	p := principal(c)
	showOwner := p.Role != store.RoleMember
	return s.streamWith(c, workspace.TopicStatus, func(msg any, lagged bool) []sseEvent {
		ch, ok := msg.(workspace.Change)
		if !ok {
			return nil
		}
		if lagged {
			return []sseEvent{{Name: "workspaces-changed"}}
		}
		if ch.Created || ch.Deleted || ch.Reload {
			// Cheap for everyone to reload; checking who may see a deleted
			// workspace is not possible any more.
			return []sseEvent{{Name: "workspaces-changed"}}
		}
		if !s.Workspaces.CanSee(context.Background(), p, ch.Workspace) {
			return nil
		}
		return []sseEvent{{Name: "ws-" + ch.Workspace.ID, HTML: wsview.Row(p, ch.Workspace, showOwner)}}
	}, s.usageEvents(p))
}

// usageRefresh is how often the list's CPU and memory cells update.
const usageRefresh = 2 * time.Second

// usageMax bounds how many running workspaces one list viewer watches.
const usageMax = 200

// usageEvents keeps the list's CPU and memory cells current: while a list
// is open it watches every running workspace its viewer may see (through
// the hub, so one engine stream each however many lists are open), and
// sends each one's figures as "usage-<id>".
func (s *Server) usageEvents(p auth.Principal) *periodicEvents {
	if s.Stats == nil {
		return nil
	}
	watch := newStatsWatch(s.Stats)
	return &periodicEvents{
		every: usageRefresh,
		close: watch.close,
		tick: func() []sseEvent {
			ctx, cancel := context.WithTimeout(s.Streams, 5*time.Second)
			defer cancel()
			pg, err := s.Workspaces.List(ctx, p, workspace.ListOptions{Status: store.StatusRunning, Page: 1, PerPage: usageMax})
			if err != nil {
				return nil
			}
			watch.set(s.Streams, pg.Items)
			var evs []sseEvent
			for _, w := range pg.Items {
				if w.ContainerID == "" {
					continue
				}
				if sm, ok := s.Stats.Latest(w.ContainerID); ok {
					evs = append(evs, sseEvent{Name: "usage-" + w.ID, HTML: wsview.Usage(&sm)})
				}
			}
			return evs
		},
	}
}

// workspaceEvents streams the detail page's status card.
func (s *Server) workspaceEvents(c *fiber.Ctx) error {
	p := principal(c)
	id := loadedWorkspace(c).ID
	return s.stream(c, workspace.TopicStatus, func(msg any, lagged bool) []sseEvent {
		ch, ok := msg.(workspace.Change)
		if !ok || ch.Workspace.ID != id {
			return nil
		}
		if ch.Deleted {
			return []sseEvent{{Name: "status", HTML: wsview.DeletedCard(ch.Workspace.Name)}}
		}
		return []sseEvent{{Name: "status", HTML: wsview.StatusCard(p, ch.Workspace)}}
	})
}
