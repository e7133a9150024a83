// Package handlers maps HTTP routes to services and renders templ
// components. Handlers are thin: parse, call a service, render.
package handlers

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"golang.org/x/sync/singleflight"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/metrics"
	"aicode/services/store"
	"aicode/services/workspace"
)

// Accounts is what the handlers need from built-in accounts.
type Accounts interface {
	NeedsSetup(ctx context.Context) (bool, error)
	Setup(ctx context.Context, username, password string) (auth.Login, error)
	Login(ctx context.Context, username, password string) (auth.Login, error)
	Authenticate(ctx context.Context, token string) (auth.Authenticated, error)
	Logout(ctx context.Context, p auth.Principal, token string) error
	AnonCSRFToken(cookie string) string
	ListUsers(ctx context.Context, p auth.Principal) ([]store.User, error)
	CreateUser(ctx context.Context, p auth.Principal, username, password string, role store.Role) (store.User, error)
	SetRole(ctx context.Context, p auth.Principal, id string, role store.Role) (store.User, error)
	SetDisabled(ctx context.Context, p auth.Principal, id string, disabled bool) (store.User, error)
	ResetPassword(ctx context.Context, p auth.Principal, id, password string) error
	ChangeOwnPassword(ctx context.Context, p auth.Principal, current, next string) error
	Reauthenticate(ctx context.Context, p auth.Principal) (auth.Login, error)
}

// Workspaces is what the handlers need from the workspace service.
type Workspaces interface {
	Create(ctx context.Context, p auth.Principal, in workspace.CreateInput) (store.Workspace, error)
	Get(ctx context.Context, p auth.Principal, id string) (store.Workspace, error)
	GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error)
	CanSee(ctx context.Context, p auth.Principal, w store.Workspace) bool
	Shares(ctx context.Context, p auth.Principal, id string) ([]store.Share, error)
	Share(ctx context.Context, p auth.Principal, id, username string, canWrite bool) (store.Share, error)
	Unshare(ctx context.Context, p auth.Principal, id, userID string) error
	List(ctx context.Context, p auth.Principal, o workspace.ListOptions) (workspace.Page, error)
	Do(ctx context.Context, p auth.Principal, id string, a workspace.Action) (store.Workspace, error)
	Delete(ctx context.Context, p auth.Principal, id string, deleteFiles bool) error
	Root() workspace.Root
	Defaults() config.WorkspaceDefaults
	EngineHealth() error
}

// AuditLog lists audit events.
type AuditLog interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
}

// Checker is a dependency /readyz reports on.
type Checker interface {
	Ping(ctx context.Context) error
}

// Deps are the services the web layer uses.
type Deps struct {
	Config     config.Config
	Log        *slog.Logger
	Accounts   Accounts
	Workspaces Workspaces
	Audit      AuditLog
	Bus        *bus.Bus
	Console    Console
	Recorder   *audit.Recorder
	Store      Checker
	Engine     Checker
	// Extra are further dependencies /readyz reports by name ("redis",
	// "blob"), present only when configured.
	Extra map[string]Checker
	// Stats is the hub of engine stats streams; StatsHistory the stored
	// one-minute points; Host describes the engine's machine.
	Stats        StatsHub
	StatsHistory StatsHistory
	Host         HostInfo
	// OOMs counts OOM kills per workspace for the fleet page (optional).
	OOMs OOMCounter
	// Logs reads containers' output; Events is the workspaces' event feed.
	Logs   LogReader
	Events EventFeed
	// Tasks queues and shows Claude Code tasks.
	Tasks Tasks
	// Snapshots archives and restores workspaces' files; Files browses,
	// uploads and downloads them.
	Snapshots Snapshots
	Files     Files
	// TerminalOwners, with several replicas, finds the one holding a
	// terminal so requests about it are forwarded there (replica.go).
	TerminalOwners TerminalOwners
	// TaskLimiter counts tasks queued per user (nil: unlimited).
	TaskLimiter auth.Limiter
	// Streams ends every SSE stream when cancelled (at shutdown), since
	// the server waits for open connections before it stops.
	Streams context.Context
	// Metrics times requests and serves /metrics (optional).
	Metrics *metrics.Metrics
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	setupDone atomic.Bool
	lists     *listCache
	renders   singleflight.Group
	events    eventCache
}

// New builds the Fiber app with middleware and every route.
func New(d Deps) *fiber.App {
	s := &Server{Deps: d, lists: newListCache()}
	if s.Streams == nil {
		s.Streams = context.Background()
	}
	s.Bus.OnPublish(workspace.TopicStatus, func(any) { s.lists.invalidate() })
	cfg := fiber.Config{
		AppName:               "AICode Manager",
		ErrorHandler:          s.errorHandler,
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
		// Streams (SSE) are long-lived; a write timeout would cut them.
		WriteTimeout: 0,
		// Most pages and fragments fit in one buffer, so one write
		// syscall each.
		WriteBufferSize: 16 << 10,
	}
	// Bodies are streamed so uploads go to disk as they arrive; limitBody
	// holds every other route to BodyLimit.
	cfg.StreamRequestBody, cfg.DisablePreParseMultipartForm = true, true
	if len(d.Config.TrustedProxies) > 0 {
		cfg.EnableTrustedProxyCheck = true
		cfg.TrustedProxies = d.Config.TrustedProxies
		cfg.ProxyHeader = fiber.HeaderXForwardedFor
	}
	app := fiber.New(cfg)
	app.Use(recover.New())
	app.Use(requestid.New())
	if s.Metrics != nil {
		app.Use(s.observeRequests)
	}
	app.Use(s.logRequests)
	app.Use(securityHeaders)
	app.Use(compress.New(compress.Config{
		// Fastest level: pages are small and CPU is what limits a busy server.
		Level: compress.LevelBestSpeed,
		// Compression buffers; event streams must go out as written.
		Next: func(c *fiber.Ctx) bool { return isStream(c.Path()) },
	}))
	app.Use(s.requestMeta)
	app.Use(s.loadSession)
	app.Use(s.limitBody)
	app.Use(s.checkCSRF)
	for _, rt := range s.routes() {
		app.Add(rt.Method, rt.Path, s.guard(rt), rt.Handler)
	}
	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
	return app
}
