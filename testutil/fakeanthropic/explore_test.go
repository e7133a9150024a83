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

func explore(t *testing.T) {
	if os.Getenv("FAKEANTHROPIC_EXPLORE") == "" {
		t.Skip("exploration only")
	}
}

func TestExplorePermissionModes(t *testing.T) {
	explore(t)
	for _, mode := range []string{"default", "acceptEdits", "bypassPermissions", "dontAsk", "auto", "manual", "plan", "skip"} {
		t.Run(mode, func(t *testing.T) {
			srv := New(t, WithLog(), WithTurns(
				Blocks(TextBlock("Writing."), ToolUse("Write", map[string]string{"file_path": "/workspace/hello.txt", "content": "hi\n"})),
				Text("Done."),
			))
			args := []string{"-p", "write hello", "--output-format", "stream-json", "--verbose"}
			if mode == "skip" {
				args = append(args, "--dangerously-skip-permissions")
			} else {
				args = append(args, "--permission-mode", mode)
			}
			ws := ownedDir(t, "ws")
			res := runCLI(t, cliRun{Server: srv, Args: args, Workspace: ws})
			_, err := os.Stat(filepath.Join(ws, "hello.txt"))
			t.Logf("mode=%s fileExists=%v\n%s", mode, err == nil, res)
			for _, r := range srv.MainRequests() {
				for _, tr := range r.ToolResults() {
					t.Logf("tool_result is_error=%v content=%q", tr.IsError, tr.Content)
				}
			}
		})
	}
}

func bashTurns() []Turn {
	return []Turn{
		Blocks(ToolUse("Bash", map[string]string{"command": "echo hi-from-bash; id -u", "description": "Print a greeting"})),
		Text("Done."),
	}
}

func TestExploreBashModes(t *testing.T) {
	explore(t)
	for _, mode := range []string{"acceptEdits", "auto", "bypassPermissions"} {
		t.Run(mode, func(t *testing.T) {
			srv := New(t, WithLog(), WithTurns(bashTurns()...))
			res := runCLI(t, cliRun{Server: srv, Args: []string{"-p", "run", "--output-format", "stream-json", "--verbose", "--permission-mode", mode}})
			t.Logf("mode=%s\n%s", mode, res)
			for _, r := range srv.Requests() {
				t.Logf("req kind=%s tools=%d prompt=%.200q system=%.200q", r.Kind, len(r.Tools), r.Prompt(), r.System)
				for _, tr := range r.ToolResults() {
					t.Logf("tool_result is_error=%v content=%q", tr.IsError, tr.Content)
				}
			}
		})
	}
}

func TestExploreMaxTurns(t *testing.T) {
	explore(t)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag1", []string{"--max-turns", "1"}, nil},
		{"flag2", []string{"--max-turns", "2"}, nil},
		{"env1", nil, map[string]string{"CLAUDE_CODE_MAX_TURNS": "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			turns := []Turn{}
			for i := 0; i < 4; i++ {
				turns = append(turns, Blocks(ToolUse("Bash", map[string]string{"command": "echo step", "description": "Print step"})))
			}
			turns = append(turns, Text("Done."))
			srv := New(t, WithLog(), WithTurns(turns...))
			args := append([]string{"-p", "loop", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"}, c.args...)
			res := runCLI(t, cliRun{Server: srv, Args: args, Env: c.env})
			t.Logf("%s main=%d\n%s", c.name, len(srv.MainRequests()), res)
		})
	}
}

func TestExploreErrors(t *testing.T) {
	explore(t)
	for _, c := range []struct {
		name string
		turn Turn
		env  map[string]string
	}{
		{"401", Fail(AuthError()), nil},
		{"529-retries1", Fail(OverloadedError()), map[string]string{"CLAUDE_CODE_MAX_RETRIES": "1"}},
		{"429-retries1", Fail(RateLimitError()), map[string]string{"CLAUDE_CODE_MAX_RETRIES": "1"}},
		{"drop-retries1", Turn{Blocks: []Block{TextBlock("partial answer that will be cut")}, DropAfter: 3}, map[string]string{"CLAUDE_CODE_MAX_RETRIES": "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := New(t, WithLog(), WithScript(func(Request) Turn { return c.turn }))
			res := runCLI(t, cliRun{Server: srv, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"}, Env: c.env})
			t.Logf("%s requests=%d\n%s", c.name, len(srv.Requests()), res)
			for _, r := range srv.Requests() {
				t.Logf("t=%s kind=%s retry=%s", r.Time.Format("15:04:05.000"), r.Kind, r.Header.Get("X-Stainless-Retry-Count"))
			}
		})
	}
}

func TestExploreSignals(t *testing.T) {
	explore(t)
	for _, c := range []struct {
		name, sig string
		turns     []Turn
	}{
		{"INT-hang", "INT", []Turn{{Hang: true}}},
		{"TERM-hang", "TERM", []Turn{{Hang: true}}},
		{"INT-bash", "INT", []Turn{Blocks(ToolUse("Bash", map[string]string{"command": "timeout 60 tail -f /dev/null; echo finished", "description": "Wait"})), Text("Done.")}},
		{"TERM-bash", "TERM", []Turn{Blocks(ToolUse("Bash", map[string]string{"command": "timeout 60 tail -f /dev/null; echo finished", "description": "Wait"})), Text("Done.")}},
		{"INT-streaming", "INT", []Turn{{Blocks: []Block{TextBlock("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty")}, Delay: 500 * time.Millisecond}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := New(t, WithLog(), WithTurns(c.turns...))
			sent := make(chan struct{})
			res := runCLI(t, cliRun{Server: srv, Exec: true, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"},
				Started: func(name string) {
					go func() {
						defer close(sent)
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						if _, err := srv.WaitMain(ctx, 1); err != nil {
							t.Errorf("no request: %v", err)
							return
						}
						time.Sleep(2 * time.Second)
						t.Logf("sending SIG%s at %s", c.sig, time.Now().Format("15:04:05.000"))
						out, err := exec.Command("docker", "exec", name, "sh", "-c", "kill -"+c.sig+" $(cat /tmp/claude.pid)").CombinedOutput()
						t.Logf("signal: %v %s", err, out)
					}()
				}})
			<-sent
			t.Logf("%s end=%s requests=%d\n%s", c.name, time.Now().Format("15:04:05.000"), len(srv.Requests()), res)
		})
	}
}

func TestExploreStartup(t *testing.T) {
	explore(t)
	for i := 0; i < 3; i++ {
		srv := New(t, WithTurns(Text("hi")))
		start := time.Now()
		res := runCLI(t, cliRun{Server: srv, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}})
		first := srv.Requests()[0].Time.Sub(start)
		t.Logf("run %d: total=%s firstRequest=%s exit=%d", i, res.Elapsed, first, res.ExitCode)
	}
	// Startup inside a running container (exec), as the app does.
	for i := 0; i < 3; i++ {
		srv := New(t, WithTurns(Text("hi")))
		var start time.Time
		res := runCLI(t, cliRun{Server: srv, Exec: true, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}, Started: func(string) { start = time.Now() }})
		first := srv.Requests()[0].Time.Sub(start)
		t.Logf("exec run %d: total=%s firstRequest=%s exit=%d", i, res.Elapsed, first, res.ExitCode)
	}
}

func TestExploreResume(t *testing.T) {
	explore(t)
	srv := New(t, WithLog(), WithTurns(
		Blocks(ToolUse("Write", map[string]string{"file_path": "/workspace/a.txt", "content": "A\n"})),
		Text("Wrote a.txt."),
	))
	home := ownedDir(t, "home")
	ws := ownedDir(t, "ws")
	res := runCLI(t, cliRun{Server: srv, Home: home, Workspace: ws, Args: []string{"-p", "write a", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"}})
	t.Logf("run1 %s", res)
	var sid string
	if i := bytes.Index(res.Stdout, []byte(`"session_id":"`)); i >= 0 {
		sid = string(res.Stdout[i+14 : i+14+36])
	}
	out, _ := exec.Command("find", home, "-type", "f").CombinedOutput()
	t.Logf("home files:\n%s", out)
	srv.SetTurns(Text("You asked me to write a.txt earlier; it is done."))
	res = runCLI(t, cliRun{Server: srv, Home: home, Workspace: ws, Args: []string{"-p", "what did you do?", "--resume", sid, "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"}})
	t.Logf("run2 %s", res)
	for _, r := range srv.Requests() {
		t.Logf("req kind=%s msgs=%d prompts=%q step=%d", r.Kind, len(r.Messages), r.Prompts(), r.Step())
		for _, m := range r.Messages {
			for _, c := range m.Content {
				t.Logf("   %s %s %.120q %.120q", m.Role, c.Type, c.Text, c.Content)
			}
		}
	}
	// Resume with a fresh HOME: what happens?
	res = runCLI(t, cliRun{Server: srv, Workspace: ws, Args: []string{"-p", "again", "--resume", sid, "--output-format", "stream-json", "--verbose"}})
	t.Logf("run3 (fresh home) %s", res)
}

func TestExploreMisc(t *testing.T) {
	explore(t)
	t.Run("401-retries0", func(t *testing.T) {
		srv := New(t, WithLog(), WithAPIKey("sk-right"))
		res := runCLI(t, cliRun{Server: srv, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}, Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "0"}})
		t.Logf("%s", res)
	})
	t.Run("closed-retries1", func(t *testing.T) {
		srv := New(t, WithLog())
		url := srv.URL()
		srv.Close()
		res := runCLI(t, cliRun{Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}, Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "1", "ANTHROPIC_BASE_URL": url}})
		t.Logf("%s", res)
	})
	t.Run("text-format-401", func(t *testing.T) {
		srv := New(t, WithLog(), WithAPIKey("sk-right"))
		res := runCLI(t, cliRun{Server: srv, Args: []string{"-p", "hi"}, Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "0"}})
		t.Logf("%s", res)
	})
	t.Run("version-time", func(t *testing.T) {
		res := runCLI(t, cliRun{Exec: true, Args: []string{"--version"}})
		t.Logf("%s", res)
	})
}

func TestExplore401Default(t *testing.T) {
	explore(t)
	srv := New(t, WithAPIKey("sk-right"))
	res := runCLI(t, cliRun{Server: srv, Timeout: 8 * time.Minute, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}})
	t.Logf("requests=%d %s", len(srv.Requests()), res)
	for _, r := range srv.Requests() {
		t.Logf("t=%s kind=%s status=%d", r.Time.Format("15:04:05.000"), r.Kind, r.Status)
	}
}

func TestExploreSigintRepeat(t *testing.T) {
	explore(t)
	for i := 0; i < 4; i++ {
		for _, c := range []struct {
			name string
			turn Turn
		}{
			{"waiting", Turn{Hang: true}},
			{"streaming", Turn{Blocks: []Block{TextBlock(strings.Repeat("streaming slowly ", 30))}, Delay: 300 * time.Millisecond}},
		} {
			srv := New(t, WithTurns(c.turn))
			sent := make(chan struct{})
			var at time.Time
			res := runCLI(t, cliRun{Server: srv, Exec: true, Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"},
				Started: func(name string) {
					go func() {
						defer close(sent)
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						defer cancel()
						srv.WaitMain(ctx, 1)
						time.Sleep(1500 * time.Millisecond)
						at = time.Now()
						signalCLI(t, name, "INT")
					}()
				}})
			<-sent
			t.Logf("%s #%d exit=%d result=%v lines=%d exitAfterSignal=%s", c.name, i, res.ExitCode, bytes.Contains(res.Stdout, []byte(`"type":"result"`)), bytes.Count(res.Stdout, []byte("\n")), time.Since(at))
		}
	}
}
