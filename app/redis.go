package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"aicode/handlers"
	"aicode/services/auth"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/console"
	"aicode/services/store"
	"aicode/services/tasks"
	"aicode/services/terminal"
	"aicode/services/workspace"
)

// Replica is this process's part in a deployment of several replicas
// sharing one Redis (AICODE_REDIS_URL): the bus bridge carrying live
// events between them, shared rate limits and terminal presence. It is nil
// when Redis is not configured, and everything stays in process.
type Replica struct {
	// ID names this replica among the others.
	ID       string
	Client   *redis.Client
	Bridge   *bus.RedisBridge
	Presence *console.Presence
	prefix   string
	log      *slog.Logger
}

// registerCodecs says how each bridged topic's messages travel; topics
// not listed stay in process.
func registerCodecs(b *bus.Bus) {
	b.RegisterCodec(workspace.TopicStatus, bus.JSON[workspace.Change]())
	b.RegisterCodec(workspace.TopicEvents, bus.JSON[store.WorkspaceEvent]())
	tasks.RegisterCodecs(b)
}

// newReplica connects (lazily: an unreachable Redis does not stop the app
// starting; the bridge and the rest retry) and prepares the bridge.
func newReplica(cfg config.Config, log *slog.Logger, b *bus.Bus) (*Replica, error) {
	registerCodecs(b)
	if cfg.Redis.URL == "" {
		return nil, nil
	}
	opt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("AICODE_REDIS_URL %s: %w", config.RedactURL(cfg.Redis.URL), err)
	}
	// Fail fast while Redis is away: callers fall back rather than wait.
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.PoolTimeout = 3 * time.Second
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	// go-redis reports every failed dial on its own logger; the bridge,
	// limiters and presence log outages once, so its lines are debug.
	redis.SetLogger(redisLog{log})
	id := cfg.Redis.ReplicaID
	if id == "" {
		host, _ := os.Hostname()
		var r [3]byte
		_, _ = rand.Read(r[:])
		id = host + "-" + hex.EncodeToString(r[:])
	}
	client := redis.NewClient(opt)
	br, err := bus.NewRedisBridge(b, client, bus.RedisOptions{Prefix: cfg.Redis.Prefix, Origin: id, Log: log})
	if err != nil {
		client.Close()
		return nil, err
	}
	log.Info("replicas share events, rate limits and terminals through Redis", "redis", cfg.Redis)
	return &Replica{ID: id, Client: client, Bridge: br, prefix: cfg.Redis.Prefix, log: log}, nil
}

// limiter returns a rate limiter shared through Redis, or one of this
// process without it.
func (r *Replica) limiter(name string, window time.Duration) auth.Limiter {
	if r == nil {
		return auth.NewMemoryLimiter(window)
	}
	return auth.NewRedisLimiter(r.Client, r.prefix+"rl:"+name+":", window, r.log)
}

// attachConsole announces this replica's terminals and lets the console
// list the others'.
func (r *Replica) attachConsole(cfg config.Config, cons *console.Service, mgr *terminal.Manager) {
	if r == nil {
		return
	}
	r.Presence = console.NewPresence(r.Client, r.prefix, r.ID, replicaURL(cfg), mgr, r.log)
	cons.SetPresence(r.Presence)
}

// replicaURL is where the other replicas reach this one: configured, or
// this host's name with the listening port.
func replicaURL(cfg config.Config) string {
	if cfg.Redis.ReplicaURL != "" {
		return cfg.Redis.ReplicaURL
	}
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// terminalOwners is the handlers' view of presence (a nil interface, not
// a nil pointer, without Redis).
func (r *Replica) terminalOwners() handlers.TerminalOwners {
	if r == nil || r.Presence == nil {
		return nil
	}
	return r.Presence
}

// withRedisCheck adds Redis to the dependencies /readyz reports.
func withRedisCheck(checks map[string]handlers.Checker, r *Replica) map[string]handlers.Checker {
	if r == nil {
		return checks
	}
	if checks == nil {
		checks = map[string]handlers.Checker{}
	}
	checks["redis"] = redisCheck{r.Client}
	return checks
}

type redisCheck struct{ c *redis.Client }

func (c redisCheck) Ping(ctx context.Context) error { return c.c.Ping(ctx).Err() }

// start runs the bridge and keeps the presence entries fresh.
func (r *Replica) start(ctx context.Context, wg *sync.WaitGroup) {
	if r == nil {
		return
	}
	r.Bridge.Start(ctx)
	if r.Presence != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.Presence.Run(ctx) }()
	}
}

// close stops the bridge and the connections (after the terminals ended,
// so their entries were withdrawn).
func (r *Replica) close() error {
	if r == nil {
		return nil
	}
	return errors.Join(r.Bridge.Close(), r.Client.Close())
}

// redisLog sends go-redis's internal messages to the app's log at debug.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
