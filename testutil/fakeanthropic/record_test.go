//go:build clitools

package fakeanthropic

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRecordStreamJSON refreshes the stream-json recordings that the
// parser's tests read. It is a tool, not a check, so it is built only
// when asked: go test -tags clitools ./testutil/fakeanthropic -run TestRecordStreamJSON -v
func TestRecordStreamJSON(t *testing.T) {
	dir := filepath.Join("..", "..", "services", "tasks", "streamjson", "testdata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	save := func(t *testing.T, name string, res cliResult) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), res.Stdout, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exit=%d elapsed=%s stdout=%dB stderr=%q", name, res.ExitCode, res.Elapsed.Round(time.Millisecond), len(res.Stdout), res.Stderr)
	}
	base := []string{"--output-format", "stream-json", "--verbose"}
	args := func(prompt string, extra ...string) []string {
		return append(append([]string{"-p", prompt}, base...), extra...)
	}

	t.Run("write_and_resume", func(t *testing.T) {
		srv := New(t, WithTurns(
			Blocks(TextBlock("I'll create the file."), ToolUse("Write", map[string]string{"file_path": "/workspace/hello.txt", "content": "Hello, world!\n"})),
			Text("Done: created hello.txt."),
		))
		home, ws := ownedDir(t, "home"), ownedDir(t, "ws")
		res := runCLI(t, cliRun{Server: srv, Home: home, Workspace: ws, Args: args("Create hello.txt saying hello", "--permission-mode", "acceptEdits")})
		save(t, "write_file.jsonl", res)
		if _, err := os.Stat(filepath.Join(ws, "hello.txt")); err != nil {
			t.Fatalf("hello.txt was not written: %v", err)
		}
		sid := sessionID(t, res.Stdout)
		srv.SetTurns(Text("Earlier I created hello.txt with a greeting."))
		res = runCLI(t, cliRun{Server: srv, Home: home, Workspace: ws, Args: args("What did you do?", "--resume", sid, "--permission-mode", "acceptEdits")})
		save(t, "resume.jsonl", res)
		res = runCLI(t, cliRun{Server: srv, Workspace: ws, Args: args("What did you do?", "--resume", sid)})
		save(t, "resume_missing_session.jsonl", res)
	})

	t.Run("auth_error_401", func(t *testing.T) {
		srv := New(t, WithAPIKey("sk-the-right-one"))
		res := runCLI(t, cliRun{Server: srv, Args: args("hi"), Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "2"}})
		save(t, "auth_error_401.jsonl", res)
	})

	t.Run("bash_long_output", func(t *testing.T) {
		srv := New(t, WithTurns(
			Blocks(ToolUse("Bash", map[string]string{"command": "seq 1 40000", "description": "Print many numbers"})),
			Text("Printed 40000 lines."),
		))
		res := runCLI(t, cliRun{Server: srv, Args: args("count", "--permission-mode", "bypassPermissions")})
		save(t, "bash_long_output.jsonl", res)
		if rs := srv.MainRequests(); len(rs) == 2 {
			if tr := rs[1].ToolResults(); len(tr) == 1 {
				t.Logf("tool_result sent to the API: %d bytes, head %.200q tail %.300q", len(tr[0].Content), tr[0].Content, tr[0].Content[max(0, len(tr[0].Content)-300):])
			}
		}
	})

	t.Run("overloaded_529", func(t *testing.T) {
		srv := New(t, WithScript(func(Request) Turn { return Fail(OverloadedError()) }))
		res := runCLI(t, cliRun{Server: srv, Args: args("hi"), Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "2"}})
		save(t, "overloaded_529.jsonl", res)
	})

	t.Run("network_refused", func(t *testing.T) {
		srv := New(t)
		url := srv.URL()
		srv.Close()
		res := runCLI(t, cliRun{Args: args("hi"), Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "1", "ANTHROPIC_BASE_URL": url}})
		save(t, "network_refused.jsonl", res)
	})

	t.Run("stream_dropped", func(t *testing.T) {
		srv := New(t, WithTurns(
			Turn{Blocks: []Block{TextBlock("This answer is cut off half way through the stream.")}, DropAfter: 4},
			Text("Second try worked."),
		))
		res := runCLI(t, cliRun{Server: srv, Args: args("hi"), Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "2"}})
		save(t, "stream_dropped.jsonl", res)
		for _, r := range srv.Requests() {
			t.Logf("request %d kind=%s stream=%v status=%d", r.Seq, r.Kind, r.Stream, r.Status)
		}
	})

	t.Run("partial_messages", func(t *testing.T) {
		srv := New(t, WithTurns(
			Blocks(TextBlock("Let me check the directory contents first."), ToolUse("Bash", map[string]string{"command": "ls -la", "description": "List files"})),
			Text("The workspace is empty."),
		))
		res := runCLI(t, cliRun{Server: srv, Args: args("what is here?", "--permission-mode", "bypassPermissions", "--include-partial-messages")})
		save(t, "partial_messages.jsonl", res)
	})

	t.Run("max_turns", func(t *testing.T) {
		srv := New(t, WithScript(func(Request) Turn {
			return Blocks(ToolUse("Bash", map[string]string{"command": "echo again", "description": "Print a word"}))
		}))
		res := runCLI(t, cliRun{Server: srv, Args: args("loop forever", "--permission-mode", "bypassPermissions", "--max-turns", "2")})
		save(t, "max_turns.jsonl", res)
	})

	t.Run("permission_denied", func(t *testing.T) {
		srv := New(t, WithTurns(
			Blocks(ToolUse("Write", map[string]string{"file_path": "/workspace/x.txt", "content": "x"})),
			Text("I could not write the file."),
		))
		res := runCLI(t, cliRun{Server: srv, Args: args("write x")})
		save(t, "permission_denied.jsonl", res)
	})

	signal := func(t *testing.T, file, sig string, turns ...Turn) {
		srv := New(t, WithTurns(turns...))
		sent := make(chan struct{})
		res := runCLI(t, cliRun{Server: srv, Exec: true, Args: args("hi", "--permission-mode", "bypassPermissions"),
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
					signalCLI(t, name, sig)
				}()
			}})
		<-sent
		save(t, file, res)
	}
	slow := Turn{Blocks: []Block{TextBlock(strings.Repeat("streaming slowly ", 30))}, Delay: 300 * time.Millisecond}
	t.Run("sigint_streaming", func(t *testing.T) { signal(t, "sigint_streaming.jsonl", "INT", slow) })
	t.Run("sigint_waiting", func(t *testing.T) { signal(t, "sigint_waiting.jsonl", "INT", Turn{Hang: true}) })
	t.Run("sigint_tool", func(t *testing.T) {
		signal(t, "sigint_tool.jsonl", "INT",
			Blocks(ToolUse("Bash", map[string]string{"command": "timeout 60 tail -f /dev/null; echo finished", "description": "Wait for a minute"})),
			Text("Done."))
	})
	t.Run("sigterm_streaming", func(t *testing.T) { signal(t, "sigterm_streaming.jsonl", "TERM", slow) })
}
