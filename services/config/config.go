// Package config reads the application's configuration from the environment,
// once, in one place. Every variable is documented with its default in
// .env.example; keep the two in sync.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the whole runtime configuration.
type Config struct {
	ListenAddr string
	// BaseURL is the externally visible origin (scheme://host[:port]); when
	// empty the request's own host is trusted for same-origin checks.
	BaseURL string

	DataDir     string
	DatabaseURL string

	// DockerHost is passed to the Docker client; empty means the client's
	// own default (DOCKER_HOST, else the local socket).
	DockerHost       string
	DockerAPIVersion string

	WorkspacesRoot string
	Workspace      WorkspaceDefaults

	SessionSecret []byte
	SessionTTL    time.Duration
	// CookieSecure: "auto" sets Secure when the request arrived over TLS
	// (directly or via a trusted proxy), "true"/"false" force it.
	CookieSecure   string
	TrustedProxies []string

	LoginRateLimit  int
	LoginRateWindow time.Duration

	Terminal TerminalConfig
	Stats    StatsConfig
	Tasks    TasksConfig

	// The production stack; each part is off (zero-config default) until
	// configured. Each is parsed in its own file of this package.
	Redis   RedisConfig   // redis.go
	Blob    BlobConfig    // blob.go
	Auth    AuthConfig    // authcfg.go
	Metrics MetricsConfig // metrics.go
	Files   FilesConfig   // files.go

	LogLevel  slog.Level
	LogFormat string

	ShutdownTimeout time.Duration
}

// WorkspaceDefaults are the container settings a new workspace gets unless
// its creator asks for others, and the ceilings they may ask for.
type WorkspaceDefaults struct {
	Image     string
	MemoryMB  int64
	CPUs      float64
	PidsLimit int64
	Network   string
	User      string

	MaxMemoryMB  int64
	MaxCPUs      float64
	MaxPidsLimit int64
}

// TerminalConfig tunes web terminals.
type TerminalConfig struct {
	// Shell is tried first; when the image lacks it, sh is used.
	Shell string
	// Grace keeps a session's shell running after its last viewer left.
	Grace time.Duration
	// ScrollbackKB bounds the output kept to restore a reattaching screen.
	ScrollbackKB int
	// IdleTimeout ends sessions without input or output for that long
	// (0: never).
	IdleTimeout time.Duration
	// PingInterval is how often the WebSocket is pinged, so proxies keep it.
	PingInterval time.Duration
	// MaxPerWorkspace caps open sessions per workspace.
	MaxPerWorkspace int
	// OpenPerMinute caps how many sessions one user opens per minute.
	OpenPerMinute int
}

// StatsConfig tunes resource monitoring.
type StatsConfig struct {
	// Grace keeps a container's engine stats stream open after its last
	// viewer left, so switching pages does not restart it.
	Grace time.Duration
	// Retention is how long one-minute points are kept.
	Retention time.Duration
	// CollectEvery is how often every running workspace's figures are
	// recorded as a history point.
	CollectEvery time.Duration
}

// TasksConfig tunes Claude Code tasks.
type TasksConfig struct {
	// SecretKey seals stored credentials (32 bytes; generated into the
	// data directory when not set).
	SecretKey string
	// APIKey and OAuthToken are the deployment's Claude credentials, used
	// when neither the workspace nor the user has set one.
	APIKey     string
	OAuthToken string
	// BaseURL points the CLI at another Messages API endpoint (a gateway
	// or proxy); empty means Anthropic's.
	BaseURL string
	// MaxRunning caps tasks running at once across the deployment.
	MaxRunning int
	// Timeout ends a task that runs longer.
	Timeout time.Duration
	// CancelGrace is how long an interrupted CLI gets before it is killed.
	CancelGrace time.Duration
	// BranchPrefix names task branches: prefix + task id.
	BranchPrefix string
	// DefaultModel and DefaultPermissionMode apply when a task sets none.
	DefaultModel          string
	DefaultPermissionMode string
	// MaxAttempts bounds tries after infrastructure failures.
	MaxAttempts int
	// CreatePerMinute caps how many tasks one user queues per minute.
	CreatePerMinute int
	// APIRetries is how often the CLI retries a failed API call
	// (CLAUDE_CODE_MAX_RETRIES); it retries even refused credentials, so
	// a high count only delays the answer.
	APIRetries int
}

// Getenv abstracts os.Getenv so tests can load a config from a map.
type Getenv func(string) string

// Load reads the configuration from the process environment.
func Load() (Config, error) { return LoadFrom(os.Getenv) }

// LoadFrom reads the configuration through getenv.
func LoadFrom(getenv Getenv) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		ListenAddr:       p.str("AICODE_LISTEN_ADDR", "127.0.0.1:8080"),
		BaseURL:          strings.TrimRight(p.str("AICODE_BASE_URL", ""), "/"),
		DataDir:          p.str("AICODE_DATA_DIR", "./data"),
		DockerHost:       p.str("DOCKER_HOST", ""),
		DockerAPIVersion: p.str("DOCKER_API_VERSION", ""),
		SessionTTL:       p.duration("AICODE_SESSION_TTL", 7*24*time.Hour),
		CookieSecure:     strings.ToLower(p.str("AICODE_COOKIE_SECURE", "auto")),
		TrustedProxies:   p.list("AICODE_TRUSTED_PROXIES"),
		LoginRateLimit:   p.int("AICODE_LOGIN_RATE_LIMIT", 10),
		LoginRateWindow:  p.duration("AICODE_LOGIN_RATE_WINDOW", 15*time.Minute),
		LogFormat:        strings.ToLower(p.str("AICODE_LOG_FORMAT", "text")),
		ShutdownTimeout:  p.duration("AICODE_SHUTDOWN_TIMEOUT", 30*time.Second),
	}
	c.Redis = loadRedis(&p)
	c.Blob = loadBlob(&p)
	c.Auth = loadAuth(&p)
	c.Metrics = loadMetrics(&p)
	c.Files = loadFiles(&p)
	c.Terminal = TerminalConfig{
		Shell:           p.str("AICODE_TERMINAL_SHELL", "bash"),
		Grace:           p.duration("AICODE_TERMINAL_GRACE", 10*time.Minute),
		ScrollbackKB:    p.int("AICODE_TERMINAL_SCROLLBACK_KB", 256),
		IdleTimeout:     p.durationOrZero("AICODE_TERMINAL_IDLE_TIMEOUT", 0),
		PingInterval:    p.duration("AICODE_TERMINAL_PING_INTERVAL", 20*time.Second),
		MaxPerWorkspace: p.int("AICODE_TERMINAL_MAX_PER_WORKSPACE", 10),
		OpenPerMinute:   p.int("AICODE_TERMINAL_OPEN_PER_MINUTE", 30),
	}
	if !shellRe.MatchString(c.Terminal.Shell) {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TERMINAL_SHELL: %q is not a plain command name or absolute path", c.Terminal.Shell))
	}
	if kb := c.Terminal.ScrollbackKB; kb < 16 || kb > 16384 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TERMINAL_SCROLLBACK_KB: %d must be between 16 and 16384", kb))
	}
	if iv := c.Terminal.PingInterval; iv < time.Second || iv > 5*time.Minute {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TERMINAL_PING_INTERVAL: %s must be between 1s and 5m", iv))
	}
	if c.Terminal.MaxPerWorkspace < 1 {
		p.errs = append(p.errs, errors.New("AICODE_TERMINAL_MAX_PER_WORKSPACE must be at least 1"))
	}
	if c.Terminal.OpenPerMinute < 1 {
		p.errs = append(p.errs, errors.New("AICODE_TERMINAL_OPEN_PER_MINUTE must be at least 1"))
	}
	c.Stats = StatsConfig{
		Grace:        p.duration("AICODE_STATS_GRACE", 30*time.Second),
		Retention:    p.duration("AICODE_STATS_RETENTION", 7*24*time.Hour),
		CollectEvery: p.duration("AICODE_STATS_COLLECT_EVERY", time.Minute),
	}
	if r := c.Stats.Retention; r < time.Hour || r > 366*24*time.Hour {
		p.errs = append(p.errs, fmt.Errorf("AICODE_STATS_RETENTION: %s must be between 1h and 366 days", r))
	}
	if e := c.Stats.CollectEvery; e < 5*time.Second || e > time.Hour {
		p.errs = append(p.errs, fmt.Errorf("AICODE_STATS_COLLECT_EVERY: %s must be between 5s and 1h", e))
	}
	c.Tasks = TasksConfig{
		SecretKey:             p.str("AICODE_SECRET_KEY", ""),
		APIKey:                p.str("ANTHROPIC_API_KEY", ""),
		OAuthToken:            p.str("CLAUDE_CODE_OAUTH_TOKEN", ""),
		BaseURL:               strings.TrimRight(p.str("AICODE_CLAUDE_BASE_URL", ""), "/"),
		MaxRunning:            p.int("AICODE_TASKS_MAX_RUNNING", 5),
		Timeout:               p.duration("AICODE_TASK_TIMEOUT", 2*time.Hour),
		CancelGrace:           p.duration("AICODE_TASK_CANCEL_GRACE", 10*time.Second),
		BranchPrefix:          p.str("AICODE_TASK_BRANCH_PREFIX", "aicli/task-"),
		DefaultModel:          p.str("AICODE_TASK_MODEL", ""),
		DefaultPermissionMode: p.str("AICODE_TASK_PERMISSION_MODE", "acceptEdits"),
		MaxAttempts:           p.int("AICODE_TASK_MAX_ATTEMPTS", 3),
		CreatePerMinute:       p.int("AICODE_TASK_CREATE_PER_MINUTE", 30),
		APIRetries:            p.int("AICODE_CLAUDE_MAX_RETRIES", 3),
	}
	if n := c.Tasks.APIRetries; n < 0 || n > 20 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_CLAUDE_MAX_RETRIES: %d must be between 0 and 20", n))
	}
	if n := c.Tasks.MaxRunning; n < 1 || n > 1000 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASKS_MAX_RUNNING: %d must be between 1 and 1000", n))
	}
	if d := c.Tasks.Timeout; d < time.Minute || d > 7*24*time.Hour {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_TIMEOUT: %s must be between 1m and 7 days", d))
	}
	if d := c.Tasks.CancelGrace; d < 100*time.Millisecond || d > 10*time.Minute {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_CANCEL_GRACE: %s must be between 100ms and 10m", d))
	}
	if !branchPrefixRe.MatchString(c.Tasks.BranchPrefix) {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_BRANCH_PREFIX: %q may hold letters, digits, '/', '-', '_' and '.' only", c.Tasks.BranchPrefix))
	}
	switch c.Tasks.DefaultPermissionMode {
	case "acceptEdits", "bypassPermissions", "default", "dontAsk", "plan", "auto":
	default:
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_PERMISSION_MODE: %q is not a Claude Code permission mode", c.Tasks.DefaultPermissionMode))
	}
	if n := c.Tasks.CreatePerMinute; n < 1 || n > 10000 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_CREATE_PER_MINUTE: %d must be between 1 and 10000", n))
	}
	if n := c.Tasks.MaxAttempts; n < 1 || n > 20 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_TASK_MAX_ATTEMPTS: %d must be between 1 and 20", n))
	}
	if u := c.Tasks.BaseURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		p.errs = append(p.errs, fmt.Errorf("AICODE_CLAUDE_BASE_URL: %q is not an http(s) URL", u))
	}
	c.DatabaseURL = p.str("DATABASE_URL", "sqlite:"+filepath.Join(c.DataDir, "aicode.db"))
	c.WorkspacesRoot = p.str("AICODE_WORKSPACES_ROOT", filepath.Join(c.DataDir, "workspaces"))
	c.Workspace = WorkspaceDefaults{
		Image:        p.str("AICODE_WORKSPACE_IMAGE", "aicode-workspace:latest"),
		MemoryMB:     p.int64("AICODE_WORKSPACE_MEMORY_MB", 2048),
		CPUs:         p.float("AICODE_WORKSPACE_CPUS", 2),
		PidsLimit:    p.int64("AICODE_WORKSPACE_PIDS", 512),
		Network:      p.str("AICODE_WORKSPACE_NETWORK", "bridge"),
		User:         p.str("AICODE_WORKSPACE_USER", "1000:1000"),
		MaxMemoryMB:  p.int64("AICODE_WORKSPACE_MAX_MEMORY_MB", 16384),
		MaxCPUs:      p.float("AICODE_WORKSPACE_MAX_CPUS", 8),
		MaxPidsLimit: p.int64("AICODE_WORKSPACE_MAX_PIDS", 4096),
	}
	if s := p.str("AICODE_SESSION_SECRET", ""); s != "" {
		if len(s) < 32 {
			p.errs = append(p.errs, errors.New("AICODE_SESSION_SECRET must be at least 32 characters"))
		}
		c.SessionSecret = []byte(s)
	}
	switch lvl := strings.ToLower(p.str("AICODE_LOG_LEVEL", "info")); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		p.errs = append(p.errs, fmt.Errorf("AICODE_LOG_LEVEL: unknown level %q (debug, info, warn, error)", lvl))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		p.errs = append(p.errs, fmt.Errorf("AICODE_LOG_FORMAT: %q is neither text nor json", c.LogFormat))
	}
	switch c.CookieSecure {
	case "auto", "true", "false":
	default:
		p.errs = append(p.errs, fmt.Errorf("AICODE_COOKIE_SECURE: %q is not auto, true or false", c.CookieSecure))
	}
	w := c.Workspace
	if w.MemoryMB < 16 || w.MemoryMB > w.MaxMemoryMB {
		p.errs = append(p.errs, fmt.Errorf("AICODE_WORKSPACE_MEMORY_MB: %d must be between 16 and AICODE_WORKSPACE_MAX_MEMORY_MB (%d)", w.MemoryMB, w.MaxMemoryMB))
	}
	if w.CPUs <= 0 || w.CPUs > w.MaxCPUs {
		p.errs = append(p.errs, fmt.Errorf("AICODE_WORKSPACE_CPUS: %g must be above 0 and at most AICODE_WORKSPACE_MAX_CPUS (%g)", w.CPUs, w.MaxCPUs))
	}
	if w.PidsLimit < 16 || w.PidsLimit > w.MaxPidsLimit {
		p.errs = append(p.errs, fmt.Errorf("AICODE_WORKSPACE_PIDS: %d must be between 16 and AICODE_WORKSPACE_MAX_PIDS (%d)", w.PidsLimit, w.MaxPidsLimit))
	}
	if u, _, _ := strings.Cut(w.User, ":"); u == "" || u == "root" || strings.Trim(u, "0") == "" {
		p.errs = append(p.errs, errors.New("AICODE_WORKSPACE_USER must name a non-root user"))
	}
	if c.LoginRateLimit < 1 {
		p.errs = append(p.errs, errors.New("AICODE_LOGIN_RATE_LIMIT must be at least 1"))
	}
	return c, errors.Join(p.errs...)
}

type parser struct {
	getenv Getenv
	errs   []error
}

func (p *parser) str(key, def string) string {
	if v := strings.TrimSpace(p.getenv(key)); v != "" {
		return v
	}
	return def
}

func (p *parser) list(key string) []string {
	var out []string
	for _, s := range strings.Split(p.getenv(key), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) int(key string, def int) int {
	return int(p.int64(key, int64(def)))
}

func (p *parser) int64(key string, def int64) int64 {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not a whole number", key, v))
		return def
	}
	return n
}

func (p *parser) float(key string, def float64) float64 {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not a number", key, v))
		return def
	}
	return f
}

// durationOrZero is duration that also accepts 0 ("off").
func (p *parser) durationOrZero(key string, def time.Duration) time.Duration {
	if v := p.str(key, ""); v == "0" {
		return 0
	}
	return p.duration(key, def)
}

// shellRe accepts a command name or an absolute path, nothing a shell would
// interpret.
var shellRe = regexp.MustCompile(`^(/[A-Za-z0-9._/-]+|[A-Za-z0-9._-]+)$`)

func (p *parser) duration(key string, def time.Duration) time.Duration {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not a positive duration such as 30s or 24h", key, v))
		return def
	}
	return d
}

// branchPrefixRe keeps task branch names valid git refs whatever the id.
var branchPrefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,60}$`)
