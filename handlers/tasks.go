package handlers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"html"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/tasks"
	taskview "aicode/views/pages/tasks"
)

// Tasks is what the handlers need from the tasks service.
type Tasks interface {
	Create(ctx context.Context, p auth.Principal, wsID string, in tasks.Input) (store.Task, error)
	Retry(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error)
	Cancel(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error)
	Get(ctx context.Context, p auth.Principal, wsID, id string) (store.Task, error)
	List(ctx context.Context, p auth.Principal, f tasks.ListFilter) ([]store.Task, error)
	Totals(ctx context.Context, p auth.Principal, f store.TaskTotalsFilter) (store.TaskTotals, error)
	Events(ctx context.Context, p auth.Principal, wsID, id string, afterSeq int64, limit int) ([]tasks.Event, bool, error)
	EventsFrom(ctx context.Context, p auth.Principal, wsID, id string, c tasks.Cursor, limit int) ([]tasks.Event, bool, error)
	Diff(ctx context.Context, p auth.Principal, wsID, id string) ([]byte, error)
	Transcript(ctx context.Context, p auth.Principal, wsID, id string) (io.ReadCloser, error)
	SetCredential(ctx context.Context, p auth.Principal, scope, owner, kind, value string) error
	ClearCredential(ctx context.Context, p auth.Principal, scope, owner string) error
	Credential(ctx context.Context, p auth.Principal, scope, owner string) (tasks.CredentialInfo, error)
	HasCredential(ctx context.Context, wsID, userID string) bool
}

// taskForm reads the new-task form as typed.
func taskForm(c *fiber.Ctx) taskview.Form {
	return taskview.Form{
		Prompt:             c.FormValue("prompt"),
		Model:              c.FormValue("model"),
		MaxTurns:           c.FormValue("max_turns"),
		PermissionMode:     c.FormValue("permission_mode"),
		AllowedTools:       c.FormValue("allowed_tools"),
		DisallowedTools:    c.FormValue("disallowed_tools"),
		AppendSystemPrompt: c.FormValue("append_system_prompt"),
	}
}

// taskInput turns the form into a service request.
func taskInput(f taskview.Form, parent string) (tasks.Input, error) {
	in := tasks.Input{Prompt: f.Prompt, ParentID: parent, Options: tasks.Options{
		Model:              f.Model,
		PermissionMode:     f.PermissionMode,
		AllowedTools:       tasks.SplitTools(f.AllowedTools),
		DisallowedTools:    tasks.SplitTools(f.DisallowedTools),
		AppendSystemPrompt: f.AppendSystemPrompt,
	}}
	if s := strings.TrimSpace(f.MaxTurns); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return in, &tasks.ErrInvalid{Field: "max_turns", Msg: "Max turns is a whole number of 1 or more."}
		}
		in.Options.MaxTurns = n
	}
	return in, nil
}

func (s *Server) tasksTabProps(c *fiber.Ctx, f taskview.Form) (taskview.TabProps, error) {
	p := principal(c)
	w := loadedWorkspace(c)
	acc := loadedAccess(c)
	ctx := c.UserContext()
	list, err := s.Tasks.List(ctx, p, tasks.ListFilter{WorkspaceID: w.ID, Limit: 50})
	if err != nil {
		return taskview.TabProps{}, err
	}
	totals, err := s.Tasks.Totals(ctx, p, store.TaskTotalsFilter{WorkspaceID: w.ID})
	if err != nil {
		return taskview.TabProps{}, err
	}
	if f.PermissionMode == "" {
		f.PermissionMode = s.Config.Tasks.DefaultPermissionMode
	}
	props := taskview.TabProps{
		User: p, Workspace: w, Access: acc, Tasks: list, Totals: totals, Form: f, CSRF: csrfOf(c),
		CanRun:        auth.AllowedOn(p, tasks.ActTaskRun, acc),
		CanManageCred: auth.AllowedOn(p, auth.ActWorkspaceManage, acc),
		HasCred:       s.Tasks.HasCredential(ctx, w.ID, p.UserID),
	}
	if props.CanManageCred {
		if props.Cred, err = s.Tasks.Credential(ctx, p, tasks.ScopeWorkspace, w.ID); err != nil {
			return props, err
		}
	}
	return props, nil
}

// tasksTab is the workspace's Tasks tab.
func (s *Server) tasksTab(c *fiber.Ctx) error {
	props, err := s.tasksTabProps(c, taskview.Form{})
	if err != nil {
		return err
	}
	lp := s.layoutProps(c, props.Workspace.Name+" · Tasks", "workspaces")
	return page(c, fiber.StatusOK, lp, taskview.Tab(props))
}

// createTask queues a task or a follow-up (form field parent). Bad input
// comes back with the form as typed.
func (s *Server) createTask(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	f := taskForm(c)
	parent := c.FormValue("parent")
	in, err := taskInput(f, parent)
	var t store.Task
	if err == nil {
		t, err = s.Tasks.Create(c.UserContext(), principal(c), w.ID, in)
	}
	var inv *tasks.ErrInvalid
	if errors.As(err, &inv) {
		f.Error, f.ErrorField = inv.Msg, inv.Field
		if parent != "" {
			return s.renderTaskDetail(c, parent, f, fiber.StatusUnprocessableEntity)
		}
		props, perr := s.tasksTabProps(c, f)
		if perr != nil {
			return perr
		}
		lp := s.layoutProps(c, w.Name+" · Tasks", "workspaces")
		return page(c, fiber.StatusUnprocessableEntity, lp, taskview.Tab(props))
	}
	if err != nil {
		return err
	}
	return redirect(c, "/workspaces/"+w.ID+"/tasks/"+t.ID)
}

// historyLimit bounds the events a task page renders; the transcript
// download has them all.
const historyLimit = 2000

func (s *Server) renderTaskDetail(c *fiber.Ctx, id string, f taskview.Form, status int) error {
	p := principal(c)
	w := loadedWorkspace(c)
	ctx := c.UserContext()
	t, err := s.Tasks.Get(ctx, p, w.ID, id)
	if err != nil {
		return err
	}
	evs, more, err := s.Tasks.Events(ctx, p, w.ID, id, 0, historyLimit)
	if err != nil {
		return err
	}
	o := tasks.DecodeOptions(t.Options)
	if f.PermissionMode == "" {
		f.PermissionMode = o.PermissionMode
		f.Model = o.Model
	}
	props := taskview.DetailProps{
		User: p, Workspace: w, Access: loadedAccess(c), Task: t, Options: o, Events: evs, More: more,
		CanRun: auth.AllowedOn(p, tasks.ActTaskRun, loadedAccess(c)), CSRF: csrfOf(c), FollowUp: f,
	}
	lp := s.layoutProps(c, "Task · "+w.Name, "workspaces")
	lp.Scripts = []string{"tasks.js"}
	return page(c, status, lp, taskview.Detail(props))
}

// taskDetail is one task's page.
func (s *Server) taskDetail(c *fiber.Ctx) error {
	return s.renderTaskDetail(c, c.Params("tid"), taskview.Form{}, fiber.StatusOK)
}

func (s *Server) cancelTask(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	t, err := s.Tasks.Cancel(c.UserContext(), principal(c), w.ID, c.Params("tid"))
	if errors.Is(err, tasks.ErrFinished) {
		s.setFlash(c, "The task had already finished.")
		return redirect(c, "/workspaces/"+w.ID+"/tasks/"+t.ID)
	}
	if err != nil {
		return err
	}
	if t.Status == store.TaskCancelled {
		s.setFlash(c, "Task cancelled.")
	} else {
		s.setFlash(c, "Cancelling: Claude is being interrupted.")
	}
	return redirect(c, "/workspaces/"+w.ID+"/tasks/"+t.ID)
}

func (s *Server) retryTask(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	t, err := s.Tasks.Retry(c.UserContext(), principal(c), w.ID, c.Params("tid"))
	if err != nil {
		return err
	}
	s.setFlash(c, "Queued again as a new task.")
	return redirect(c, "/workspaces/"+w.ID+"/tasks/"+t.ID)
}

// taskDiff answers the unified diff: as a download, or (view=1) as text
// for the page to show.
func (s *Server) taskDiff(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	d, err := s.Tasks.Diff(c.UserContext(), principal(c), w.ID, c.Params("tid"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	c.Set("X-Content-Type-Options", "nosniff")
	if c.Query("view") == "" {
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="task-`+c.Params("tid")+`.patch"`)
		return c.Send(d)
	}
	// Shown inside a <pre> by htmx: escaped, never markup.
	text := html.EscapeString(string(d))
	if text == "" {
		text = "(no changes)"
	}
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.SendString(text)
}

// taskTranscript downloads the whole transcript (JSON lines).
func (s *Server) taskTranscript(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	rc, err := s.Tasks.Transcript(c.UserContext(), principal(c), w.ID, c.Params("tid"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/x-ndjson")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="task-`+c.Params("tid")+`.jsonl"`)
	return c.SendStream(rc)
}

// streamCoalesce is how long a task stream gathers events before writing
// them: well under what a person notices, and it spares a busy server a
// wake-up and a write per event and viewer.
const streamCoalesce = 10 * time.Millisecond

// taskStreamBuffer bounds a task viewer's queue; a viewer further behind
// catches up from the transcript instead.
const taskStreamBuffer = 16384

// taskStream sends a task's events after ?after= (or Last-Event-ID on a
// reconnect), then live ones as they come, each with its sequence number
// as the event id; status changes re-render the summary. A viewer that
// falls behind, or misses a message, catches up from the transcript, so
// it never skips or repeats an event.
func (s *Server) taskStream(c *fiber.Ctx) error {
	p := principal(c)
	w := loadedWorkspace(c)
	id := c.Params("tid")
	if _, err := s.Tasks.Get(c.UserContext(), p, w.ID, id); err != nil {
		return err
	}
	after, _ := strconv.ParseInt(c.Get("Last-Event-ID"), 10, 64)
	if q, err := strconv.ParseInt(c.Query("after"), 10, 64); err == nil && q > after {
		after = q
	}
	canRun := auth.AllowedOn(p, tasks.ActTaskRun, loadedAccess(c))
	csrf := csrfOf(c)
	sseHeaders(c)
	ctx := s.Streams
	c.Context().SetBodyStreamWriter(fasthttp.StreamWriter(func(bw *bufio.Writer) {
		sub := s.Bus.Subscribe(tasks.TopicTask(id), taskStreamBuffer)
		defer sub.Close()
		if sseOpen(bw) != nil {
			return
		}
		sw := &sseWriter{w: bw}
		last, lastEnd := after, int64(0)
		send := func(e tasks.Event) {
			if sw.err == nil {
				_, sw.err = bw.Write(s.eventFrame(id, e))
			}
			last, lastEnd = e.Seq, e.End
		}
		catchUp := func() bool {
			for {
				evs, more, err := s.Tasks.EventsFrom(ctx, p, w.ID, id, tasks.Cursor{Seq: last, Pos: lastEnd}, 500)
				if err != nil {
					return false
				}
				for _, e := range evs {
					send(e)
				}
				if sw.flush() != nil {
					return false
				}
				if !more {
					return true
				}
			}
		}
		status := func(t store.Task) bool {
			sw.html("status", taskview.Status(t, tasks.DecodeOptions(t.Options), canRun, csrf))
			if t.Status.Final() {
				if !catchUp() {
					return false
				}
				sw.html("outcome", taskview.Outcome(t, canRun, csrf, taskview.Form{PermissionMode: tasks.DecodeOptions(t.Options).PermissionMode}))
				sw.raw("end", []byte(string(t.Status)))
			}
			return sw.flush() == nil && !t.Status.Final()
		}
		if !catchUp() {
			return
		}
		t, err := s.Tasks.Get(ctx, p, w.ID, id)
		if err != nil || !status(t) {
			return
		}
		// handle writes one bus message; false ends the stream.
		handle := func(msg any) bool {
			u, ok := msg.(tasks.Update)
			switch {
			case !ok:
			case u.Event != nil:
				if u.Event.Seq <= last {
					return true
				}
				if u.Event.Seq > last+1 {
					// A gap: read what was missed from the transcript.
					if !catchUp() {
						return false
					}
					if u.Event.Seq <= last {
						return true
					}
				}
				send(*u.Event)
			case u.Task != nil:
				return status(*u.Task)
			}
			return sw.err == nil
		}
		tick := time.NewTicker(heartbeatEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sw.comment("ping")
				if sw.flush() != nil {
					return
				}
			case msg := <-sub.C():
				// Events come in bursts: gather what arrives in a short
				// window and write it at once, rather than wake and write
				// per event for every viewer.
				time.Sleep(streamCoalesce)
				for more := true; more; {
					if sub.Lagged() && !catchUp() {
						return
					}
					if !handle(msg) {
						return
					}
					select {
					case msg = <-sub.C():
					default:
						more = false
					}
				}
				if sw.flush() != nil {
					return
				}
			}
		}
	}))
	return nil
}

// eventCacheSize is how many rendered events eventHTML keeps: a burst's
// worth, so every viewer of a busy task reuses what the first rendered.
const eventCacheSize = 4096

// eventCache keeps task events as rendered HTML. An event renders the
// same for every viewer, so ten viewers of a task cost one render.
type eventCache struct {
	mu    sync.Mutex
	m     map[string][]byte
	order []string // ring of keys, oldest at next
	next  int
}

func (c *eventCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[k]
	return b, ok
}

func (c *eventCache) put(k string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string][]byte, eventCacheSize)
		c.order = make([]string, eventCacheSize)
	}
	if _, ok := c.m[k]; ok {
		return
	}
	if old := c.order[c.next]; old != "" {
		delete(c.m, old)
	}
	c.order[c.next] = k
	c.next = (c.next + 1) % eventCacheSize
	c.m[k] = b
}

// eventFrame is one event of a task as its stream sends it (id, name
// and rendered HTML, framed), made once for all its viewers.
func (s *Server) eventFrame(taskID string, e tasks.Event) []byte {
	key := taskID + "/" + strconv.FormatInt(e.Seq, 10)
	if b, ok := s.events.get(key); ok {
		return b
	}
	v, _, _ := s.renders.Do("ev|"+key, func() (any, error) {
		var html bytes.Buffer
		if err := taskview.EventItem(e).Render(context.Background(), &html); err != nil {
			s.Log.Warn("render task event", "task", taskID, "seq", e.Seq, "err", err)
		}
		var frame bytes.Buffer
		frame.Grow(html.Len() + 64)
		frame.WriteString("id: ")
		frame.WriteString(strconv.FormatInt(e.Seq, 10))
		frame.WriteByte('\n')
		appendEvent(&frame, "ev", html.Bytes())
		b := frame.Bytes()
		s.events.put(key, b)
		return b, nil
	})
	return v.([]byte)
}

// taskList is the global list across workspaces.
func (s *Server) taskList(c *fiber.Ctx) error {
	p := principal(c)
	ctx := c.UserContext()
	f := tasks.ListFilter{Mine: c.Query("mine") != "", Limit: 50}
	st := store.TaskStatus(c.Query("status"))
	if st != "" {
		if !st.Valid() {
			return fiber.NewError(fiber.StatusBadRequest, "unknown status filter")
		}
		f.Statuses = []store.TaskStatus{st}
	}
	if b := c.Query("before"); b != "" {
		at, id, ok := strings.Cut(b, "_")
		ms, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || id == "" {
			return fiber.NewError(fiber.StatusBadRequest, "bad page cursor")
		}
		f.Before = &store.TaskCursor{CreatedAt: time.UnixMicro(ms).UTC(), ID: id}
	}
	list, err := s.Tasks.List(ctx, p, f)
	if err != nil {
		return err
	}
	totals, err := s.Tasks.Totals(ctx, p, store.TaskTotalsFilter{CreatedBy: p.UserID})
	if err != nil {
		return err
	}
	props := taskview.ListProps{User: p, Tasks: list, Status: string(st), Mine: f.Mine, Totals: totals}
	if len(list) == f.Limit {
		last := list[len(list)-1]
		q := url.Values{}
		if st != "" {
			q.Set("status", string(st))
		}
		if f.Mine {
			q.Set("mine", "1")
		}
		q.Set("before", strconv.FormatInt(last.CreatedAt.UnixMicro(), 10)+"_"+last.ID)
		props.Next = "/tasks?" + q.Encode()
	}
	lp := s.layoutProps(c, "Tasks", "tasks")
	return page(c, fiber.StatusOK, lp, taskview.List(props))
}

// setWorkspaceCredential and setUserCredential store a Claude credential.
func (s *Server) setWorkspaceCredential(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	return s.setCredential(c, tasks.ScopeWorkspace, w.ID, "/workspaces/"+w.ID+"/tasks")
}

func (s *Server) clearWorkspaceCredential(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	return s.clearCredential(c, tasks.ScopeWorkspace, w.ID, "/workspaces/"+w.ID+"/tasks")
}

func (s *Server) setUserCredential(c *fiber.Ctx) error {
	return s.setCredential(c, tasks.ScopeUser, principal(c).UserID, "/account")
}

func (s *Server) clearUserCredential(c *fiber.Ctx) error {
	return s.clearCredential(c, tasks.ScopeUser, principal(c).UserID, "/account")
}

func (s *Server) setCredential(c *fiber.Ctx, scope, owner, back string) error {
	err := s.Tasks.SetCredential(c.UserContext(), principal(c), scope, owner, c.FormValue("kind"), c.FormValue("value"))
	var inv *tasks.ErrInvalid
	if errors.As(err, &inv) {
		s.setFlash(c, inv.Msg)
		return redirect(c, back)
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "Claude credentials saved. They are stored encrypted and never shown again.")
	return redirect(c, back)
}

func (s *Server) clearCredential(c *fiber.Ctx, scope, owner, back string) error {
	if err := s.Tasks.ClearCredential(c.UserContext(), principal(c), scope, owner); err != nil {
		return err
	}
	s.setFlash(c, "Claude credentials removed.")
	return redirect(c, back)
}

// accountCredential is the account page's Claude credentials card (none
// for viewers, who run no tasks).
func (s *Server) accountCredential(c *fiber.Ctx) templ.Component {
	p := principal(c)
	if s.Tasks == nil || p.Role == store.RoleViewer {
		return nil
	}
	info, err := s.Tasks.Credential(c.UserContext(), p, tasks.ScopeUser, p.UserID)
	if err != nil {
		s.Log.Warn("read credential", "err", err)
		return nil
	}
	return taskview.CredentialCard("Your Claude credentials", "/account/claude", info, csrfOf(c),
		"Used for the tasks you queue, unless the workspace has its own. Stored encrypted; never shown again.")
}
