// Package app wires configuration, services and the web layer into one
// runnable server. cmd/aicli runs it; tests and benchmarks boot the very
// same thing.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"aicode/handlers"
	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/blob"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/console"
	"aicode/services/engine"
	"aicode/services/files"
	"aicode/services/metrics"
	"aicode/services/secrets"
	"aicode/services/snapshot"
	"aicode/services/stats"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/services/termexec"
	"aicode/services/terminal"
	"aicode/services/workspace"
)

// App is a fully wired server.
type App struct {
	Config     config.Config
	Log        *slog.Logger
	Store      store.Store
	Engine     *engine.Engine
	Bus        *bus.Bus
	Accounts   *auth.Service
	Workspaces *workspace.Service
	Console    *console.Service
	// Stats shares one engine stats stream per watched container.
	Stats *stats.Hub
	// StatsCollector records every running workspace's use once a minute.
	StatsCollector *stats.Collector
	// Tasks queues and runs Claude Code tasks.
	Tasks *tasks.Service
	// Snapshots archives workspaces' files to Blobs and restores them;
	// Files browses, uploads and downloads them.
	Snapshots *snapshot.Service
	Files     *files.Service
	// Replica is the Redis side of a several-replica deployment (nil
	// without AICODE_REDIS_URL).
	Replica *Replica
	// Blobs holds transcripts, diffs and archives: the local directory or
	// MinIO / S3.
	Blobs blob.Store
	// Metrics is the app's own Prometheus registry (served at /metrics).
	Metrics *metrics.Metrics
	Fiber   *fiber.App

	bg            context.Context
	stopBG        context.CancelFunc
	cancelStreams context.CancelFunc
	wg            sync.WaitGroup

	lnMu sync.Mutex
	lns  []*trackingListener
	// shutDown is set once Shutdown has stopped the web server: a Serve
	// that only gets going afterwards (Fiber's shutdown does not know its
	// listener yet) must not serve on.
	shutDown bool
}

// New opens the store (applying migrations), connects the engine client and
// builds the web app. Background work starts with Start.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if len(cfg.SessionSecret) == 0 {
		secret, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, "session.key"))
		if err != nil {
			return nil, err
		}
		cfg.SessionSecret = secret
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	applied, err := store.Migrate(ctx, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	if len(applied) > 0 {
		log.Info("applied migrations", "versions", applied)
	}
	mets := metrics.New()
	eng, err := engine.New(engine.Options{Host: cfg.DockerHost, APIVersion: cfg.DockerAPIVersion, OnError: mets.EngineError})
	if err != nil {
		st.Close()
		return nil, err
	}
	root, err := workspace.OpenRoot(cfg.WorkspacesRoot)
	if err != nil {
		st.Close()
		return nil, err
	}
	b := bus.New()
	// Several replicas share events, rate limits and terminals through
	// Redis (redis.go); replica is nil without it.
	replica, err := newReplica(cfg, log, b)
	if err != nil {
		st.Close()
		return nil, err
	}
	rec := audit.NewRecorder(st, log)
	accounts := auth.NewService(st, rec, log, auth.Options{
		Secret:     cfg.SessionSecret,
		SessionTTL: cfg.SessionTTL,
		LoginLimit: cfg.LoginRateLimit,
		Limiter:    replica.limiter("login", cfg.LoginRateWindow),
	})
	ws := workspace.NewService(st, eng, b, rec, log, root, cfg.Workspace)
	var cons *console.Service
	mgr := terminal.NewManager(terminal.Options{
		Grace:           cfg.Terminal.Grace,
		Scrollback:      cfg.Terminal.ScrollbackKB << 10,
		IdleTimeout:     cfg.Terminal.IdleTimeout,
		MaxPerWorkspace: cfg.Terminal.MaxPerWorkspace,
		OnEnd:           func(info terminal.Info, reason string) { cons.OnEnd(info, reason) },
	}, log)
	starter := &termexec.Starter{Engine: eng, User: cfg.Workspace.User, Shell: cfg.Terminal.Shell, WorkDir: workspace.WorkDir, Log: log}
	cons = console.New(mgr, starter, ws, rec, log, console.Options{OpenPerMinute: cfg.Terminal.OpenPerMinute, Limiter: replica.limiter("terminal-open", time.Minute)})
	replica.attachConsole(cfg, cons, mgr)

	hub := stats.NewHub(stats.EngineSource(eng), stats.Options{Grace: cfg.Stats.Grace}, log)
	collector := &stats.Collector{
		Source:    eng,
		Store:     st,
		Running:   ws.RunningWorkspaces,
		Every:     cfg.Stats.CollectEvery,
		Retention: cfg.Stats.Retention,
		Log:       log,
	}

	box, err := secretBox(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	webAccounts, err := accountsFor(cfg, accounts, box)
	if err != nil {
		st.Close()
		return nil, err
	}
	blobs, err := openBlobs(ctx, cfg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	taskSvc, err := tasks.New(tasks.Deps{
		Store:      st,
		Blobs:      blobs,
		Bus:        b,
		Engine:     eng,
		Workspaces: ws,
		Audit:      rec,
		Log:        log,
		Config:     cfg.Tasks,
		User:       cfg.Workspace.User,
		SpoolDir:   filepath.Join(cfg.DataDir, "spool", "tasks"),
		Box:        box,
		Runner:     runnerName(cfg),
		// Replicas share the bus through Redis (and need a shared blob
		// store): a task running on one can be watched from another.
		Replicated: cfg.Redis.URL != "",
	})
	if err != nil {
		st.Close()
		return nil, err
	}

	a := &App{Config: cfg, Log: log, Store: st, Engine: eng, Bus: b, Accounts: accounts, Workspaces: ws, Console: cons, Stats: hub, StatsCollector: collector, Tasks: taskSvc}
	a.Blobs, a.Metrics = blobs, mets
	a.Replica = replica
	watchServices(mets, mgr, hub, st)
	a.bg, a.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	a.Snapshots = snapshot.New(a.bg, st, blobs, ws, rec, log, snapshot.Options{
		MaxBytes: cfg.Files.SnapshotMaxBytes, MaxEntries: cfg.Files.SnapshotMaxEntries, ScheduleEvery: cfg.Files.ScheduleEvery,
	})
	a.Files = files.New(ws, rec, log, cfg.Workspace.User)
	streams, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	a.cancelStreams = cancelStreams
	a.Fiber = handlers.New(handlers.Deps{
		Config:     cfg,
		Log:        log,
		Accounts:   webAccounts,
		Workspaces: ws,
		Audit:      st,
		Bus:        b,
		Console:    cons,
		Recorder:   rec,
		Store:      st,
		Engine:     eng,
		Streams:    streams,

		Stats:        hub,
		StatsHistory: st,
		Host:         eng,
		OOMs:         ws,
		Logs:         eng,
		Events:       ws,
		Tasks:        taskSvc,
		Snapshots:    a.Snapshots,
		Files:        a.Files,
		Metrics:      mets,
		Extra:        withRedisCheck(blobChecks(blobs), replica),

		TerminalOwners: replica.terminalOwners(),
		TaskLimiter:    replica.limiter("task-create", time.Minute),
	})
	return a, nil
}

// Start launches background work: the engine watcher (which reconciles
// first) and periodic session pruning.
func (a *App) Start() {
	pctx, cancel := context.WithTimeout(a.bg, 5*time.Second)
	if err := a.Engine.Ping(pctx); err != nil {
		a.Log.Warn("docker engine not reachable at start; the dashboard serves and will reconnect", "err", err)
	} else {
		a.Log.Info("docker engine reachable", "host", a.Engine.Host(), "api_version", a.Engine.APIVersion())
	}
	cancel()
	if uid := os.Geteuid(); uid != 0 && !strings.HasPrefix(a.Config.Workspace.User, strconv.Itoa(uid)+":") && a.Config.Workspace.User != strconv.Itoa(uid) {
		// Only root can hand new project directories to the workspace user.
		a.Log.Warn("the app does not run as root, so new project directories stay owned by its own user; "+
			"the workspace user may be unable to write them. Run as root, or set AICODE_WORKSPACE_USER to this user's uid:gid",
			"app_uid", uid, "workspace_user", a.Config.Workspace.User)
	}
	if err := a.Tasks.Start(a.bg); err != nil {
		a.Log.Error("task queue did not start; tasks wait until a restart", "err", err)
	}
	a.Replica.start(a.bg, &a.wg)
	a.wg.Add(5)
	go func() { defer a.wg.Done(); a.Workspaces.Watch(a.bg) }()
	go func() { defer a.wg.Done(); a.Console.Watch(a.bg, a.Bus) }()
	go func() { defer a.wg.Done(); a.pruneSessions() }()
	go func() { defer a.wg.Done(); a.endStatsOnStop() }()
	go func() { defer a.wg.Done(); a.StatsCollector.Run(a.bg) }()
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.Snapshots.Run(a.bg) }()
}

// endStatsOnStop tells the stats hub at once when a workspace's container
// stops or goes away; the hub would also find out from the engine's
// stream, but viewers should not wait for that.
func (a *App) endStatsOnStop() {
	sub := a.Bus.Subscribe(workspace.TopicStatus, 256)
	defer sub.Close()
	for {
		select {
		case <-a.bg.Done():
			return
		case msg := <-sub.C():
			ch, ok := msg.(workspace.Change)
			if !ok || ch.Workspace.ContainerID == "" {
				continue
			}
			switch {
			case ch.Deleted:
				a.Stats.ContainerEnded(ch.Workspace.ContainerID, "the workspace was deleted")
			case ch.Workspace.Status == store.StatusStopped || ch.Workspace.Status == store.StatusMissing || ch.Workspace.Status == store.StatusError:
				a.Stats.ContainerEnded(ch.Workspace.ContainerID, "the container stopped")
			}
		}
	}
}

func (a *App) pruneSessions() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.Accounts.PruneSessions(a.bg); err != nil && a.bg.Err() == nil {
			a.Log.Warn("prune sessions", "err", err)
		} else if n > 0 {
			a.Log.Info("pruned expired sessions", "count", n)
		}
		select {
		case <-a.bg.Done():
			return
		case <-t.C:
		}
	}
}

// Serve answers HTTP on ln until Shutdown.
func (a *App) Serve(ln net.Listener) error {
	tl := newTrackingListener(ln)
	a.lnMu.Lock()
	if a.shutDown {
		a.lnMu.Unlock()
		_ = ln.Close()
		return nil
	}
	a.lns = append(a.lns, tl)
	a.lnMu.Unlock()
	return a.Fiber.Listener(tl)
}

// Shutdown ends event streams, lets in-flight requests finish (up to the
// context's deadline), stops background work and closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	a.cancelStreams()
	done := make(chan error, 1)
	go func() { done <- a.Fiber.ShutdownWithContext(ctx) }()
	// Pre-opened connections that never sent a request are not in flight;
	// close them as they appear so they cannot hold the shutdown.
	tick := time.NewTicker(50 * time.Millisecond)
	var err error
wait:
	for {
		a.lnMu.Lock()
		for _, l := range a.lns {
			l.closeUnused()
		}
		a.lnMu.Unlock()
		select {
		case err = <-done:
			break wait
		case <-tick.C:
		}
	}
	tick.Stop()
	// A Serve that registered its listener after Fiber looked for
	// listeners to close would accept forever; close them all here (a
	// second close of one Fiber closed is harmless).
	a.lnMu.Lock()
	a.shutDown = true
	for _, l := range a.lns {
		_ = l.Listener.Close()
	}
	a.lnMu.Unlock()
	// Terminal shells belong to this process's connections to the engine;
	// end them properly rather than leave them to notice.
	a.Console.Manager().Shutdown(ctx)
	// Running tasks are interrupted and wrapped up (events and work kept)
	// while the store is still open.
	if err := a.Tasks.Stop(ctx); err != nil {
		a.Log.Warn("stop tasks", "err", err)
	}
	a.stopBG()
	a.Stats.Close()
	a.wg.Wait()
	// Snapshots being taken end as failed while the store is still open.
	a.Snapshots.Wait()
	err = errors.Join(err, a.Replica.close())
	return errors.Join(err, a.Engine.Close(), a.Store.Close())
}

// loadOrCreateSecret keeps a generated session secret across restarts, so
// sign-in forms stay valid; it is written owner-readable only.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) >= 32 {
			return []byte(s), nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read session secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate session secret: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write session secret: %w", err)
	}
	return []byte(s), nil
}

// secretBox opens the key that seals stored credentials: the configured
// one, or one generated into the data directory and kept there.
func secretBox(cfg config.Config) (*secrets.Box, error) {
	raw := cfg.Tasks.SecretKey
	if raw == "" {
		b, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, "secret.key"))
		if err != nil {
			return nil, err
		}
		raw = string(b)
	}
	key, err := secrets.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("AICODE_SECRET_KEY: %w", err)
	}
	return secrets.New(key)
}

// runnerName names this process among replicas: the replica id when one
// is configured, else its host and address, which a restarted replica
// keeps (so it knows its own orphaned tasks at once). An address chosen by
// the kernel is no name; the pid is added.
func runnerName(cfg config.Config) string {
	if cfg.Redis.ReplicaID != "" {
		return cfg.Redis.ReplicaID
	}
	host, _ := os.Hostname()
	name := host + "/" + cfg.ListenAddr
	if strings.HasSuffix(cfg.ListenAddr, ":0") {
		name += "/" + strconv.Itoa(os.Getpid())
	}
	return name
}

// NewLogger builds the process logger from the configuration.
func NewLogger(cfg config.Config, w *os.File) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
