//go:build clitools

package fakeanthropic

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The TestFacts tests re-check, against a new CLI version, the behaviour
// written down in services/tasks/streamjson/testdata/FACTS.md. They log
// what they see rather than assert much, and take minutes, so they are
// built only when asked:
//
//	go test -tags clitools ./testutil/fakeanthropic -run TestFacts -v -timeout 30m

func facts(t *testing.T) {}

var streamArgs = []string{"--output-format", "stream-json", "--verbose"}

func promptArgs(prompt string, extra ...string) []string {
	return append(append([]string{"-p", prompt}, streamArgs...), extra...)
}

func TestFactsPermissionModes(t *testing.T) {
	facts(t)
	for _, mode := range []string{"default", "acceptEdits", "bypassPermissions", "dontAsk", "auto", "manual", "plan", "--dangerously-skip-permissions"} {
		t.Run(mode, func(t *testing.T) {
			srv := New(t, WithTurns(
				Blocks(ToolUse("Write", map[string]string{"file_path": "/workspace/hello.txt", "content": "hi\n"})),
				Blocks(ToolUse("Bash", map[string]string{"command": "echo from-bash > /workspace/bash.txt", "description": "Write a file"})),
				Text("Done."),
			))
			extra := []string{"--permission-mode", mode}
			if strings.HasPrefix(mode, "--") {
				extra = []string{mode}
			}
			ws := ownedDir(t, "ws")
			res := runCLI(t, cliRun{Server: srv, Workspace: ws, Args: promptArgs("write", extra...)})
			_, werr := os.Stat(filepath.Join(ws, "hello.txt"))
			_, berr := os.Stat(filepath.Join(ws, "bash.txt"))
			t.Logf("mode %s: exit=%d Write ran=%v Bash ran=%v", mode, res.ExitCode, werr == nil, berr == nil)
		})
	}
	t.Run("root", func(t *testing.T) {
		img := requireDocker(t)
		for _, mode := range []string{"bypassPermissions", "acceptEdits"} {
			out, err := exec.Command("docker", "run", "--rm", "--user", "0:0", "-e", "ANTHROPIC_API_KEY=sk-test",
				"-e", "ANTHROPIC_BASE_URL=http://127.0.0.1:9", img, "claude", "-p", "hi", "--permission-mode", mode).CombinedOutput()
			t.Logf("as root, %s: %v\n%.500s", mode, err, out)
		}
	})
}

func TestFactsMaxTurns(t *testing.T) {
	facts(t)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--max-turns", "1"}, nil},
		{"env", nil, map[string]string{"CLAUDE_CODE_MAX_TURNS": "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := New(t, WithScript(func(Request) Turn {
				return Blocks(ToolUse("Bash", map[string]string{"command": "echo step", "description": "Print a word"}))
			}))
			res := runCLI(t, cliRun{Server: srv, Env: c.env, Args: promptArgs("loop", append([]string{"--permission-mode", "bypassPermissions"}, c.args...)...)})
			t.Logf("%s: exit=%d model calls=%d last line: %.400s", c.name, res.ExitCode, len(srv.MainRequests()), lastLine(res.Stdout))
		})
	}
}

func TestFactsSignals(t *testing.T) {
	facts(t)
	slow := Turn{Blocks: []Block{TextBlock(strings.Repeat("streaming slowly ", 40))}, Delay: 300 * time.Millisecond}
	bash := Blocks(ToolUse("Bash", map[string]string{"command": "timeout 60 tail -f /dev/null; echo finished", "description": "Wait"}))
	for i := 0; i < 3; i++ {
		for _, c := range []struct {
			name, sig string
			turn      Turn
		}{
			{"INT waiting for the API", "INT", Turn{Hang: true}},
			{"INT while streaming", "INT", slow},
			{"INT during a tool", "INT", bash},
			{"TERM waiting for the API", "TERM", Turn{Hang: true}},
			{"TERM while streaming", "TERM", slow},
			{"TERM during a tool", "TERM", bash},
		} {
			srv := New(t, WithTurns(c.turn, Text("Done.")))
			sent := make(chan time.Time, 1)
			res := runCLI(t, cliRun{Server: srv, Exec: true, Args: promptArgs("hi", "--permission-mode", "bypassPermissions"),
				Started: func(name string) {
					go func() {
						defer close(sent)
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						if _, err := srv.WaitMain(ctx, 1); err != nil {
							t.Errorf("no request: %v", err)
							return
						}
						time.Sleep(1500 * time.Millisecond)
						signalCLI(t, name, c.sig)
						sent <- time.Now()
					}()
				}})
			at := <-sent
			t.Logf("%s #%d: exit=%d result=%v lines=%d ended %s after the signal; last: %.300s", c.name, i, res.ExitCode,
				bytes.Contains(res.Stdout, []byte(`"type":"result"`)), bytes.Count(res.Stdout, []byte("\n")),
				time.Since(at).Round(time.Millisecond), lastLine(res.Stdout))
		}
	}
}

func TestFactsStartup(t *testing.T) {
	facts(t)
	for i := 0; i < 3; i++ {
		srv := New(t, WithTurns(Text("hi")))
		var start time.Time
		res := runCLI(t, cliRun{Server: srv, Exec: true, Args: promptArgs("hi"), Started: func(string) { start = time.Now() }})
		t.Logf("docker exec: first API request %s after start, exit after %s", srv.Requests()[0].Time.Sub(start).Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
	}
	res := runCLI(t, cliRun{Exec: true, Args: []string{"--version"}})
	t.Logf("claude --version: %s in %s", bytes.TrimSpace(res.Stdout), res.Elapsed.Round(time.Millisecond))
}

// TestFactsDefaultRetries shows what an unattended 401 costs: the CLI
// retries it like a transient error. Takes over three minutes.
func TestFactsDefaultRetries(t *testing.T) {
	facts(t)
	srv := New(t, WithAPIKey("sk-the-right-key"))
	res := runCLI(t, cliRun{Server: srv, Timeout: 8 * time.Minute, Args: promptArgs("hi")})
	rs := srv.Requests()
	t.Logf("401 without CLAUDE_CODE_MAX_RETRIES: %d requests over %s, exit=%d stderr=%q",
		len(rs), rs[len(rs)-1].Time.Sub(rs[0].Time).Round(time.Second), res.ExitCode, res.Stderr)
}

func TestFactsSessionsAndAuth(t *testing.T) {
	facts(t)
	t.Run("CLAUDE_CONFIG_DIR", func(t *testing.T) {
		srv := New(t, WithTurns(Text("one")))
		ws := ownedDir(t, "ws")
		res := runCLI(t, cliRun{Server: srv, Workspace: ws, Args: promptArgs("hi"), Env: map[string]string{"CLAUDE_CONFIG_DIR": "/workspace/.claude-config"}})
		out, _ := exec.Command("find", ws, "-type", "f").CombinedOutput()
		t.Logf("exit=%d files:\n%s", res.ExitCode, out)
	})
	t.Run("ANTHROPIC_AUTH_TOKEN", func(t *testing.T) {
		srv := New(t, WithTurns(Text("one")))
		res := runCLI(t, cliRun{Server: srv, Args: promptArgs("hi"), Env: map[string]string{"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": "tok-123"}})
		for _, r := range srv.Requests() {
			t.Logf("exit=%d Authorization=%q X-Api-Key=%q", res.ExitCode, r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
		}
	})
	t.Run("without DISABLE_NONESSENTIAL_TRAFFIC", func(t *testing.T) {
		srv := New(t, WithTurns(Text("one")))
		res := runCLI(t, cliRun{Server: srv, Args: promptArgs("hi"), Env: map[string]string{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": ""}})
		for _, r := range srv.Requests() {
			t.Logf("exit=%d %s %s kind=%s", res.ExitCode, r.Method, r.Path, r.Kind)
		}
	})
	t.Run("requests", func(t *testing.T) {
		srv := New(t, WithTurns(Text("one")))
		runCLI(t, cliRun{Server: srv, Args: promptArgs("hi")})
		r := srv.Requests()[0]
		t.Logf("%s %s?%s model=%s max_tokens=%d tools=%v betas=%v", r.Method, r.Path, r.RawQuery, r.Model, r.MaxTokens, r.Tools, r.Betas())
		for k, v := range r.Header {
			t.Logf("  %s: %v", k, v)
		}
	})
	t.Run("large Write compacts", func(t *testing.T) {
		content := strings.Repeat("0123456789abcdef", 1<<18) // 4 MiB ≈ 1M tokens
		srv := New(t, WithTurns(Blocks(ToolUse("Write", map[string]string{"file_path": "/workspace/big.txt", "content": content})), Text("ok")))
		res := runCLI(t, cliRun{Server: srv, Args: promptArgs("hi", "--permission-mode", "acceptEdits")})
		for _, l := range bytes.Split(res.Stdout, []byte("\n")) {
			t.Logf("line of %d bytes: %.100s", len(l), l)
		}
		for _, r := range srv.Requests() {
			t.Logf("request %d kind=%s stream=%v", r.Seq, r.Kind, r.Stream)
		}
	})
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}
