package config

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is a Getenv over a fixed map; every other variable is unset, so the
// process environment never leaks into a test.
func env(m map[string]string) Getenv {
	return func(k string) string { return m[k] }
}

func TestLoadFromDefaults(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil {
		t.Fatalf("LoadFrom(empty) error: %v", err)
	}
	want := Config{
		ListenAddr:       "127.0.0.1:8080",
		BaseURL:          "",
		DataDir:          "./data",
		DatabaseURL:      "sqlite:data/aicode.db",
		DockerHost:       "",
		DockerAPIVersion: "",
		WorkspacesRoot:   "data/workspaces",
		Workspace: WorkspaceDefaults{
			Image:        "aicode-workspace:latest",
			MemoryMB:     2048,
			CPUs:         2,
			PidsLimit:    512,
			Network:      "bridge",
			User:         "1000:1000",
			MaxMemoryMB:  16384,
			MaxCPUs:      8,
			MaxPidsLimit: 4096,
		},
		SessionSecret:   nil,
		SessionTTL:      7 * 24 * time.Hour,
		CookieSecure:    "auto",
		TrustedProxies:  nil,
		LoginRateLimit:  10,
		LoginRateWindow: 15 * time.Minute,
		Terminal: TerminalConfig{
			Shell: "bash", Grace: 10 * time.Minute, ScrollbackKB: 256, IdleTimeout: 0,
			PingInterval: 20 * time.Second, MaxPerWorkspace: 10, OpenPerMinute: 30,
		},
		Stats: StatsConfig{Grace: 30 * time.Second, Retention: 7 * 24 * time.Hour, CollectEvery: time.Minute},
		Tasks: TasksConfig{MaxRunning: 5, Timeout: 2 * time.Hour, CancelGrace: 10 * time.Second, BranchPrefix: "aicli/task-",
			DefaultPermissionMode: "acceptEdits", MaxAttempts: 3, APIRetries: 3, CreatePerMinute: 30},
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
		ShutdownTimeout: 30 * time.Second,
	}
	if !reflect.DeepEqual(core(c), want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadFromBlankValuesMeanDefault(t *testing.T) {
	blank := map[string]string{}
	for _, k := range allVariables {
		blank[k] = "  \t "
	}
	c, err := LoadFrom(env(blank))
	if err != nil {
		t.Fatalf("LoadFrom(blank values) error: %v", err)
	}
	d, _ := LoadFrom(env(nil))
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("blank values:\n got %+v\nwant the defaults %+v", c, d)
	}
}

var allVariables = []string{
	"AICODE_LISTEN_ADDR", "AICODE_BASE_URL", "AICODE_DATA_DIR", "DATABASE_URL",
	"DOCKER_HOST", "DOCKER_API_VERSION", "AICODE_WORKSPACES_ROOT",
	"AICODE_WORKSPACE_IMAGE", "AICODE_WORKSPACE_MEMORY_MB", "AICODE_WORKSPACE_CPUS",
	"AICODE_WORKSPACE_PIDS", "AICODE_WORKSPACE_NETWORK", "AICODE_WORKSPACE_USER",
	"AICODE_WORKSPACE_MAX_MEMORY_MB", "AICODE_WORKSPACE_MAX_CPUS", "AICODE_WORKSPACE_MAX_PIDS",
	"AICODE_SESSION_SECRET", "AICODE_SESSION_TTL", "AICODE_COOKIE_SECURE",
	"AICODE_TRUSTED_PROXIES", "AICODE_LOGIN_RATE_LIMIT", "AICODE_LOGIN_RATE_WINDOW",
	"AICODE_LOG_LEVEL", "AICODE_LOG_FORMAT", "AICODE_SHUTDOWN_TIMEOUT",
	"AICODE_TERMINAL_SHELL", "AICODE_TERMINAL_GRACE", "AICODE_TERMINAL_SCROLLBACK_KB",
	"AICODE_TERMINAL_IDLE_TIMEOUT", "AICODE_TERMINAL_PING_INTERVAL",
	"AICODE_TERMINAL_MAX_PER_WORKSPACE", "AICODE_TERMINAL_OPEN_PER_MINUTE",
	"AICODE_STATS_GRACE", "AICODE_STATS_RETENTION", "AICODE_STATS_COLLECT_EVERY",
}

func TestLoadFromEveryVariable(t *testing.T) {
	secret := strings.Repeat("s", 40)
	c, err := LoadFrom(env(map[string]string{
		"AICODE_LISTEN_ADDR":                "0.0.0.0:9000",
		"AICODE_BASE_URL":                   "https://aicode.example.com/",
		"AICODE_DATA_DIR":                   "/srv/aicode",
		"DATABASE_URL":                      "postgres://u:p@db/aicode",
		"DOCKER_HOST":                       "tcp://docker:2376",
		"DOCKER_API_VERSION":                "1.43",
		"AICODE_WORKSPACES_ROOT":            "/srv/workspaces",
		"AICODE_WORKSPACE_IMAGE":            "registry.example.com/ws:2",
		"AICODE_WORKSPACE_MEMORY_MB":        "4096",
		"AICODE_WORKSPACE_CPUS":             "1.5",
		"AICODE_WORKSPACE_PIDS":             "1024",
		"AICODE_WORKSPACE_NETWORK":          "none",
		"AICODE_WORKSPACE_USER":             "2000:3000",
		"AICODE_WORKSPACE_MAX_MEMORY_MB":    "32768",
		"AICODE_WORKSPACE_MAX_CPUS":         "16",
		"AICODE_WORKSPACE_MAX_PIDS":         "8192",
		"AICODE_SESSION_SECRET":             secret,
		"AICODE_SESSION_TTL":                "12h",
		"AICODE_COOKIE_SECURE":              "true",
		"AICODE_TRUSTED_PROXIES":            " 10.0.0.1 , ,192.168.0.0/16,",
		"AICODE_LOGIN_RATE_LIMIT":           "5",
		"AICODE_LOGIN_RATE_WINDOW":          "1m30s",
		"AICODE_LOG_LEVEL":                  "debug",
		"AICODE_LOG_FORMAT":                 "json",
		"AICODE_SHUTDOWN_TIMEOUT":           "5s",
		"AICODE_TERMINAL_SHELL":             "/usr/bin/zsh",
		"AICODE_TERMINAL_GRACE":             "2m",
		"AICODE_TERMINAL_SCROLLBACK_KB":     "512",
		"AICODE_TERMINAL_IDLE_TIMEOUT":      "8h",
		"AICODE_TERMINAL_PING_INTERVAL":     "25s",
		"AICODE_TERMINAL_MAX_PER_WORKSPACE": "4",
		"AICODE_TERMINAL_OPEN_PER_MINUTE":   "6",
		"AICODE_STATS_GRACE":                "45s",
		"AICODE_STATS_RETENTION":            "72h",
		"AICODE_STATS_COLLECT_EVERY":        "30s",
	}))
	if err != nil {
		t.Fatalf("LoadFrom error: %v", err)
	}
	want := Config{
		ListenAddr:       "0.0.0.0:9000",
		BaseURL:          "https://aicode.example.com",
		DataDir:          "/srv/aicode",
		DatabaseURL:      "postgres://u:p@db/aicode",
		DockerHost:       "tcp://docker:2376",
		DockerAPIVersion: "1.43",
		WorkspacesRoot:   "/srv/workspaces",
		Workspace: WorkspaceDefaults{
			Image:        "registry.example.com/ws:2",
			MemoryMB:     4096,
			CPUs:         1.5,
			PidsLimit:    1024,
			Network:      "none",
			User:         "2000:3000",
			MaxMemoryMB:  32768,
			MaxCPUs:      16,
			MaxPidsLimit: 8192,
		},
		SessionSecret:   []byte(secret),
		SessionTTL:      12 * time.Hour,
		CookieSecure:    "true",
		TrustedProxies:  []string{"10.0.0.1", "192.168.0.0/16"},
		LoginRateLimit:  5,
		LoginRateWindow: 90 * time.Second,
		Terminal: TerminalConfig{
			Shell: "/usr/bin/zsh", Grace: 2 * time.Minute, ScrollbackKB: 512, IdleTimeout: 8 * time.Hour,
			PingInterval: 25 * time.Second, MaxPerWorkspace: 4, OpenPerMinute: 6,
		},
		Stats: StatsConfig{Grace: 45 * time.Second, Retention: 72 * time.Hour, CollectEvery: 30 * time.Second},
		Tasks: TasksConfig{MaxRunning: 5, Timeout: 2 * time.Hour, CancelGrace: 10 * time.Second, BranchPrefix: "aicli/task-",
			DefaultPermissionMode: "acceptEdits", MaxAttempts: 3, APIRetries: 3, CreatePerMinute: 30},
		LogLevel:        slog.LevelDebug,
		LogFormat:       "json",
		ShutdownTimeout: 5 * time.Second,
	}
	if !reflect.DeepEqual(core(c), want) {
		t.Fatalf("overrides:\n got %+v\nwant %+v", c, want)
	}
}

// Single-variable overrides, each checked on the field it sets.
func TestLoadFromOverrides(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(c Config) (got, want any)
	}{
		{"data dir moves the database", map[string]string{"AICODE_DATA_DIR": "/var/lib/aicode"},
			func(c Config) (any, any) { return c.DatabaseURL, "sqlite:/var/lib/aicode/aicode.db" }},
		{"data dir moves the workspaces root", map[string]string{"AICODE_DATA_DIR": "/var/lib/aicode"},
			func(c Config) (any, any) { return c.WorkspacesRoot, "/var/lib/aicode/workspaces" }},
		{"explicit database wins over data dir", map[string]string{"AICODE_DATA_DIR": "/x", "DATABASE_URL": "sqlite:/y/db"},
			func(c Config) (any, any) { return c.DatabaseURL, "sqlite:/y/db" }},
		{"explicit root wins over data dir", map[string]string{"AICODE_DATA_DIR": "/x", "AICODE_WORKSPACES_ROOT": "/y"},
			func(c Config) (any, any) { return c.WorkspacesRoot, "/y" }},
		{"values are trimmed", map[string]string{"AICODE_LISTEN_ADDR": "  :8081  "},
			func(c Config) (any, any) { return c.ListenAddr, ":8081" }},
		{"base URL loses every trailing slash", map[string]string{"AICODE_BASE_URL": "http://h:1///"},
			func(c Config) (any, any) { return c.BaseURL, "http://h:1" }},
		{"log level info", map[string]string{"AICODE_LOG_LEVEL": "info"},
			func(c Config) (any, any) { return c.LogLevel, slog.LevelInfo }},
		{"log level warn", map[string]string{"AICODE_LOG_LEVEL": "warn"},
			func(c Config) (any, any) { return c.LogLevel, slog.LevelWarn }},
		{"log level warning", map[string]string{"AICODE_LOG_LEVEL": "warning"},
			func(c Config) (any, any) { return c.LogLevel, slog.LevelWarn }},
		{"log level error", map[string]string{"AICODE_LOG_LEVEL": "error"},
			func(c Config) (any, any) { return c.LogLevel, slog.LevelError }},
		{"log level is case insensitive", map[string]string{"AICODE_LOG_LEVEL": "DEBUG"},
			func(c Config) (any, any) { return c.LogLevel, slog.LevelDebug }},
		{"log format is case insensitive", map[string]string{"AICODE_LOG_FORMAT": "JSON"},
			func(c Config) (any, any) { return c.LogFormat, "json" }},
		{"cookie secure false", map[string]string{"AICODE_COOKIE_SECURE": "false"},
			func(c Config) (any, any) { return c.CookieSecure, "false" }},
		{"cookie secure is case insensitive", map[string]string{"AICODE_COOKIE_SECURE": "TRUE"},
			func(c Config) (any, any) { return c.CookieSecure, "true" }},
		{"cookie secure auto", map[string]string{"AICODE_COOKIE_SECURE": "Auto"},
			func(c Config) (any, any) { return c.CookieSecure, "auto" }},
		{"one trusted proxy", map[string]string{"AICODE_TRUSTED_PROXIES": "127.0.0.1"},
			func(c Config) (any, any) { return c.TrustedProxies, []string{"127.0.0.1"} }},
		{"only commas mean no proxies", map[string]string{"AICODE_TRUSTED_PROXIES": " , ,"},
			func(c Config) (any, any) { return c.TrustedProxies, []string(nil) }},
		{"secret of exactly 32", map[string]string{"AICODE_SESSION_SECRET": strings.Repeat("k", 32)},
			func(c Config) (any, any) { return string(c.SessionSecret), strings.Repeat("k", 32) }},
		{"named workspace user", map[string]string{"AICODE_WORKSPACE_USER": "dev"},
			func(c Config) (any, any) { return c.Workspace.User, "dev" }},
		{"uid without group", map[string]string{"AICODE_WORKSPACE_USER": "1001"},
			func(c Config) (any, any) { return c.Workspace.User, "1001" }},
		{"uid 10 is not root", map[string]string{"AICODE_WORKSPACE_USER": "10:10"},
			func(c Config) (any, any) { return c.Workspace.User, "10:10" }},
		{"memory at the minimum", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "16"},
			func(c Config) (any, any) { return c.Workspace.MemoryMB, int64(16) }},
		{"memory at the maximum", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "16384"},
			func(c Config) (any, any) { return c.Workspace.MemoryMB, int64(16384) }},
		{"raised maximum allows more memory", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "20000", "AICODE_WORKSPACE_MAX_MEMORY_MB": "20000"},
			func(c Config) (any, any) { return c.Workspace.MemoryMB, int64(20000) }},
		{"cpus at the maximum", map[string]string{"AICODE_WORKSPACE_CPUS": "8"},
			func(c Config) (any, any) { return c.Workspace.CPUs, 8.0 }},
		{"small cpus", map[string]string{"AICODE_WORKSPACE_CPUS": "0.25"},
			func(c Config) (any, any) { return c.Workspace.CPUs, 0.25 }},
		{"pids at the minimum", map[string]string{"AICODE_WORKSPACE_PIDS": "16"},
			func(c Config) (any, any) { return c.Workspace.PidsLimit, int64(16) }},
		{"pids at the maximum", map[string]string{"AICODE_WORKSPACE_PIDS": "4096"},
			func(c Config) (any, any) { return c.Workspace.PidsLimit, int64(4096) }},
		{"rate limit of one", map[string]string{"AICODE_LOGIN_RATE_LIMIT": "1"},
			func(c Config) (any, any) { return c.LoginRateLimit, 1 }},
		{"long session", map[string]string{"AICODE_SESSION_TTL": "720h"},
			func(c Config) (any, any) { return c.SessionTTL, 720 * time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadFrom(env(tt.env))
			if err != nil {
				t.Fatalf("LoadFrom(%v) error: %v", tt.env, err)
			}
			got, want := tt.check(c)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("LoadFrom(%v): got %#v; want %#v", tt.env, got, want)
			}
		})
	}
}

func TestLoadFromInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string // the error must name this variable
	}{
		{"ttl not a duration", map[string]string{"AICODE_SESSION_TTL": "a week"}, "AICODE_SESSION_TTL"},
		{"ttl without a unit", map[string]string{"AICODE_SESSION_TTL": "3600"}, "AICODE_SESSION_TTL"},
		{"ttl zero", map[string]string{"AICODE_SESSION_TTL": "0s"}, "AICODE_SESSION_TTL"},
		{"ttl negative", map[string]string{"AICODE_SESSION_TTL": "-1h"}, "AICODE_SESSION_TTL"},
		{"rate window not a duration", map[string]string{"AICODE_LOGIN_RATE_WINDOW": "soon"}, "AICODE_LOGIN_RATE_WINDOW"},
		{"rate window zero", map[string]string{"AICODE_LOGIN_RATE_WINDOW": "0"}, "AICODE_LOGIN_RATE_WINDOW"},
		{"shutdown timeout without a unit", map[string]string{"AICODE_SHUTDOWN_TIMEOUT": "5"}, "AICODE_SHUTDOWN_TIMEOUT"},
		{"shutdown timeout negative", map[string]string{"AICODE_SHUTDOWN_TIMEOUT": "-5s"}, "AICODE_SHUTDOWN_TIMEOUT"},
		{"rate limit not a number", map[string]string{"AICODE_LOGIN_RATE_LIMIT": "ten"}, "AICODE_LOGIN_RATE_LIMIT"},
		{"rate limit fractional", map[string]string{"AICODE_LOGIN_RATE_LIMIT": "1.5"}, "AICODE_LOGIN_RATE_LIMIT"},
		{"rate limit zero", map[string]string{"AICODE_LOGIN_RATE_LIMIT": "0"}, "AICODE_LOGIN_RATE_LIMIT"},
		{"rate limit negative", map[string]string{"AICODE_LOGIN_RATE_LIMIT": "-3"}, "AICODE_LOGIN_RATE_LIMIT"},
		{"memory not a number", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "2g"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"memory overflows", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "99999999999999999999"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"memory below 16", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "15"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"memory zero", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "0"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"memory above the maximum", map[string]string{"AICODE_WORKSPACE_MEMORY_MB": "16385"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"maximum memory below the default", map[string]string{"AICODE_WORKSPACE_MAX_MEMORY_MB": "1024"}, "AICODE_WORKSPACE_MEMORY_MB"},
		{"maximum memory not a number", map[string]string{"AICODE_WORKSPACE_MAX_MEMORY_MB": "lots"}, "AICODE_WORKSPACE_MAX_MEMORY_MB"},
		{"cpus not a number", map[string]string{"AICODE_WORKSPACE_CPUS": "two"}, "AICODE_WORKSPACE_CPUS"},
		{"cpus zero", map[string]string{"AICODE_WORKSPACE_CPUS": "0"}, "AICODE_WORKSPACE_CPUS"},
		{"cpus negative", map[string]string{"AICODE_WORKSPACE_CPUS": "-1"}, "AICODE_WORKSPACE_CPUS"},
		{"cpus above the maximum", map[string]string{"AICODE_WORKSPACE_CPUS": "9"}, "AICODE_WORKSPACE_CPUS"},
		{"cpus infinite", map[string]string{"AICODE_WORKSPACE_CPUS": "Inf"}, "AICODE_WORKSPACE_CPUS"},
		{"maximum cpus below the default", map[string]string{"AICODE_WORKSPACE_MAX_CPUS": "1"}, "AICODE_WORKSPACE_CPUS"},
		{"maximum cpus not a number", map[string]string{"AICODE_WORKSPACE_MAX_CPUS": "x"}, "AICODE_WORKSPACE_MAX_CPUS"},
		{"pids not a number", map[string]string{"AICODE_WORKSPACE_PIDS": "many"}, "AICODE_WORKSPACE_PIDS"},
		{"pids below 16", map[string]string{"AICODE_WORKSPACE_PIDS": "15"}, "AICODE_WORKSPACE_PIDS"},
		{"pids above the maximum", map[string]string{"AICODE_WORKSPACE_PIDS": "4097"}, "AICODE_WORKSPACE_PIDS"},
		{"maximum pids below the default", map[string]string{"AICODE_WORKSPACE_MAX_PIDS": "100"}, "AICODE_WORKSPACE_PIDS"},
		{"maximum pids not a number", map[string]string{"AICODE_WORKSPACE_MAX_PIDS": "x"}, "AICODE_WORKSPACE_MAX_PIDS"},
		{"unknown log level", map[string]string{"AICODE_LOG_LEVEL": "verbose"}, "AICODE_LOG_LEVEL"},
		{"numeric log level", map[string]string{"AICODE_LOG_LEVEL": "4"}, "AICODE_LOG_LEVEL"},
		{"unknown log format", map[string]string{"AICODE_LOG_FORMAT": "xml"}, "AICODE_LOG_FORMAT"},
		{"cookie secure yes", map[string]string{"AICODE_COOKIE_SECURE": "yes"}, "AICODE_COOKIE_SECURE"},
		{"cookie secure 1", map[string]string{"AICODE_COOKIE_SECURE": "1"}, "AICODE_COOKIE_SECURE"},
		{"root user 0:0", map[string]string{"AICODE_WORKSPACE_USER": "0:0"}, "AICODE_WORKSPACE_USER"},
		{"root user 0:1000", map[string]string{"AICODE_WORKSPACE_USER": "0:1000"}, "AICODE_WORKSPACE_USER"},
		{"root user 0", map[string]string{"AICODE_WORKSPACE_USER": "0"}, "AICODE_WORKSPACE_USER"},
		{"root user by name", map[string]string{"AICODE_WORKSPACE_USER": "root"}, "AICODE_WORKSPACE_USER"},
		{"root user with spaces", map[string]string{"AICODE_WORKSPACE_USER": " 0:0 "}, "AICODE_WORKSPACE_USER"},
		{"short session secret", map[string]string{"AICODE_SESSION_SECRET": strings.Repeat("k", 31)}, "AICODE_SESSION_SECRET"},
		{"very short session secret", map[string]string{"AICODE_SESSION_SECRET": "secret"}, "AICODE_SESSION_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFrom(env(tt.env))
			if err == nil {
				t.Fatalf("LoadFrom(%v) succeeded; want an error naming %s", tt.env, tt.wantVar)
			}
			if !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("LoadFrom(%v) error %q does not name %s", tt.env, err, tt.wantVar)
			}
			for k, v := range tt.env {
				if k == "AICODE_SESSION_SECRET" && strings.Contains(err.Error(), v) {
					t.Fatalf("the error reveals the session secret: %q", err)
				}
			}
		})
	}
}

func TestLoadFromReportsEveryError(t *testing.T) {
	bad := map[string]string{
		"AICODE_SESSION_TTL":         "forever",
		"AICODE_LOGIN_RATE_LIMIT":    "0",
		"AICODE_WORKSPACE_MEMORY_MB": "8",
		"AICODE_WORKSPACE_CPUS":      "lots",
		"AICODE_WORKSPACE_PIDS":      "1",
		"AICODE_LOG_LEVEL":           "loud",
		"AICODE_LOG_FORMAT":          "yaml",
		"AICODE_COOKIE_SECURE":       "maybe",
		"AICODE_WORKSPACE_USER":      "root",
		"AICODE_SESSION_SECRET":      "short",
		"AICODE_SHUTDOWN_TIMEOUT":    "1",
	}
	_, err := LoadFrom(env(bad))
	if err == nil {
		t.Fatal("LoadFrom succeeded with many bad values")
	}
	for k := range bad {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("the error does not name %s:\n%v", k, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T does not carry its parts", err)
	}
	if n := len(joined.Unwrap()); n != len(bad) {
		t.Errorf("%d errors reported; want one per bad variable (%d):\n%v", n, len(bad), err)
	}
	// One line per problem, for the operator reading the log.
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(bad) {
		t.Errorf("error has %d lines; want %d", lines, len(bad))
	}
}

// TestLoadFromRefusesUnsafeValues: a workspace user named root by name or
// number ("root:root", "0:1000") is refused, and NaN is not accepted as a
// CPU count or ceiling (every comparison with NaN is false, so it would
// slip past the range checks).
func TestLoadFromRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"root user with root group", map[string]string{"AICODE_WORKSPACE_USER": "root:root"}, "AICODE_WORKSPACE_USER"},
		{"root user with another group", map[string]string{"AICODE_WORKSPACE_USER": "root:1000"}, "AICODE_WORKSPACE_USER"},
		{"cpus NaN", map[string]string{"AICODE_WORKSPACE_CPUS": "NaN"}, "AICODE_WORKSPACE_CPUS"},
		{"maximum cpus NaN", map[string]string{"AICODE_WORKSPACE_MAX_CPUS": "NaN"}, "AICODE_WORKSPACE_MAX_CPUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadFrom(env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("LoadFrom(%v) = (workspace %+v), %v; want an error naming %s", tt.env, c.Workspace, err, tt.wantVar)
			}
		})
	}
}

func TestLoadFromRefusesBadStatsSettings(t *testing.T) {
	for k, v := range map[string]string{
		"AICODE_STATS_GRACE":         "-1s",
		"AICODE_STATS_RETENTION":     "10m",
		"AICODE_STATS_COLLECT_EVERY": "1s",
	} {
		_, err := LoadFrom(env(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: error %v does not name the variable", k, v, err)
		}
	}
}

func TestLoadFromRefusesBadTerminalSettings(t *testing.T) {
	for k, v := range map[string]string{
		"AICODE_TERMINAL_SHELL":             "bash; rm -rf /",
		"AICODE_TERMINAL_SCROLLBACK_KB":     "1",
		"AICODE_TERMINAL_PING_INTERVAL":     "10ms",
		"AICODE_TERMINAL_MAX_PER_WORKSPACE": "0",
		"AICODE_TERMINAL_OPEN_PER_MINUTE":   "-3",
		"AICODE_TERMINAL_GRACE":             "soon",
		"AICODE_TERMINAL_IDLE_TIMEOUT":      "-1h",
	} {
		_, err := LoadFrom(env(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: error %v does not name the variable", k, v, err)
		}
	}
	c, err := LoadFrom(env(map[string]string{"AICODE_TERMINAL_IDLE_TIMEOUT": "0"}))
	if err != nil || c.Terminal.IdleTimeout != 0 {
		t.Errorf("idle timeout 0 (off): %v %v", c.Terminal.IdleTimeout, err)
	}
}

// core drops the parts of the configuration that have their own parser
// file and test (redis.go, blob.go, authcfg.go, metrics.go, files.go).
func core(c Config) Config {
	c.Redis, c.Blob, c.Auth, c.Metrics, c.Files = RedisConfig{}, BlobConfig{}, AuthConfig{}, MetricsConfig{}, FilesConfig{}
	return c
}
