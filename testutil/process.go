package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aicode/services/config"
	"aicode/services/store"
)

// ProcessOptions adjust an app run as its own OS process. Zero values give
// SQLite in a temporary data directory, the busybox test image and
// network mode none.
type ProcessOptions struct {
	DataDir string // reuse a data directory
	Image   string
	Env     map[string]string
}

// Process is the app built from cmd/aicli and run with `aicli serve`, so a
// test can kill it for real (SIGKILL: no shutdown code runs) and start it
// again on the same data directory and port.
type Process struct {
	URL         string
	Addr        string
	DataDir     string
	DatabaseURL string

	t       testing.TB
	env     []string
	logPath string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	starts int

	storeOnce sync.Once
	st        store.Store
	stErr     error
}

// appBinary builds cmd/aicli once per test binary run. Its directory
// outlives the run (there is no hook at the end of it), so each build
// removes those of runs that have ended, named by their pid.
var appBinary = sync.OnceValues(func() (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "aicode-test-aicli-*"))
	for _, d := range old {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "aicode-test-aicli-"), "-")
		if n, err := strconv.Atoi(pid); err == nil && syscall.Kill(n, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("aicode-test-aicli-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "aicli")
	// Any directory of the module resolves the import path.
	cmd := exec.Command(goTool(), "build", "-o", bin, "aicode/cmd/aicli")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build aicode/cmd/aicli: %v\n%s", err, out)
	}
	return bin, nil
})

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if gr := os.Getenv("GOROOT"); gr != "" {
		return filepath.Join(gr, "bin", "go")
	}
	return "go"
}

// inheritedOut are variables of the test's environment the app must not
// see: its configuration comes from the options alone, and a developer's
// real credentials never reach a test server.
func inheritedOut(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	return strings.HasPrefix(k, "AICODE_") || k == "DATABASE_URL" || k == "ANTHROPIC_API_KEY" || k == "CLAUDE_CODE_OAUTH_TOKEN"
}

// StartProcess builds the app (once), starts it and waits until it
// answers /healthz. When the test ends it is stopped (SIGTERM, then
// SIGKILL), the containers of its workspaces are removed, and, if the test
// failed, its log goes to the test log.
func StartProcess(t testing.TB, o ProcessOptions) *Process {
	t.Helper()
	bin, err := appBinary()
	if err != nil {
		t.Fatalf("build the app: %v", err)
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Image == "" {
		o.Image = BusyboxImage(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()

	vals := map[string]string{
		"AICODE_DATA_DIR":            o.DataDir,
		"AICODE_LISTEN_ADDR":         addr,
		"AICODE_WORKSPACE_IMAGE":     o.Image,
		"AICODE_WORKSPACE_NETWORK":   "none",
		"AICODE_WORKSPACE_MEMORY_MB": "128",
		"AICODE_WORKSPACE_CPUS":      "0.5",
		"AICODE_WORKSPACE_PIDS":      "64",
		"AICODE_LOG_LEVEL":           "debug",
		"AICODE_LOGIN_RATE_LIMIT":    "1000",
	}
	for k, v := range o.Env {
		vals[k] = v
	}
	var env []string
	for _, kv := range os.Environ() {
		if !inheritedOut(kv) {
			env = append(env, kv)
		}
	}
	for k, v := range vals {
		env = append(env, k+"="+v)
	}
	// The app's own parsing says where its database is (and rejects a bad
	// configuration here rather than in the child's log).
	cfg, err := config.LoadFrom(func(k string) string {
		if v, ok := vals[k]; ok {
			return v
		}
		if kv := k + "="; !inheritedOut(kv) {
			return os.Getenv(k)
		}
		return ""
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	p := &Process{
		URL: "http://" + addr, Addr: addr, DataDir: o.DataDir, DatabaseURL: cfg.DatabaseURL,
		t: t, env: append([]string{bin}, env...), logPath: filepath.Join(t.TempDir(), "server.log"),
	}
	t.Cleanup(func() {
		p.Stop()
		if p.st != nil {
			_ = p.st.Close()
		}
		removeContainersOf(p.DatabaseURL, cfg.DockerHost)
		if t.Failed() {
			t.Logf("server log (%s):\n%s", p.logPath, p.Log())
		}
	})
	p.start()
	return p
}

// start runs the binary and waits for /healthz.
func (p *Process) start() {
	t := p.t
	t.Helper()
	p.starts++
	lf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "----- start %d at %s -----\n", p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.env[0], "serve")
	cmd.Env = p.env[1:]
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the app: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := hc.Get(p.URL + "/healthz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("the app exited during start (%s); log:\n%s", cmd.ProcessState, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not answer /healthz within a minute; log:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the current process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (p *Process) Kill() {
	p.t.Helper()
	if !p.Running() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill the app: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatal("the app did not die within 30s of SIGKILL")
	}
}

// Stop shuts the process down gracefully (SIGTERM), killing it if it
// takes longer than 30s.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("the app did not stop within 30s of SIGTERM; killing it")
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Restart starts the app again on the same data directory, port and
// environment, stopping it gracefully first if it still runs.
func (p *Process) Restart() {
	p.t.Helper()
	p.Stop()
	p.start()
}

// Store opens the app's database from the test process (read-only for
// SQLite) and keeps it open until the test ends.
func (p *Process) Store() store.Store {
	p.t.Helper()
	p.storeOnce.Do(func() {
		u := p.DatabaseURL
		if path, ok := strings.CutPrefix(u, "sqlite:"); ok {
			u = "file:" + strings.TrimPrefix(path, "//") + "?mode=ro"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.st, p.stErr = store.Open(ctx, u)
	})
	if p.stErr != nil {
		p.t.Fatalf("open the app's store: %v", p.stErr)
	}
	return p.st
}

// Log is what the process (every start of it) has logged so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}
