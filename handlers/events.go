package handlers

import (
	"bufio"
	"bytes"
	"context"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

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
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	ctx := s.Streams
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(w *bufio.Writer) {
		sub := s.Bus.Subscribe(topic, sseBuffer)
		defer sub.Close()
		tick := time.NewTicker(heartbeatEvery)
		defer tick.Stop()
		// Tell the browser to retry quickly after a drop, and flush the
		// headers now so it knows the stream is open.
		if _, err := w.WriteString("retry: 2000\n: connected\n\n"); err != nil || w.Flush() != nil {
			return
		}
		var buf bytes.Buffer
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case msg := <-sub.C():
				for _, ev := range next(msg, sub.Lagged()) {
					buf.Reset()
					if ev.HTML != nil {
						if err := ev.HTML.Render(context.Background(), &buf); err != nil {
							s.Log.Warn("render stream event", "event", ev.Name, "err", err)
							continue
						}
					}
					if writeEvent(w, ev.Name, buf.Bytes()) != nil || w.Flush() != nil {
						return
					}
				}
			}
		}
	}))
	return nil
}

// writeEvent frames data as an SSE event, one data: line per line.
func writeEvent(w *bufio.Writer, name string, data []byte) error {
	w.WriteString("event: ")
	w.WriteString(name)
	w.WriteByte('\n')
	for _, line := range bytes.Split(data, []byte("\n")) {
		w.WriteString("data: ")
		w.Write(line)
		w.WriteByte('\n')
	}
	_, err := w.WriteString("\n")
	return err
}

// listEvents streams row updates for the workspace list: each changed
// workspace the viewer may see re-renders its row; creations, deletions and
// lost updates tell the list to reload.
func (s *Server) listEvents(c *fiber.Ctx) error {
	p := principal(c)
	showOwner := p.Role != store.RoleMember
	return s.stream(c, workspace.TopicStatus, func(msg any, lagged bool) []sseEvent {
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
	})
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
