// Package deploy checks the deployment files: the compose files (loaded
// with compose-go, the loader `docker compose` itself uses), the API image's
// Dockerfile, nginx's configuration (run by a real nginx in front of a test
// backend) and the Docker API proxy's configuration (a real nginx in front
// of the real engine, driven by the app's own engine adapter).
package deploy

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// repo is the repository root, relative to this package.
const repo = ".."

func repoPath(t testing.TB, rel string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// envFile parses KEY=VALUE lines (comments and blank lines skipped).
func envFile(t testing.TB, rel string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, rel)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", rel, line)
		}
		out[k] = v
	}
	return out
}

// prodSecrets fills deploy.env.example's required values the way an
// operator would.
func prodSecrets() map[string]string {
	return map[string]string{
		"PUBLIC_URL":             "https://aicode.example.com",
		"POSTGRES_PASSWORD":      "pg-secret-0123456789",
		"REDIS_PASSWORD":         "redis-secret-0123456789",
		"MINIO_ROOT_PASSWORD":    "minio-secret-0123456789",
		"MINIO_KMS_KEY":          "bWluaW8ta21zLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=",
		"GRAFANA_ADMIN_PASSWORD": "grafana-secret-0123456789",
		"AICODE_SESSION_SECRET":  "session-secret-0123456789abcdef0123456789",
		"AICODE_SECRET_KEY":      strings.Repeat("ab", 32),
		"AICODE_METRICS_TOKEN":   "metrics-token-0123456789",
	}
}

// deployEnv is deploy.env.example with overrides applied.
func deployEnv(t testing.TB, overrides map[string]string) map[string]string {
	env := envFile(t, "deploy.env.example")
	for k, v := range overrides {
		env[k] = v
	}
	return env
}

// loadCompose loads a compose file as `docker compose config` would, with
// env as the only interpolation source (neither the process environment
// nor a local .env leaks in). Environment from env_file is left
// unresolved, so Environment holds what the file itself sets.
func loadCompose(t testing.TB, file string, env map[string]string) (*types.Project, error) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	opts, err := cli.NewProjectOptions([]string{repoPath(t, file)},
		cli.WithWorkingDirectory(repoPath(t, ".")),
		cli.WithEnv(list),
		cli.WithoutEnvironmentResolution,
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

func mustLoadCompose(t testing.TB, file string, env map[string]string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, file, env)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return p
}

// appReadsVariables lists the variables the app's configuration reads, as
// services/config/envexample_test.go finds them.
func appReadsVariables(t testing.TB) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "services/config/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	re := regexp.MustCompile(`"((?:AICODE|DOCKER)_[A-Z0-9_]+|DATABASE_URL)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			read[m[1]] = true
		}
	}
	if len(read) < 20 {
		t.Fatalf("found only %d variables in services/config; the pattern is stale", len(read))
	}
	return read
}

// lookBinary finds a program the test needs, failing (never skipping) with
// how to get it: scripts/test-env.sh installs it on Debian.
func lookBinary(t testing.TB, envVar, name, pkg string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("this test needs %s: install Debian's %s (scripts/test-env.sh does) or set %s", name, pkg, envVar)
	return ""
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on addr.
func waitListening(t testing.TB, addr string, exited <-chan struct{}, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("the server exited before listening on %s:\n%s", addr, logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 15s:\n%s", addr, logs())
}

// replaceOnce replaces old by new in s, failing when old is not there
// exactly once: a config change that breaks the test's rendering is
// reported, not silently skipped.
func replaceOnce(t testing.TB, what, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("%s: expected %q exactly once, found %d times", what, old, n)
	}
	return strings.Replace(s, old, new, 1)
}
