package fakeanthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests in this package run the real claude CLI from the workspace
// image. They fail, never skip, when docker or the image is missing: CI
// builds the image before it runs the tests.

func workspaceImage() string {
	if img := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE"); img != "" {
		return img
	}
	return "aicode-workspace:latest"
}

func requireDocker(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("these tests run the real claude CLI in a container and need the docker CLI on PATH: %v", err)
	}
	img := workspaceImage()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", img).CombinedOutput()
	if err != nil {
		t.Fatalf("workspace image %s is not available (build it with `make workspace-image` or set AICODE_TEST_WORKSPACE_IMAGE): %v\n%s", img, err, out)
	}
	return img
}

// cliUser is the uid:gid the CLI runs as: the CLI refuses
// bypassPermissions as root, and the image's user is dev (1000).
func cliUser() (uid, gid int) {
	if os.Getuid() == 0 {
		return 1000, 1000
	}
	return os.Getuid(), os.Getgid()
}

// ownedDir makes a temporary directory the container user can write.
func ownedDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := cliUser()
	if os.Getuid() == 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type cliRun struct {
	Server    *Server
	Args      []string // after "claude"
	Env       map[string]string
	Workspace string // host dir mounted at /workspace
	Home      string // host dir mounted at /home/dev; a fresh one when empty
	Timeout   time.Duration
	Name      string // container name; generated when empty
	// Started, when set, is called once the container process runs (not
	// necessarily the CLI inside it).
	Started func(name string)
	// Exec runs claude via `docker exec` in a long-lived container, the
	// way the app does, instead of as the container's PID 1.
	Exec bool
}

type cliResult struct {
	Stdout, Stderr []byte
	ExitCode       int
	Elapsed        time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit=%d elapsed=%s\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
}

func runCLI(t testing.TB, run cliRun) cliResult {
	t.Helper()
	img := requireDocker(t)
	if run.Timeout == 0 {
		run.Timeout = 3 * time.Minute
	}
	if run.Home == "" {
		run.Home = ownedDir(t, "home")
	}
	if run.Workspace == "" {
		run.Workspace = ownedDir(t, "workspace")
	}
	if run.Name == "" {
		run.Name = "fakeanthropic-" + strings.ToLower(randomID(10))
	}
	uid, gid := cliUser()
	env := map[string]string{
		"ANTHROPIC_API_KEY":                        "sk-test",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
		"HOME": "/home/dev",
	}
	if run.Server != nil {
		env["ANTHROPIC_BASE_URL"] = run.Server.URL()
	}
	for k, v := range run.Env {
		env[k] = v
	}
	common := []string{"--network", "host", "--user", fmt.Sprintf("%d:%d", uid, gid),
		"-v", run.Workspace + ":/workspace", "-v", run.Home + ":/home/dev", "-w", "/workspace"}
	var envArgs []string
	for k, v := range env {
		envArgs = append(envArgs, "-e", k+"="+v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), run.Timeout)
	defer cancel()
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", run.Name).Run() })

	var args []string
	if run.Exec {
		up := append([]string{"run", "-d", "--rm", "--name", run.Name}, common...)
		up = append(up, img, "sleep", "infinity")
		if out, err := exec.CommandContext(ctx, "docker", up...).CombinedOutput(); err != nil {
			t.Fatalf("start container: %v\n%s", err, out)
		}
		// The shell records its pid and then becomes claude, so a test
		// can signal exactly that process.
		args = append([]string{"exec", "-u", fmt.Sprintf("%d:%d", uid, gid), "-w", "/workspace"}, envArgs...)
		args = append(args, run.Name, "sh", "-c", `echo $$ > /tmp/claude.pid; exec claude "$@"`, "claude")
	} else {
		args = append([]string{"run", "--rm", "--name", run.Name}, common...)
		args = append(args, envArgs...)
		args = append(args, img, "claude")
	}
	args = append(args, run.Args...)

	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	if run.Started != nil {
		run.Started(run.Name)
	}
	err := cmd.Wait()
	res := cliResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("docker run: %v\n%s", err, res)
	}
	if ctx.Err() != nil {
		t.Fatalf("claude did not finish within %s\n%s", run.Timeout, res)
	}
	return res
}

// signalCLI sends sig (e.g. "INT") to the claude process of an Exec run.
func signalCLI(t testing.TB, name, sig string) {
	t.Helper()
	out, err := exec.Command("docker", "exec", name, "sh", "-c", "kill -"+sig+" $(cat /tmp/claude.pid)").CombinedOutput()
	if err != nil {
		t.Fatalf("signal %s: %v\n%s", sig, err, out)
	}
}

func sessionID(t testing.TB, stdout []byte) string {
	t.Helper()
	line, _, _ := bytes.Cut(stdout, []byte("\n"))
	var ev struct {
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal(line, &ev); err != nil || ev.SessionID == "" {
		t.Fatalf("no session_id in the first line %q: %v", line, err)
	}
	return ev.SessionID
}
