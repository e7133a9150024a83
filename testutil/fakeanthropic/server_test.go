package fakeanthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type sseEvent struct {
	Name string
	Data map[string]any
}

// post sends a Messages request the way the SDK does and returns the
// status and, for streams, the parsed events; for JSON answers the body.
func post(t *testing.T, ctx context.Context, s *Server, path, key string, body any) (int, []sseEvent, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, readSSE(t, resp.Body), nil
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	return resp.StatusCode, nil, m
}

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var name string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatalf("bad SSE data %q: %v", line, err)
			}
			if d["type"] != name {
				t.Errorf("event %q carries data of type %v", name, d["type"])
			}
			out = append(out, sseEvent{name, d})
		}
	}
	return out
}

func mainBody(messages ...any) map[string]any {
	if len(messages) == 0 {
		messages = []any{map[string]any{"role": "user", "content": "hello"}}
	}
	return map[string]any{
		"model": "claude-opus-5-5", "max_tokens": 1024, "stream": true,
		"system":   []any{map[string]any{"type": "text", "text": "You are a test.", "cache_control": map[string]string{"type": "ephemeral"}}},
		"tools":    []any{map[string]any{"name": "Write", "input_schema": map[string]any{"type": "object"}}},
		"messages": messages,
	}
}

func names(evs []sseEvent) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.Name)
	}
	return strings.Join(n, ",")
}

func TestStreamFollowsTheProtocol(t *testing.T) {
	s := New(t, WithTurns(Blocks(
		TextBlock("I will write the file now, as you asked."),
		ToolUse("Write", map[string]string{"file_path": "/workspace/a.txt", "content": "some content that is long enough to be split"}),
	)))
	status, evs, _ := post(t, context.Background(), s, "/v1/messages?beta=true", "sk-test", mainBody())
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	got := names(evs)
	if !strings.HasPrefix(got, "message_start,content_block_start,ping,content_block_delta") ||
		!strings.HasSuffix(got, "content_block_stop,message_delta,message_stop") {
		t.Fatalf("event order: %s", got)
	}
	start := evs[0].Data["message"].(map[string]any)
	if start["model"] != DefaultModel || start["role"] != "assistant" || !strings.HasPrefix(start["id"].(string), "msg_") {
		t.Errorf("message_start: %v", start)
	}
	usage := start["usage"].(map[string]any)
	for _, k := range []string{"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} {
		if _, ok := usage[k]; !ok {
			t.Errorf("usage lacks %s: %v", k, usage)
		}
	}
	if usage["cache_creation_input_tokens"].(float64) <= 0 {
		t.Errorf("a first cached request should write the cache: %v", usage)
	}

	var text, partial strings.Builder
	var textDeltas, jsonDeltas int
	var toolStart map[string]any
	for _, e := range evs {
		switch e.Name {
		case "content_block_start":
			if cb := e.Data["content_block"].(map[string]any); cb["type"] == "tool_use" {
				toolStart = cb
			}
		case "content_block_delta":
			d := e.Data["delta"].(map[string]any)
			switch d["type"] {
			case "text_delta":
				textDeltas++
				text.WriteString(d["text"].(string))
			case "input_json_delta":
				jsonDeltas++
				partial.WriteString(d["partial_json"].(string))
			}
		}
	}
	if text.String() != "I will write the file now, as you asked." || textDeltas < 2 {
		t.Errorf("text %q in %d deltas", text.String(), textDeltas)
	}
	if toolStart["name"] != "Write" || !strings.HasPrefix(toolStart["id"].(string), "toolu_") {
		t.Errorf("tool block start: %v", toolStart)
	}
	var input map[string]string
	if err := json.Unmarshal([]byte(partial.String()), &input); err != nil || input["file_path"] != "/workspace/a.txt" || jsonDeltas < 3 {
		t.Errorf("partial_json %q in %d deltas: %v", partial.String(), jsonDeltas, err)
	}
	delta := evs[len(evs)-2].Data
	if delta["delta"].(map[string]any)["stop_reason"] != "tool_use" || delta["usage"].(map[string]any)["output_tokens"].(float64) < 2 {
		t.Errorf("message_delta: %v", delta)
	}
}

func TestTurnsAreConsumedInOrderAndRecorded(t *testing.T) {
	s := New(t, WithTurns(
		Blocks(ToolUse("Write", map[string]string{"file_path": "/x"})),
		Text("done"),
	))
	ctx := context.Background()
	_, evs, _ := post(t, ctx, s, "/v1/messages", "sk-test", mainBody())
	toolID := evs[1].Data["content_block"].(map[string]any)["id"].(string)

	second := mainBody(
		map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "<system-reminder>\nnoise\n</system-reminder>"},
			map[string]any{"type": "text", "text": "write x"},
		}},
		map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": toolID, "name": "Write", "input": map[string]any{}}}},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": toolID,
			"content": []any{map[string]any{"type": "text", "text": "File created"}, map[string]any{"type": "image"}}}}},
	)
	_, evs, _ = post(t, ctx, s, "/v1/messages", "sk-test", second)
	if d := evs[len(evs)-2].Data["delta"].(map[string]any); d["stop_reason"] != "end_turn" {
		t.Errorf("second turn should end the turn: %v", d)
	}
	_, evs, _ = post(t, ctx, s, "/v1/messages", "sk-test", mainBody())
	if evs[2].Name != "ping" {
		t.Fatalf("exhausted script should still answer a message: %s", names(evs))
	}

	reqs := s.MainRequests()
	if len(reqs) != 3 || reqs[0].Turn != 0 || reqs[1].Turn != 1 || reqs[2].Turn != -1 {
		t.Fatalf("turn indexes: %+v", reqs)
	}
	r := reqs[1]
	if r.APIKey() != "sk-test" || r.Header.Get("Anthropic-Version") != "2023-06-01" || r.Model != "claude-opus-5-5" || !r.Stream {
		t.Errorf("recorded request: key=%q model=%q stream=%v", r.APIKey(), r.Model, r.Stream)
	}
	if r.System != "You are a test." || len(r.Tools) != 1 || r.Tools[0] != "Write" {
		t.Errorf("system %q tools %v", r.System, r.Tools)
	}
	if got := r.Prompts(); len(got) != 1 || got[0] != "write x" {
		t.Errorf("prompts skip reminders: %q", got)
	}
	if r.Step() != 1 {
		t.Errorf("step %d, want 1", r.Step())
	}
	tr, ok := r.ToolResult(toolID)
	if !ok || tr.Content != "File created\n[image]" || tr.IsError {
		t.Errorf("tool result %+v", tr)
	}
}

func TestSideRequestsDoNotConsumeTurns(t *testing.T) {
	s := New(t, WithTurns(Text("scripted")))
	ctx := context.Background()
	side := map[string]any{"model": "claude-haiku-4-5", "max_tokens": 32, "messages": []any{map[string]any{"role": "user", "content": "title please"}}}
	status, _, msg := post(t, ctx, s, "/v1/messages", "sk-test", side)
	if status != 200 || msg["type"] != "message" || msg["stop_reason"] != "end_turn" {
		t.Fatalf("side answer %d %v", status, msg)
	}
	_, evs, _ := post(t, ctx, s, "/v1/messages", "sk-test", mainBody())
	var text string
	for _, e := range evs {
		if d, ok := e.Data["delta"].(map[string]any); ok && d["type"] == "text_delta" {
			text += d["text"].(string)
		}
	}
	if text != "scripted" {
		t.Errorf("main request got %q", text)
	}
	if reqs := s.Requests(); reqs[0].Kind != KindSide || reqs[1].Kind != KindMain {
		t.Errorf("kinds %s %s", reqs[0].Kind, reqs[1].Kind)
	}
}

func TestNonStreamingAnswer(t *testing.T) {
	s := New(t, WithTurns(Blocks(TextBlock("hi"), ToolUse("Bash", map[string]string{"command": "ls"}))))
	body := mainBody()
	body["stream"] = false
	status, _, msg := post(t, context.Background(), s, "/v1/messages", "sk-test", body)
	if status != 200 || msg["stop_reason"] != "tool_use" {
		t.Fatalf("%d %v", status, msg)
	}
	content := msg["content"].([]any)
	if len(content) != 2 || content[1].(map[string]any)["input"].(map[string]any)["command"] != "ls" {
		t.Errorf("content %v", content)
	}
}

func TestErrorsHaveTheDocumentedShape(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   []Option
		key    string
		status int
		typ    string
	}{
		{"no key", nil, "", 401, "authentication_error"},
		{"wrong key", []Option{WithAPIKey("sk-right")}, "sk-wrong", 401, "authentication_error"},
		{"scripted 401", []Option{WithTurns(Fail(AuthError()))}, "sk-test", 401, "authentication_error"},
		{"rate limit", []Option{WithTurns(Fail(RateLimitError()))}, "sk-test", 429, "rate_limit_error"},
		{"overloaded", []Option{WithTurns(Fail(OverloadedError()))}, "sk-test", 529, "overloaded_error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := New(t, c.opts...)
			status, _, m := post(t, context.Background(), s, "/v1/messages", c.key, mainBody())
			e, _ := m["error"].(map[string]any)
			if status != c.status || m["type"] != "error" || e["type"] != c.typ || e["message"] == "" {
				t.Errorf("got %d %v", status, m)
			}
			if rs := s.Requests(); len(rs) != 1 || rs[0].Status != c.status {
				t.Errorf("recorded %+v", rs)
			}
		})
	}
	s := New(t, WithAPIKey("sk-right"))
	_, _, m := post(t, context.Background(), s, "/v1/messages", "sk-right", mainBody())
	if m != nil && m["type"] == "error" {
		t.Errorf("right key refused: %v", m)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(`{"messages":[],"tools":[{"name":"x"}]}`))
	req.Header.Set("Authorization", "Bearer sk-right")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("bearer token refused: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestOtherEndpoints(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	status, _, m := post(t, ctx, s, "/v1/messages/count_tokens", "sk-test", mainBody())
	if status != 200 || m["input_tokens"].(float64) <= 0 {
		t.Errorf("count_tokens %d %v", status, m)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, "/api/hello", 200},
		{http.MethodGet, "/", 200},
		{http.MethodGet, "/v1/models", 200},
		{http.MethodGet, "/v1/models/claude-opus-5-5", 200},
		{http.MethodGet, "/v1/unknown", 404},
		{http.MethodPost, "/v1/complete", 404},
	} {
		req, _ := http.NewRequest(c.method, s.URL()+c.path, nil)
		req.Header.Set("X-Api-Key", "sk-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
		if c.status == 404 && !strings.Contains(string(body), `"not_found_error"`) {
			t.Errorf("%s %s: %s", c.method, c.path, body)
		}
	}
	status, _, m = post(t, ctx, s, "/v1/messages", "sk-test", "not an object")
	if status != 400 || m["error"].(map[string]any)["type"] != "invalid_request_error" {
		t.Errorf("bad body: %d %v", status, m)
	}
}

func TestHangIsReleasedWhenTheClientLeaves(t *testing.T) {
	s := New(t, WithTurns(Turn{Hang: true}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		b, _ := json.Marshal(mainBody())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(string(b)))
		req.Header.Set("X-Api-Key", "k")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, err := s.WaitMain(wctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("hanging request returned: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("want cancel, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client cancel did not end the request")
	}
	// Close must not wait for hanging handlers either.
	s.SetTurns(Turn{Hang: true})
	go func() {
		b, _ := json.Marshal(mainBody())
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(string(b)))
		req.Header.Set("X-Api-Key", "k")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := s.WaitMain(wctx, 2); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
}

func TestDelayStreamsLiveAndDropBreaksTheStream(t *testing.T) {
	s := New(t, WithTurns(
		Turn{Blocks: []Block{TextBlock("one two three four five six seven eight nine ten eleven twelve")}, Delay: 40 * time.Millisecond},
		Turn{Blocks: []Block{TextBlock("cut")}, DropAfter: 2},
	))
	b, _ := json.Marshal(mainBody())
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(string(b)))
	req.Header.Set("X-Api-Key", "k")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	evs := readSSE(t, resp.Body)
	resp.Body.Close()
	total := time.Since(start)
	if want := time.Duration(len(evs)-1) * 40 * time.Millisecond; total < want || first > want/2 {
		t.Errorf("%d events: headers after %s, all after %s (want >= %s)", len(evs), first, total, want)
	}

	req, _ = http.NewRequest(http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(string(b)))
	req.Header.Set("X-Api-Key", "k")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("a dropped stream should end in a read error")
	}
}

func TestStreamErrorEvent(t *testing.T) {
	s := New(t, WithTurns(Turn{StreamError: OverloadedError()}))
	_, evs, _ := post(t, context.Background(), s, "/v1/messages", "k", mainBody())
	if names(evs) != "message_start,error" || evs[1].Data["error"].(map[string]any)["type"] != "overloaded_error" {
		t.Errorf("got %v", evs)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(t, WithScript(func(r Request) Turn { return Text(fmt.Sprintf("step %d", r.Step())) }))
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Go(func() {
			status, evs, _ := post(t, context.Background(), s, "/v1/messages", "k", mainBody())
			if status != 200 || len(evs) == 0 {
				t.Errorf("status %d", status)
			}
			_ = s.Requests()
		})
	}
	wg.Wait()
	reqs := s.Requests()
	seen := map[int]bool{}
	for _, r := range reqs {
		seen[r.Seq] = true
	}
	if len(reqs) != 16 || len(seen) != 16 {
		t.Errorf("%d requests, %d distinct seqs", len(reqs), len(seen))
	}
}
