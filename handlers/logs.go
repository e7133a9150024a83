package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/workspace"
	logview "aicode/views/pages/logs"
)

// LogReader is what the Logs tab needs from the engine adapter.
type LogReader interface {
	Logs(ctx context.Context, containerID string, o engine.LogOptions) (*engine.LogStream, error)
}

// EventFeed is what the Logs tab needs from the workspace service.
type EventFeed interface {
	Events(ctx context.Context, p auth.Principal, id string, limit int) ([]store.WorkspaceEvent, error)
}

func (s *Server) logReader() LogReader { return s.Logs }

func (s *Server) eventFeed() EventFeed { return s.Events }

// Limits of the Logs tab.
const (
	defaultLogTail = 200
	maxLogTail     = 5000
	maxLogFilter   = 200
	// feedLength is how many events the tab shows.
	feedLength = 50
	// A viewer's queue of lines not yet sent: past either bound new lines
	// are skipped (and counted) until the viewer catches up.
	logQueueLines = 2000
	logQueueBytes = 1 << 20
	// logBatch lines go in one server-sent event.
	logBatch = 256
)

// logQuery is a viewer's choice of output.
type logQuery struct {
	Tail       int
	Follow     bool
	Timestamps bool
	// Filter keeps lines containing it (case-insensitive).
	Filter string
	// Since resumes after the last line a reconnecting viewer has.
	Since time.Time
}

func badLogQuery(msg string) error { return fiber.NewError(fiber.StatusBadRequest, msg) }

// parseLogQuery reads tail, follow, timestamps, q and since; anything
// malformed is a 400 naming the parameter.
func parseLogQuery(c *fiber.Ctx) (logQuery, error) {
	q := logQuery{Tail: defaultLogTail, Follow: true, Timestamps: true}
	if v := c.Query("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxLogTail {
			return q, badLogQuery(fmt.Sprintf("tail must be a whole number from 0 to %d", maxLogTail))
		}
		q.Tail = n
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"follow", &q.Follow}, {"timestamps", &q.Timestamps}} {
		switch c.Query(b.name) {
		case "":
		case "1", "true", "on":
			*b.dst = true
		case "0", "false", "off":
			*b.dst = false
		default:
			return q, badLogQuery(b.name + " must be 1 or 0")
		}
	}
	q.Filter = c.Query("q")
	if !utf8.ValidString(q.Filter) || utf8.RuneCountInString(q.Filter) > maxLogFilter {
		return q, badLogQuery(fmt.Sprintf("the filter must be text of at most %d characters", maxLogFilter))
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, badLogQuery("since must be a time like 2006-01-02T15:04:05.999999999Z")
		}
		q.Since = t
	}
	return q, nil
}

// logsTab is the workspace's Logs tab.
func (s *Server) logsTab(c *fiber.Ctx) error {
	q, err := parseLogQuery(c)
	if err != nil {
		return err
	}
	p := principal(c)
	w := loadedWorkspace(c)
	props := logview.Props{
		User:      p,
		Workspace: w,
		Access:    loadedAccess(c),
		Options:   logview.Options{Tail: q.Tail, Follow: q.Follow, Timestamps: q.Timestamps, Query: q.Filter},
		MaxTail:   maxLogTail,
	}
	if f := s.eventFeed(); f != nil {
		if props.Events, err = f.Events(c.UserContext(), p, w.ID, feedLength); err != nil {
			return err
		}
	}
	lp := s.layoutProps(c, w.Name+" · Logs", "workspaces")
	lp.Scripts = []string{"logs.js"}
	return page(c, fiber.StatusOK, lp, logview.Tab(props))
}

// logsStream streams the container's output and the workspace's events.
//
// Events (all JSON unless said otherwise):
//
//	log-open   {"running":bool}       output follows (again)
//	log-lines  {"lines":[...]}        {"s":"out"|"err","t":time,"l":text,"x":truncated} or {"skip":n}
//	log-end    {"message":text}       the output ended (container stopped, or not following)
//	log-error  {"message":text}       no output to show, and why
//	events     HTML                   the whole event feed (on connect and after a lag)
//	event      HTML                   one new event, for the top of the feed
//
// A stopped container shows its last output; when it starts again a
// following viewer's output continues.
func (s *Server) logsStream(c *fiber.Ctx) error {
	q, err := parseLogQuery(c)
	if err != nil {
		return err
	}
	ls := &logSession{
		srv:         s,
		p:           principal(c),
		wsID:        loadedWorkspace(c).ID,
		containerID: loadedWorkspace(c).ContainerID,
		q:           q,
		match:       lineMatcher(q.Filter),
		lastSeen:    q.Since,
	}
	sseHeaders(c)
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithCancel(s.Streams)
		defer cancel()
		ls.run(ctx, w)
	}))
	return nil
}

// lineMatcher returns the server-side filter: a case-insensitive
// substring match, or nil for none.
func lineMatcher(filter string) func(string) bool {
	if filter == "" {
		return nil
	}
	needle := strings.ToLower(filter)
	return func(line string) bool { return strings.Contains(strings.ToLower(line), needle) }
}

// logSession is one viewer's stream.
type logSession struct {
	srv         *Server
	p           auth.Principal
	wsID        string
	containerID string
	q           logQuery
	match       func(string) bool
	// lastSeen is the time of the newest line read, so output resumed
	// after a restart (or a reconnect) starts after it.
	lastSeen time.Time

	w   *bufio.Writer
	buf bytes.Buffer
}

func (ls *logSession) run(ctx context.Context, w *bufio.Writer) {
	ls.w = w
	sub := ls.srv.Bus.Subscribe(workspace.TopicEvents, sseBuffer)
	defer sub.Close()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	if sseOpen(w) != nil {
		return
	}
	if ls.sendFeed(ctx) != nil {
		return
	}
	t := ls.open(ctx, ls.q.Tail, ls.q.Since)
	defer func() {
		if t != nil {
			t.stop()
		}
	}()
	if ls.w.Flush() != nil {
		return
	}
	for {
		var ready, done <-chan struct{}
		if t != nil {
			ready, done = t.ready, t.done
		}
		var err error
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, err = w.WriteString(": ping\n\n")
		case <-ready:
			err = ls.sendLines(t)
		case <-done:
			if err = ls.sendLines(t); err == nil {
				err = ls.sendJSON("log-end", map[string]any{"message": ls.endMessage(t.err)})
			}
			t.stop()
			t = nil
		case msg := <-sub.C():
			if sub.Lagged() {
				// Events were lost: the whole feed again (the page skips
				// what it has).
				if err = ls.sendFeed(ctx); err != nil {
					break
				}
			}
			e, ok := msg.(store.WorkspaceEvent)
			if !ok || e.WorkspaceID != ls.wsID {
				break
			}
			err = ls.sendHTML("event", logview.EventItem(e))
			// The container runs again (perhaps a new one): its output
			// continues where this viewer's ended.
			if err == nil && t == nil && ls.q.Follow && (e.Kind == store.EventStart || e.Kind == store.EventRestart) {
				ls.containerID = e.ContainerID
				since := e.At.Add(-2 * time.Second)
				if !ls.lastSeen.IsZero() && ls.lastSeen.After(since) {
					since = ls.lastSeen
				}
				t = ls.open(ctx, -1, since)
			}
		}
		if err != nil || w.Flush() != nil {
			return
		}
	}
}

// open starts reading the container's output, or tells the viewer why it
// cannot. It returns nil when there is nothing to read.
func (ls *logSession) open(ctx context.Context, tail int, since time.Time) *logTail {
	r := ls.srv.logReader()
	var msg string
	switch {
	case r == nil:
		msg = "Logs are not available: this server has no Docker engine adapter."
	case ls.containerID == "":
		msg = "The workspace has no container yet. Its output appears here once it starts."
	}
	if msg != "" {
		_ = ls.sendJSON("log-error", map[string]any{"message": msg})
		return nil
	}
	t, err := startTail(ctx, r, ls.containerID, engine.LogOptions{
		Tail: tail, Since: since, Follow: ls.q.Follow, Timestamps: true,
	}, ls.match)
	if err != nil {
		_ = ls.sendJSON("log-error", map[string]any{"message": logErrorMessage(err)})
		return nil
	}
	_ = ls.sendJSON("log-open", map[string]any{"running": t.running, "follow": ls.q.Follow})
	return t
}

func logErrorMessage(err error) string {
	if errors.Is(err, engine.ErrNotFound) {
		return "The container is gone (removed outside the app), and its output with it. Start the workspace to re-create it."
	}
	return engineMessage(err)
}

func (ls *logSession) endMessage(err error) string {
	switch {
	case err == nil || errors.Is(err, io.EOF):
		if ls.q.Follow {
			return "The container stopped; its output ends here. It continues when the workspace starts again."
		}
		return "End of the output (not following new lines)."
	case errors.Is(err, context.Canceled):
		return "The output stream was closed."
	}
	return "The output stream broke: " + logErrorMessage(err)
}

// logLineJSON is one entry of a log-lines event.
type logLineJSON struct {
	Stream    string `json:"s,omitempty"`
	Time      string `json:"t,omitempty"`
	Line      string `json:"l"`
	Truncated bool   `json:"x,omitempty"`
	Skipped   int    `json:"skip,omitempty"`
}

// sendLines writes what the viewer's queue holds, in batches.
func (ls *logSession) sendLines(t *logTail) error {
	items, last := t.take()
	if last.After(ls.lastSeen) {
		ls.lastSeen = last
	}
	out := make([]logLineJSON, 0, min(len(items), logBatch))
	for i, it := range items {
		if it.skipped > 0 {
			out = append(out, logLineJSON{Skipped: it.skipped})
		} else {
			j := logLineJSON{Stream: "out", Line: it.line.Line, Truncated: it.line.Truncated}
			if it.line.Stream == engine.Stderr {
				j.Stream = "err"
			}
			if !it.line.Time.IsZero() {
				j.Time = it.line.Time.UTC().Format(time.RFC3339Nano)
			}
			out = append(out, j)
		}
		if len(out) == logBatch || i == len(items)-1 {
			if err := ls.sendJSON("log-lines", map[string]any{"lines": out}); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	return nil
}

func (ls *logSession) sendFeed(ctx context.Context) error {
	var events []store.WorkspaceEvent
	if f := ls.srv.eventFeed(); f != nil {
		var err error
		if events, err = f.Events(ctx, ls.p, ls.wsID, feedLength); err != nil {
			// The workspace went away or became invisible: say nothing more.
			return err
		}
	}
	return ls.sendHTML("events", logview.EventItems(events))
}

func (ls *logSession) sendJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeEvent(ls.w, name, b)
}

func (ls *logSession) sendHTML(name string, comp templ.Component) error {
	ls.buf.Reset()
	if err := comp.Render(context.Background(), &ls.buf); err != nil {
		ls.srv.Log.Warn("render stream event", "event", name, "err", err)
		return nil
	}
	return writeEvent(ls.w, name, ls.buf.Bytes())
}

// logItem is a queued line, or a count of lines skipped at that point.
type logItem struct {
	line    engine.LogLine
	skipped int
}

// logTail reads one engine log stream into a bounded queue, so a viewer
// that cannot keep up loses lines (and is told how many) rather than
// holding the engine's stream back.
type logTail struct {
	running bool
	ready   chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
	err     error // why reading ended; read after done is closed

	mu      sync.Mutex
	items   []logItem
	bytes   int
	skipped int
	last    time.Time
}

func startTail(ctx context.Context, r LogReader, containerID string, o engine.LogOptions, match func(string) bool) (*logTail, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := r.Logs(ctx, containerID, o)
	if err != nil {
		cancel()
		return nil, err
	}
	t := &logTail{running: st.Running, ready: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(t.done)
		defer st.Close()
		for {
			l, err := st.Next()
			if err != nil {
				t.err = err
				return
			}
			// A resumed stream repeats the line it resumed at.
			if !o.Since.IsZero() && !l.Time.After(o.Since) {
				continue
			}
			t.push(l, match)
		}
	}()
	return t, nil
}

func (t *logTail) push(l engine.LogLine, match func(string) bool) {
	t.mu.Lock()
	if l.Time.After(t.last) {
		t.last = l.Time
	}
	if match != nil && !match(l.Line) {
		t.mu.Unlock()
		return
	}
	if len(t.items) >= logQueueLines || t.bytes+len(l.Line) > logQueueBytes {
		t.skipped++
		t.mu.Unlock()
		return
	}
	if t.skipped > 0 {
		t.items = append(t.items, logItem{skipped: t.skipped})
		t.skipped = 0
	}
	t.items = append(t.items, logItem{line: l})
	t.bytes += len(l.Line)
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

// take empties the queue; it also returns the time of the newest line
// read, matching the filter or not.
func (t *logTail) take() ([]logItem, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	items := t.items
	if t.skipped > 0 {
		items = append(items, logItem{skipped: t.skipped})
		t.skipped = 0
	}
	t.items, t.bytes = nil, 0
	return items, t.last
}

func (t *logTail) stop() {
	t.cancel()
	<-t.done
}
