package handlers

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/files"
	"aicode/services/snapshot"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/services/workspace"
)

// Route is one entry of the route table: every route states who may use
// it, and guard enforces that before the handler runs.
type Route struct {
	Method string
	Path   string
	// Public routes need no session (health, static files, sign-in).
	Public bool
	// Action is what a signed-in principal must be allowed to do.
	Action auth.Action
	// Workspace: the :id parameter names a workspace whose owner decides.
	Workspace bool
	Handler   fiber.Handler
}

// Routes returns the route table (exported for the authorization tests).
func (s *Server) Routes() []Route { return s.routes() }

func (s *Server) routes() []Route {
	g, p := fiber.MethodGet, fiber.MethodPost
	return []Route{
		{Method: g, Path: "/healthz", Public: true, Handler: s.healthz},
		{Method: g, Path: "/readyz", Public: true, Handler: s.readyz},
		// Metrics have their own access rule (a token, else loopback only).
		{Method: g, Path: "/metrics", Public: true, Handler: s.metricsRoute()},
		{Method: g, Path: "/static/*", Public: true, Handler: s.static},
		{Method: g, Path: "/favicon.ico", Public: true, Handler: s.favicon},

		{Method: g, Path: "/setup", Public: true, Handler: s.setupForm},
		{Method: p, Path: "/setup", Public: true, Handler: s.setup},
		{Method: g, Path: "/login", Public: true, Handler: s.loginForm},
		{Method: p, Path: "/login", Public: true, Handler: s.login},
		// Sign-up exists with Supabase only (auth_supabase.go).
		{Method: g, Path: "/signup", Public: true, Handler: s.signUpForm},
		{Method: p, Path: "/signup", Public: true, Handler: s.signUp},
		{Method: p, Path: "/logout", Action: auth.ActSelf, Handler: s.logout},
		{Method: g, Path: "/account", Action: auth.ActSelf, Handler: s.account},
		{Method: p, Path: "/account/password", Action: auth.ActSelf, Handler: s.changePassword},

		{Method: g, Path: "/", Action: auth.ActSelf, Handler: s.home},
		{Method: g, Path: "/workspaces", Action: auth.ActWorkspaceList, Handler: s.listWorkspaces},
		{Method: p, Path: "/workspaces", Action: auth.ActWorkspaceCreate, Handler: s.createWorkspace},
		{Method: g, Path: "/workspaces/events", Action: auth.ActWorkspaceList, Handler: s.listEvents},
		{Method: g, Path: "/workspaces/:id", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.showWorkspace},
		{Method: g, Path: "/workspaces/:id/events", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.workspaceEvents},
		{Method: p, Path: "/workspaces/:id/start", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.workspaceAction(workspace.ActionStart)},
		{Method: p, Path: "/workspaces/:id/stop", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.workspaceAction(workspace.ActionStop)},
		{Method: p, Path: "/workspaces/:id/restart", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.workspaceAction(workspace.ActionRestart)},
		{Method: g, Path: "/workspaces/:id/delete", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.confirmDelete},
		{Method: p, Path: "/workspaces/:id/delete", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.deleteWorkspace},
		{Method: g, Path: "/workspaces/:id/monitor", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.monitorTab},
		{Method: g, Path: "/workspaces/:id/monitor/stream", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.monitorStream},
		{Method: g, Path: "/workspaces/:id/monitor/history", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.monitorHistory},
		{Method: g, Path: "/fleet", Action: auth.ActFleetView, Handler: s.fleetPage},
		{Method: g, Path: "/fleet/stream", Action: auth.ActFleetView, Handler: s.fleetStream},
		{Method: p, Path: "/workspaces/:id/shares", Action: auth.ActWorkspaceShare, Workspace: true, Handler: s.addShare},
		{Method: p, Path: "/workspaces/:id/shares/:uid/delete", Action: auth.ActWorkspaceShare, Workspace: true, Handler: s.removeShare},

		{Method: g, Path: "/workspaces/:id/terminal", Action: auth.ActTerminalView, Workspace: true, Handler: s.terminalTab},
		{Method: p, Path: "/workspaces/:id/terminals", Action: auth.ActTerminalWrite, Workspace: true, Handler: s.openTerminal},
		{Method: g, Path: "/workspaces/:id/terminals/:tid", Action: auth.ActTerminalView, Workspace: true, Handler: s.terminalFull},
		{Method: p, Path: "/workspaces/:id/terminals/:tid/rename", Action: auth.ActTerminalWrite, Workspace: true, Handler: s.atTerminalOwner(s.renameTerminal)},
		{Method: p, Path: "/workspaces/:id/terminals/:tid/close", Action: auth.ActTerminalWrite, Workspace: true, Handler: s.atTerminalOwner(s.closeTerminal)},
		{Method: g, Path: "/workspaces/:id/terminals/:tid/ws", Action: auth.ActTerminalView, Workspace: true, Handler: s.withChecks(s.checkWebSocket, s.atTerminalOwner(s.terminalSocket()))},
		{Method: g, Path: "/workspaces/:id/logs", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.logsTab},
		{Method: g, Path: "/workspaces/:id/logs/stream", Action: auth.ActWorkspaceView, Workspace: true, Handler: s.logsStream},
		{Method: g, Path: "/workspaces/:id/snapshots", Action: snapshot.ActList, Workspace: true, Handler: s.snapshotsTab},
		{Method: p, Path: "/workspaces/:id/snapshots", Action: snapshot.ActCreate, Workspace: true, Handler: s.createSnapshot},
		{Method: p, Path: "/workspaces/:id/snapshots/schedule", Action: snapshot.ActSchedule, Workspace: true, Handler: s.setSnapshotSchedule},
		{Method: p, Path: "/workspaces/:id/snapshots/:sid/restore", Action: snapshot.ActRestore, Workspace: true, Handler: s.restoreSnapshot},
		{Method: p, Path: "/workspaces/:id/snapshots/:sid/delete", Action: snapshot.ActDelete, Workspace: true, Handler: s.deleteSnapshot},
		{Method: g, Path: "/workspaces/:id/files", Action: files.ActView, Workspace: true, Handler: s.filesTab},
		{Method: g, Path: "/workspaces/:id/files/download", Action: files.ActView, Workspace: true, Handler: s.downloadFile},
		{Method: g, Path: "/workspaces/:id/files/archive", Action: files.ActView, Workspace: true, Handler: s.downloadFolder},
		{Method: p, Path: "/workspaces/:id/files/upload", Action: files.ActWrite, Workspace: true, Handler: s.uploadFiles},

		{Method: g, Path: "/tasks", Action: auth.ActWorkspaceList, Handler: s.taskList},
		{Method: g, Path: "/workspaces/:id/tasks", Action: tasks.ActTaskView, Workspace: true, Handler: s.tasksTab},
		{Method: p, Path: "/workspaces/:id/tasks", Action: tasks.ActTaskRun, Workspace: true, Handler: s.limitTaskCreation(s.createTask)},
		{Method: g, Path: "/workspaces/:id/tasks/:tid", Action: tasks.ActTaskView, Workspace: true, Handler: s.taskDetail},
		{Method: g, Path: "/workspaces/:id/tasks/:tid/stream", Action: tasks.ActTaskView, Workspace: true, Handler: s.taskStream},
		{Method: g, Path: "/workspaces/:id/tasks/:tid/diff", Action: tasks.ActTaskView, Workspace: true, Handler: s.taskDiff},
		{Method: g, Path: "/workspaces/:id/tasks/:tid/transcript", Action: tasks.ActTaskView, Workspace: true, Handler: s.taskTranscript},
		{Method: p, Path: "/workspaces/:id/tasks/:tid/cancel", Action: tasks.ActTaskRun, Workspace: true, Handler: s.cancelTask},
		{Method: p, Path: "/workspaces/:id/tasks/:tid/retry", Action: tasks.ActTaskRun, Workspace: true, Handler: s.retryTask},
		{Method: p, Path: "/workspaces/:id/claude", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.setWorkspaceCredential},
		{Method: p, Path: "/workspaces/:id/claude/delete", Action: auth.ActWorkspaceManage, Workspace: true, Handler: s.clearWorkspaceCredential},
		{Method: p, Path: "/account/claude", Action: auth.ActSelf, Handler: s.setUserCredential},
		{Method: p, Path: "/account/claude/delete", Action: auth.ActSelf, Handler: s.clearUserCredential},

		{Method: g, Path: "/admin/users", Action: auth.ActUserManage, Handler: s.listUsers},
		{Method: p, Path: "/admin/users", Action: auth.ActUserManage, Handler: s.createUser},
		{Method: p, Path: "/admin/users/:uid/role", Action: auth.ActUserManage, Handler: s.setRole},
		{Method: p, Path: "/admin/users/:uid/disable", Action: auth.ActUserManage, Handler: s.setDisabled(true)},
		{Method: p, Path: "/admin/users/:uid/enable", Action: auth.ActUserManage, Handler: s.setDisabled(false)},
		{Method: p, Path: "/admin/users/:uid/password", Action: auth.ActUserManage, Handler: s.resetPassword},
		{Method: g, Path: "/admin/audit", Action: auth.ActAuditView, Handler: s.listAudit},
	}
}

const (
	localsAuth      = "auth"
	localsWorkspace = "workspace"
	localsAccess    = "access"
)

// guard enforces a route's access rule. Anonymous visitors are sent to
// sign in; workspaces the principal may not see are 404 (their ids leak
// nothing); visible but forbidden actions are 403 and audited.
func (s *Server) guard(rt Route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if rt.Public {
			return c.Next()
		}
		a, ok := c.Locals(localsAuth).(*auth.Authenticated)
		if !ok {
			return s.signInFirst(c)
		}
		p := a.Principal
		var acc auth.Access
		if rt.Workspace {
			w, a, err := s.Workspaces.GetWithAccess(c.UserContext(), p, c.Params("id"))
			if err != nil {
				if errors.Is(err, workspace.ErrNotFound) && c.Method() != fiber.MethodGet {
					s.deny(c, p, rt, "not found or not visible")
				}
				return err
			}
			c.Locals(localsWorkspace, w)
			c.Locals(localsAccess, a)
			acc = a
		}
		if !auth.AllowedOn(p, rt.Action, acc) {
			if c.Method() != fiber.MethodGet {
				s.deny(c, p, rt, "")
			}
			return auth.ErrForbidden
		}
		return c.Next()
	}
}

func (s *Server) deny(c *fiber.Ctx, p auth.Principal, rt Route, detail string) {
	// Audit refused changes; refused reads are only logged.
	s.auditRecorder().Record(c.UserContext(), audit.Entry{
		Actor:        audit.Actor{ID: p.UserID, Name: p.Username},
		Action:       string(rt.Action),
		ResourceType: resourceType(rt),
		ResourceID:   firstNonEmpty(c.Params("id"), c.Params("uid")),
		Result:       audit.ResultDenied,
		Detail:       strings.TrimSpace(c.Method() + " " + c.Path() + " " + detail),
	})
}

func resourceType(rt Route) string {
	switch {
	case rt.Workspace || strings.HasPrefix(rt.Path, "/workspaces"):
		return "workspace"
	case strings.HasPrefix(rt.Path, "/admin/users"):
		return "user"
	}
	return ""
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// signInFirst answers an anonymous request for a protected route.
func (s *Server) signInFirst(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodGet || isStream(c.Path()) {
		return auth.ErrUnauthenticated
	}
	target := "/login"
	if c.Path() != "/" {
		target += "?next=" + url.QueryEscape(string(c.Request().URI().RequestURI()))
	}
	return redirect(c, target)
}

// principal returns the signed-in principal (guard guarantees one).
func principal(c *fiber.Ctx) auth.Principal {
	if a, ok := c.Locals(localsAuth).(*auth.Authenticated); ok {
		return a.Principal
	}
	return auth.Principal{}
}

// session returns the signed-in session, if any.
func session(c *fiber.Ctx) *auth.Authenticated {
	a, _ := c.Locals(localsAuth).(*auth.Authenticated)
	return a
}

// loadedAccess returns the principal's access to the route's workspace.
func loadedAccess(c *fiber.Ctx) auth.Access {
	a, _ := c.Locals(localsAccess).(auth.Access)
	return a
}

// loadedWorkspace returns the workspace guard loaded for the route.
func loadedWorkspace(c *fiber.Ctx) store.Workspace {
	w, _ := c.Locals(localsWorkspace).(store.Workspace)
	return w
}

// isStream: event streams and WebSockets, which compression and the usual
// error pages must leave alone.
func isStream(path string) bool {
	return strings.HasSuffix(path, "/events") || strings.HasSuffix(path, "/stream") || strings.HasSuffix(path, "/ws")
}

// withChecks runs check before h, stopping at its error.
func (s *Server) withChecks(check func(*fiber.Ctx) error, h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := check(c); err != nil {
			return err
		}
		return h(c)
	}
}
