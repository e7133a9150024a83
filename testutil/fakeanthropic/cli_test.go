package fakeanthropic

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aicode/services/tasks/streamjson"
)

// These tests run the real claude CLI of the workspace image against the
// fake: they prove the fake speaks the protocol well enough for the CLI's
// agent loop, and show what the app will read from the CLI.

func parseEvents(t *testing.T, stdout []byte) []streamjson.Event {
	t.Helper()
	r := streamjson.NewReader(bytes.NewReader(stdout), 0)
	var evs []streamjson.Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == streamjson.TypeMalformed || ev.Type == streamjson.TypeOversized {
			t.Errorf("unexpected %s line: %s %.200s", ev.Type, ev.Err, ev.Raw)
		}
		evs = append(evs, ev)
	}
}

func lastResult(t *testing.T, evs []streamjson.Event, res cliResult) *streamjson.Result {
	t.Helper()
	if len(evs) == 0 || evs[len(evs)-1].Result == nil {
		t.Fatalf("the last event is not a result\n%s", res)
	}
	return evs[len(evs)-1].Result
}

func TestRealCLIWritesAFile(t *testing.T) {
	srv := New(t, WithAPIKey("sk-test"), WithTurns(
		Blocks(TextBlock("I'll create the file."), ToolUse("Write", map[string]string{"file_path": "/workspace/notes/hello.txt", "content": "Hello from the fake model\n"})),
		Text("Created notes/hello.txt."),
	))
	ws := ownedDir(t, "workspace")
	res := runCLI(t, cliRun{Server: srv, Workspace: ws, Args: []string{
		"-p", "Create notes/hello.txt", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"}})
	if res.ExitCode != 0 {
		t.Fatalf("claude failed\n%s", res)
	}
	got, err := os.ReadFile(filepath.Join(ws, "notes", "hello.txt"))
	if err != nil || string(got) != "Hello from the fake model\n" {
		t.Fatalf("the Write tool did not create the file (%v): %q\n%s", err, got, res)
	}

	evs := parseEvents(t, res.Stdout)
	init := evs[0].Init
	if init == nil || init.PermissionMode != "acceptEdits" || init.CWD != "/workspace" || !slices.Contains(init.Tools, "Write") || init.ClaudeCodeVersion == "" {
		t.Errorf("first event is not the expected init: %+v", evs[0])
	}
	var toolID string
	var toolResult *streamjson.Block
	for _, ev := range evs {
		if ev.SessionID != evs[0].SessionID {
			t.Errorf("session id changed: %s vs %s", ev.SessionID, evs[0].SessionID)
		}
		if ev.Message == nil {
			continue
		}
		for i, b := range ev.Message.Content {
			switch b.Type {
			case "tool_use":
				toolID = b.ID
			case "tool_result":
				toolResult = &ev.Message.Content[i]
			}
		}
	}
	if toolID == "" || toolResult == nil || toolResult.ToolUseID != toolID || toolResult.IsError {
		t.Errorf("tool_use %q and its result %+v", toolID, toolResult)
	}
	r := lastResult(t, evs, res)
	if r.Subtype != "success" || r.IsError || r.NumTurns != 2 || r.Result != "Created notes/hello.txt." || r.Usage.Total() == 0 {
		t.Errorf("result %+v", r)
	}

	reqs := srv.MainRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d main requests, want 2", len(reqs))
	}
	if reqs[0].APIKey() != "sk-test" || reqs[0].Header.Get("Anthropic-Version") == "" {
		t.Errorf("headers %v", reqs[0].Header)
	}
	if reqs[0].Prompt() != "Create notes/hello.txt" {
		t.Errorf("prompt %q", reqs[0].Prompt())
	}
	sent, ok := reqs[1].ToolResult(toolID)
	if !ok || sent.IsError || !strings.Contains(sent.Content, "/workspace/notes/hello.txt") {
		t.Errorf("tool result sent back to the model: %+v", sent)
	}
}

func TestRealCLIResumeSendsTheEarlierConversation(t *testing.T) {
	srv := New(t, WithTurns(Text("Noted: pineapple.")))
	home := ownedDir(t, "home")
	args := []string{"--output-format", "stream-json", "--verbose"}
	res := runCLI(t, cliRun{Server: srv, Home: home, Args: append([]string{"-p", "Remember the word pineapple"}, args...)})
	if res.ExitCode != 0 {
		t.Fatalf("first run failed\n%s", res)
	}
	sid := sessionID(t, res.Stdout)
	// Sessions live under $HOME/.claude/projects/<cwd with / as ->/.
	if _, err := os.Stat(filepath.Join(home, ".claude", "projects", "-workspace", sid+".jsonl")); err != nil {
		t.Errorf("session file: %v", err)
	}

	srv.SetTurns(Text("The word was pineapple."))
	res = runCLI(t, cliRun{Server: srv, Home: home, Args: append([]string{"-p", "Which word?", "--resume", sid}, args...)})
	if res.ExitCode != 0 {
		t.Fatalf("resumed run failed\n%s", res)
	}
	evs := parseEvents(t, res.Stdout)
	if r := lastResult(t, evs, res); r.SessionID != sid || r.Result != "The word was pineapple." {
		t.Errorf("resumed result %+v, want session %s", r, sid)
	}
	reqs := srv.MainRequests()
	last := reqs[len(reqs)-1]
	if p := last.Prompts(); len(p) != 2 || p[0] != "Remember the word pineapple" || p[1] != "Which word?" {
		t.Errorf("resumed request prompts %q", p)
	}
	var earlier bool
	for _, m := range last.Messages {
		for _, c := range m.Content {
			earlier = earlier || (m.Role == "assistant" && c.Text == "Noted: pineapple.")
		}
	}
	if !earlier || last.Step() != 0 {
		t.Errorf("the resumed request lacks the earlier answer (step %d)", last.Step())
	}
}

func TestRealCLIReportsAnAuthenticationError(t *testing.T) {
	srv := New(t, WithAPIKey("sk-the-right-key"))
	// Without a retry limit the CLI retries a 401 ten times over ~3 min.
	res := runCLI(t, cliRun{Server: srv, Env: map[string]string{"CLAUDE_CODE_MAX_RETRIES": "0"},
		Args: []string{"-p", "hi", "--output-format", "stream-json", "--verbose"}})
	if res.ExitCode != 1 {
		t.Errorf("exit %d, want 1", res.ExitCode)
	}
	evs := parseEvents(t, res.Stdout)
	r := lastResult(t, evs, res)
	if !r.IsError || r.APIErrorStatus != 401 || r.APIErrorType != "authentication_error" {
		t.Errorf("result %+v", r)
	}
	if rs := srv.Requests(); len(rs) != 1 || rs[0].Status != 401 || rs[0].APIKey() != "sk-test" {
		t.Errorf("requests %+v", rs)
	}
}

func TestRealCLIStreamsLiveAndStopsOnSIGINT(t *testing.T) {
	srv := New(t, WithTurns(Turn{Blocks: []Block{TextBlock(strings.Repeat("slow words ", 200))}, Delay: 200 * time.Millisecond}))
	sent := make(chan time.Time, 1)
	res := runCLI(t, cliRun{Server: srv, Exec: true,
		Args: []string{"-p", "talk slowly", "--output-format", "stream-json", "--verbose", "--include-partial-messages"},
		Started: func(name string) {
			go func() {
				defer close(sent)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if _, err := srv.WaitMain(ctx, 1); err != nil {
					t.Errorf("the CLI sent no request: %v", err)
					return
				}
				time.Sleep(2 * time.Second)
				signalCLI(t, name, "INT")
				sent <- time.Now()
			}()
		}})
	at, ok := <-sent
	if !ok {
		t.Fatalf("no signal was sent\n%s", res)
	}
	// SIGINT ends `claude -p` with exit 0, sometimes without a result
	// event: the app must treat a missing result as "interrupted".
	if res.ExitCode != 0 || time.Since(at) > 30*time.Second {
		t.Errorf("exit %d, %s after SIGINT\n%s", res.ExitCode, time.Since(at), res)
	}
	var deltas int
	for _, ev := range parseEvents(t, res.Stdout) {
		if ev.Stream != nil && ev.Stream.DeltaType == "text_delta" {
			deltas++
		}
	}
	if deltas < 2 || deltas > 80 {
		t.Errorf("%d text deltas arrived before the interrupt; want some, not all", deltas)
	}
}
