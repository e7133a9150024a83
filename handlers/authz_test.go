package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/terminal"
	"aicode/testutil"
)

// The authorization rules as a table: every route × role × ownership.
//
// Each entry lists the outcome for admin, member and viewer acting on a
// workspace they own ("o") and on someone else's ("x"); routes without a
// workspace use the same outcome for both. "ok" means the request got past
// authorization (whatever the handler then answered), "403" forbidden,
// "404" not found (the workspace is invisible to them). Anonymous visitors
// are always sent to sign in.
type expect struct {
	// public routes need no session; anon is what a visitor gets.
	public     bool
	anon       string
	admin      [2]string // own, other's
	member     [2]string
	viewer     [2]string
	formValues url.Values
}

var ok2 = [2]string{"ok", "ok"}
var forbid2 = [2]string{"403", "403"}

var authzTable = map[string]expect{
	"GET /healthz":     {public: true, anon: "ok"},
	"GET /readyz":      {public: true, anon: "ok"},
	"GET /metrics":     {public: true, anon: "ok"}, // loopback, no token: served (metrics_test.go)
	"GET /static/*":    {public: true, anon: "ok"},
	"GET /favicon.ico": {public: true, anon: "ok"},
	// Setup is done, so its form sends visitors to sign in instead.
	"GET /setup":  {public: true, anon: "login"},
	"POST /setup": {public: true, anon: "ok"},
	"GET /login":  {public: true, anon: "ok"},
	// Wrong credentials: 401.
	"POST /login": {public: true, anon: "login"},
	// Sign-up exists with Supabase only: built-in accounts are made by admins.
	"GET /signup":  {public: true, anon: "login"},
	"POST /signup": {public: true, anon: "404"},
	"POST /logout": {admin: ok2, member: ok2, viewer: ok2},
	"GET /account": {admin: ok2, member: ok2, viewer: ok2},
	"POST /account/password": {admin: ok2, member: ok2, viewer: ok2,
		formValues: url.Values{"current": {"wrong"}, "password": {"x"}, "password2": {"x"}}},
	"GET /":                        {admin: ok2, member: ok2, viewer: ok2},
	"GET /workspaces":              {admin: ok2, member: ok2, viewer: ok2},
	"POST /workspaces":             {admin: ok2, member: ok2, viewer: forbid2, formValues: url.Values{"name": {"Bad Name"}}},
	"GET /workspaces/events":       {admin: ok2, member: ok2, viewer: ok2},
	"GET /workspaces/:id":          {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"GET /workspaces/:id/events":   {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"POST /workspaces/:id/start":   {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /workspaces/:id/stop":    {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /workspaces/:id/restart": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"GET /workspaces/:id/delete":   {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /workspaces/:id/delete": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"files": {"neither"}}},
	"POST /workspaces/:id/shares": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"username": {"nobody-at-all"}}},
	"POST /workspaces/:id/shares/:uid/delete": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	// Terminals: viewers watch only their own (or shared ones), never type.
	"GET /workspaces/:id/terminal":               {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"POST /workspaces/:id/terminals":             {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"GET /workspaces/:id/terminals/:tid":         {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"POST /workspaces/:id/terminals/:tid/rename": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2, formValues: url.Values{"name": {"renamed"}}},
	"POST /workspaces/:id/terminals/:tid/close":  {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"GET /workspaces/:id/terminals/:tid/ws":      {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	// Logs and events: whoever sees a workspace reads them.
	"GET /workspaces/:id/logs":        {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"GET /workspaces/:id/logs/stream": {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	// Monitoring: whoever sees a workspace sees its figures; the fleet is
	// for admins.
	"GET /workspaces/:id/monitor":         {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"GET /workspaces/:id/monitor/stream":  {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"GET /workspaces/:id/monitor/history": {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"GET /fleet":                          {admin: ok2, member: forbid2, viewer: forbid2},
	"GET /fleet/stream":                   {admin: ok2, member: forbid2, viewer: forbid2},
	"GET /admin/users":                    {admin: ok2, member: forbid2, viewer: forbid2},
	"POST /admin/users":                   {admin: ok2, member: forbid2, viewer: forbid2, formValues: url.Values{"username": {"x"}}},
	"POST /admin/users/:uid/role": {admin: ok2, member: forbid2, viewer: forbid2,
		formValues: url.Values{"role": {"nonsense"}}},
	"POST /admin/users/:uid/disable": {admin: ok2, member: forbid2, viewer: forbid2},
	"POST /admin/users/:uid/enable":  {admin: ok2, member: forbid2, viewer: forbid2},
	"POST /admin/users/:uid/password": {admin: ok2, member: forbid2, viewer: forbid2,
		formValues: url.Values{"password": {"short"}}},
	"GET /admin/audit": {admin: ok2, member: forbid2, viewer: forbid2},
	// Tasks: read like a terminal is watched, queued and stopped like one
	// is typed into; credentials by whoever manages the workspace, or the
	// user themselves (viewers run nothing).
	"GET /tasks":                                {admin: ok2, member: ok2, viewer: ok2},
	"GET /workspaces/:id/tasks":                 {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"POST /workspaces/:id/tasks":                {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2, formValues: url.Values{"prompt": {""}}},
	"GET /workspaces/:id/tasks/:tid":            {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"GET /workspaces/:id/tasks/:tid/stream":     {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"GET /workspaces/:id/tasks/:tid/diff":       {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"GET /workspaces/:id/tasks/:tid/transcript": {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"POST /workspaces/:id/tasks/:tid/cancel":    {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /workspaces/:id/tasks/:tid/retry":     {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /workspaces/:id/claude": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"kind": {"api_key"}, "value": {"short"}}},
	"POST /workspaces/:id/claude/delete": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	"POST /account/claude": {admin: ok2, member: ok2, viewer: forbid2,
		formValues: url.Values{"kind": {"api_key"}, "value": {"short"}}},
	"POST /account/claude/delete": {admin: ok2, member: ok2, viewer: forbid2},
	// Snapshots: listed by whoever sees the workspace, taken by whoever
	// may type in it, restored, deleted and scheduled by its manager.
	"GET /workspaces/:id/snapshots": {admin: ok2, member: [2]string{"ok", "404"}, viewer: ok2},
	"POST /workspaces/:id/snapshots": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"label": {strings.Repeat("x", 101)}}},
	"POST /workspaces/:id/snapshots/schedule": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"interval_hours": {"0"}}},
	"POST /workspaces/:id/snapshots/:sid/restore": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2,
		formValues: url.Values{"mode": {"nonsense"}}},
	"POST /workspaces/:id/snapshots/:sid/delete": {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
	// Files show as much as a terminal: read like one is watched, written
	// like one is typed into.
	"GET /workspaces/:id/files":          {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"GET /workspaces/:id/files/download": {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"GET /workspaces/:id/files/archive":  {admin: ok2, member: [2]string{"ok", "404"}, viewer: [2]string{"ok", "403"}},
	"POST /workspaces/:id/files/upload":  {admin: ok2, member: [2]string{"ok", "404"}, viewer: forbid2},
}

type actor struct {
	user  store.User
	owned string // id of a workspace this user owns
}

// session inserts a session directly (no password hashing per request) and
// returns its cookie token and CSRF token.
func newSession(t *testing.T, st store.Store, userID string) (token, csrf string) {
	t.Helper()
	token = fmt.Sprintf("tok-%s-%d", userID, time.Now().UnixNano())
	csrf = "csrf-" + token
	now := time.Now().UTC()
	if err := st.CreateSession(context.Background(), store.Session{ID: auth.SessionID(token), UserID: userID, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return token, csrf
}

func TestAuthorizationTable(t *testing.T) {
	// The engine is deliberately unreachable: no request that gets past
	// authorization changes a container, and those that would answer 503.
	s := testutil.StartServer(t, testutil.Options{
		Image: "aicode-test:unused",
		Env:   map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
	})
	ctx := context.Background()
	st := s.App.Store
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("member", adminPW, "member")
	admin.CreateUser("other", adminPW, "member")
	admin.CreateUser("viewer", adminPW, "viewer")
	admin.CreateUser("target", adminPW, "member")

	users := map[string]*actor{}
	for _, name := range []string{"admin", "member", "other", "viewer", "target"} {
		u, err := st.GetUserByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		w := &store.Workspace{Name: "ws-" + name, OwnerID: u.ID, ProjectPath: s.MkdirInRoot(t, "ws-"+name), Image: "x",
			Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredRunning, Status: store.StatusRunning, ContainerID: "0123456789ab" + name}
		if err := st.CreateWorkspace(ctx, w); err != nil {
			t.Fatal(err)
		}
		users[name] = &actor{user: u, owned: w.ID}
	}
	target := users["target"].user.ID

	// Every route must be in the table, and every table entry a route.
	registered := map[string]bool{}
	for _, r := range s.App.Fiber.GetRoutes(true) {
		if r.Method == http.MethodHead || r.Path == "/" && r.Method == "USE" {
			continue
		}
		registered[r.Method+" "+r.Path] = true
	}
	var missing, stale []string
	for k := range registered {
		if _, ok := authzTable[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range authzTable {
		if !registered[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("authorization table out of date: routes without an entry %v; entries without a route %v", missing, stale)
	}

	for route, exp := range authzTable {
		method, path, _ := strings.Cut(route, " ")
		// A live terminal for routes that name one (a fake shell: the
		// engine is unreachable here), closed again after the request.
		concrete := func(wsID string) (string, func()) {
			p := strings.Replace(path, ":id", wsID, 1)
			p = strings.Replace(p, ":uid", target, 1)
			done := func() {}
			if strings.Contains(p, "/tasks/:tid") {
				// A finished task of the workspace (so retry has one to copy).
				tk := store.Task{WorkspaceID: wsID, CreatedBy: target, Prompt: "authz", Status: store.TaskSucceeded}
				if err := st.CreateTask(ctx, &tk); err != nil {
					t.Fatal(err)
				}
				p = strings.Replace(p, ":tid", tk.ID, 1)
			}
			if strings.Contains(p, ":sid") {
				// A finished snapshot of the workspace.
				n := store.Snapshot{WorkspaceID: wsID, CreatedBy: target, Status: store.SnapshotReady, BlobKey: "snapshots/authz/" + store.NewID() + ".tar"}
				if err := st.CreateSnapshot(ctx, &n); err != nil {
					t.Fatal(err)
				}
				p = strings.Replace(p, ":sid", n.ID, 1)
			}
			if strings.Contains(p, ":tid") {
				sess, err := s.App.Console.Manager().Open(ctx, terminal.OpenSpec{WorkspaceID: wsID}, fakeShell)
				if err != nil {
					t.Fatal(err)
				}
				done = func() { s.App.Console.Manager().Close(ctx, wsID, sess.ID(), "test over") }
				p = strings.Replace(p, ":tid", sess.ID(), 1)
			}
			return strings.Replace(p, "*", "app.js", 1), done
		}
		if exp.public {
			u, done := concrete(users["admin"].owned)
			got := do(t, s.URL, method, u, "", "", exp.formValues)
			done()
			if got != exp.anon {
				t.Errorf("%s anonymous: got %s, want %s", route, got, exp.anon)
			}
			continue
		}
		// Anonymous: always sent to sign in.
		u, done := concrete(users["member"].owned)
		got := do(t, s.URL, method, u, "", "", exp.formValues)
		done()
		if got != "login" {
			t.Errorf("%s anonymous: got %s, want login", route, got)
		}
		for _, role := range []struct {
			name string
			want [2]string
		}{{"admin", exp.admin}, {"member", exp.member}, {"viewer", exp.viewer}} {
			for i, ws := range []string{users[role.name].owned, users["other"].owned} {
				token, csrf := newSession(t, st, users[role.name].user.ID)
				u, done := concrete(ws)
				got := do(t, s.URL, method, u, token, csrf, exp.formValues)
				done()
				if got != role.want[i] {
					t.Errorf("%s as %s on %s workspace: got %s, want %s", route, role.name, []string{"own", "other's"}[i], got, role.want[i])
				}
			}
		}
	}

	// Refused changes are audited.
	denied, err := st.ListAudit(ctx, store.AuditFilter{Result: "denied", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(denied) < 10 {
		t.Errorf("only %d denied events audited", len(denied))
	}
}

// fakeShell stands in for a docker exec when the engine is not there.
func fakeShell(context.Context, terminal.Size) (terminal.Process, error) {
	r, w := io.Pipe()
	return &pipeShell{r: r, w: w}, nil
}

type pipeShell struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p *pipeShell) Read(b []byte) (int, error)                  { return p.r.Read(b) }
func (p *pipeShell) Write(b []byte) (int, error)                 { return len(b), nil }
func (p *pipeShell) Resize(context.Context, terminal.Size) error { return nil }
func (p *pipeShell) Close(context.Context) error                 { return p.w.Close() }

// do sends one request and classifies the answer. It reads only the
// headers, so event streams are fine.
func do(t *testing.T, base, method, path, token, csrf string, form url.Values) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(base)
	if token != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "aicode_session", Value: token, Path: "/"}})
	} else if method == http.MethodPost {
		// Anonymous forms carry the token derived from the CSRF cookie.
		c := testutil.NewClient(t, base)
		c.HTTP = hc
		c.Get("/login")
		csrf = c.CSRF
	}
	if form == nil {
		form = url.Values{}
	}
	req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return "login"
	case resp.StatusCode == http.StatusSeeOther && (resp.Header.Get("Location") == "/login" || strings.HasPrefix(resp.Header.Get("Location"), "/login?next=")):
		return "login"
	case resp.StatusCode == http.StatusForbidden:
		return "403"
	case resp.StatusCode == http.StatusNotFound:
		return "404"
	}
	return "ok"
}
