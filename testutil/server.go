package testutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"aicode/app"
	"aicode/services/config"
	"aicode/services/engine"
	"aicode/services/store"
)

// Options adjust a test server. Zero values give SQLite in a temporary
// directory, the busybox test image and network mode none.
type Options struct {
	DataDir     string // reuse a data directory (restart scenarios)
	DatabaseURL string
	Image       string
	Env         map[string]string
	// LogTo receives the server log; nil discards it unless AICODE_TEST_LOG
	// is set, which sends it to stderr.
	LogTo io.Writer
}

// Server is a running application on a loopback port.
type Server struct {
	URL  string
	App  *app.App
	Opts Options

	ln      net.Listener
	done    chan error
	stopped bool
}

// StartServer boots the full application. It is shut down, and every
// container it created removed, when the test ends.
func StartServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Image == "" {
		o.Image = BusyboxImage(t)
	}
	env := map[string]string{
		"AICODE_DATA_DIR":            o.DataDir,
		"AICODE_WORKSPACE_IMAGE":     o.Image,
		"AICODE_WORKSPACE_NETWORK":   "none",
		"AICODE_WORKSPACE_MEMORY_MB": "128",
		"AICODE_WORKSPACE_CPUS":      "0.5",
		"AICODE_WORKSPACE_PIDS":      "64",
		"AICODE_LOG_LEVEL":           "debug",
		"AICODE_LOGIN_RATE_LIMIT":    "1000",
	}
	if o.DatabaseURL != "" {
		env["DATABASE_URL"] = o.DatabaseURL
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.LoadFrom(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w := o.LogTo
	if w == nil {
		w = io.Discard
		if os.Getenv("AICODE_TEST_LOG") != "" {
			w = os.Stderr
		}
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx := context.Background()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start app: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	a.Start()
	s := &Server{URL: "http://" + ln.Addr().String(), App: a, Opts: o, ln: ln, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ln) }()
	t.Cleanup(func() {
		s.removeContainers(t)
		s.Stop(t)
	})
	return s
}

// Stop shuts the server down gracefully (idempotent).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.App.Shutdown(ctx); err != nil {
		var buf strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("shutdown: %v\ngoroutines:\n%s", err, buf.String())
	}
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		var buf strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("server did not stop serving\ngoroutines:\n%s", buf.String())
	}
}

// MarkStopped records that the test shut the app down itself. The
// containers it made are still removed at cleanup.
func (s *Server) MarkStopped() {
	s.stopped = true
}

// Restart stops the server and boots a new one on the same data directory
// and database, as an operator restarting the process would.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Stop(t)
	return StartServer(t, s.Opts)
}

// removeContainers deletes the containers of workspaces this server knows,
// so tests leave the engine as they found it. It opens its own store and
// engine client: the app may have been shut down already.
func (s *Server) removeContainers(t testing.TB) {
	removeContainersOf(s.App.Config.DatabaseURL, s.App.Config.DockerHost)
}

// removeContainersOf deletes the containers of the workspaces stored in
// the database at databaseURL.
func removeContainersOf(databaseURL, dockerHost string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return
	}
	defer st.Close()
	all, err := st.AllWorkspaces(ctx)
	if err != nil || len(all) == 0 {
		return
	}
	ids := map[string]bool{}
	for _, w := range all {
		ids[w.ID] = true
	}
	eng, err := engine.New(engine.Options{Host: dockerHost})
	if err != nil {
		return
	}
	defer eng.Close()
	list, err := eng.ListManaged(ctx)
	if err != nil {
		return
	}
	for _, c := range list {
		if ids[c.Labels[engine.LabelWorkspaceID]] {
			_ = eng.RemoveContainer(ctx, c.ID)
		}
	}
}

// WorkspacesRoot is the server's resolved workspaces root.
func (s *Server) WorkspacesRoot() string { return s.App.Workspaces.Root().Path() }

// MkdirInRoot creates a directory under the workspaces root.
func (s *Server) MkdirInRoot(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(s.WorkspacesRoot(), rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// UniqueName returns a workspace name unlikely to clash across tests that
// share one engine.
func UniqueName(prefix string) string {
	n := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
	return strings.ToLower(n)
}
