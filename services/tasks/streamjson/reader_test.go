package streamjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func readAll(t testing.TB, r io.Reader, maxLine int) []Event {
	t.Helper()
	rd := NewReader(r, maxLine)
	var evs []Event
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

func recording(t *testing.T, name string) []Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs := readAll(t, f, 0)
	for _, ev := range evs {
		if ev.Type == TypeMalformed || ev.Type == TypeOversized || ev.Err != "" {
			t.Errorf("%s: %s line: %s", name, ev.Type, ev.Err)
		}
	}
	return evs
}

func types(evs []Event) string {
	var s []string
	for _, ev := range evs {
		t := ev.Type
		if ev.Subtype != "" {
			t += "/" + ev.Subtype
		}
		s = append(s, t)
	}
	return strings.Join(s, " ")
}

func TestRecordingWriteFile(t *testing.T) {
	evs := recording(t, "write_file.jsonl")
	if got := types(evs); got != "system/init assistant assistant user assistant result/success" {
		t.Fatalf("events: %s", got)
	}
	in := evs[0].Init
	if in.Model != "claude-opus-5-5" || in.CWD != "/workspace" || in.PermissionMode != "acceptEdits" ||
		in.ClaudeCodeVersion != "2.1.332" || in.APIKeySource != "ANTHROPIC_API_KEY" || len(in.Tools) < 10 || in.MCPServers == nil {
		t.Errorf("init %+v", in)
	}
	sid := evs[0].SessionID
	for _, ev := range evs {
		if ev.SessionID != sid || ev.UUID == "" {
			t.Errorf("%s: session %q uuid %q", ev.Type, ev.SessionID, ev.UUID)
		}
	}
	// One assistant event per content block, both with the same message id
	// and the same (message_start) usage: summing them would double count.
	a1, a2 := evs[1].Message, evs[2].Message
	if a1.ID != a2.ID || a1.Role != "assistant" || a1.Model != "claude-sonnet-4-5-20250929" || *a1.Usage != *a2.Usage {
		t.Errorf("assistant messages %+v %+v", a1, a2)
	}
	if b := a1.Content[0]; b.Type != "text" || b.Text != "I'll create the file." {
		t.Errorf("text block %+v", b)
	}
	tool := a2.Content[0]
	var input struct {
		FilePath string `json:"file_path"`
		Content  string `json:"content"`
	}
	if err := json.Unmarshal(tool.Input, &input); err != nil || tool.Type != "tool_use" || tool.Name != "Write" ||
		input.FilePath != "/workspace/hello.txt" || input.Content != "Hello, world!\n" {
		t.Errorf("tool_use %+v (%v)", tool, err)
	}
	res := evs[3].Message.Content[0]
	if res.Type != "tool_result" || res.ToolUseID != tool.ID || res.IsError || !strings.HasPrefix(res.Content, "File created successfully at: /workspace/hello.txt") {
		t.Errorf("tool_result %+v", res)
	}
	r := evs[5].Result
	if r.Subtype != "success" || r.IsError || r.NumTurns != 2 || r.Result != "Done: created hello.txt." || r.SessionID != sid ||
		r.TotalCostUSD <= 0 || r.DurationMS <= 0 || r.TerminalReason != "completed" || r.StopReason != "end_turn" {
		t.Errorf("result %+v", r)
	}
	if r.Usage.Total() != r.Usage.InputTokens+r.Usage.OutputTokens+r.Usage.CacheCreationInputTokens+r.Usage.CacheReadInputTokens || r.Usage.CacheReadInputTokens == 0 {
		t.Errorf("usage %+v", r.Usage)
	}
}

func TestRecordingResume(t *testing.T) {
	first := recording(t, "write_file.jsonl")
	evs := recording(t, "resume.jsonl")
	if got := types(evs); got != "system/init assistant result/success" {
		t.Fatalf("events: %s", got)
	}
	if evs[0].SessionID != first[0].SessionID || evs[2].Result.SessionID != first[0].SessionID {
		t.Errorf("a resumed session keeps its id: %s vs %s", evs[0].SessionID, first[0].SessionID)
	}
	// The CLI adopts the model the API reported in the earlier session.
	if evs[0].Init.Model != "claude-sonnet-4-5-20250929" {
		t.Errorf("resumed init model %q", evs[0].Init.Model)
	}

	missing := recording(t, "resume_missing_session.jsonl")
	if got := types(missing); got != "result/error_during_execution" {
		t.Fatalf("events: %s", got)
	}
	if r := missing[0].Result; !r.IsError || len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "No conversation found") {
		t.Errorf("result %+v", r)
	}
}

func TestRecordingAPIErrors(t *testing.T) {
	for _, c := range []struct {
		file, retries  string
		status         int
		typ, apiError  string
		retryErr, text string
	}{
		{"auth_error_401.jsonl", "system/api_retry system/api_retry ", 401, "authentication_error", "", "authentication_failed", "Invalid API key"},
		{"overloaded_529.jsonl", "system/api_retry system/api_retry ", 529, "overloaded_error", "", "overloaded", "API Error: Repeated 529"},
		{"network_refused.jsonl", "system/api_retry ", 0, "", "connection_failed", "unknown", "API Error: Connection refused"},
	} {
		t.Run(c.file, func(t *testing.T) {
			evs := recording(t, c.file)
			if got := types(evs); got != "system/init "+c.retries+"assistant result/success" {
				t.Fatalf("events: %s", got)
			}
			retry := evs[1].Retry
			if retry == nil || retry.Attempt != 1 || retry.ErrorStatus != c.status || retry.Error != c.retryErr || retry.RetryDelayMS <= 0 {
				t.Errorf("retry %+v", retry)
			}
			m := evs[len(evs)-2].Message
			if !m.IsAPIError || m.Model != "<synthetic>" || m.APIErrorStatus != c.status || m.APIErrorType != c.typ ||
				!strings.HasPrefix(m.Content[0].Text, c.text) {
				t.Errorf("synthetic message %+v", m)
			}
			// Subtype says success; IsError and the API fields tell the truth.
			r := evs[len(evs)-1].Result
			if !r.IsError || r.Subtype != "success" || r.APIErrorStatus != c.status || r.APIErrorType != c.typ ||
				r.APIError != c.apiError || r.TerminalReason != "api_error" || !strings.HasPrefix(r.Result, c.text) {
				t.Errorf("result %+v", r)
			}
		})
	}
}

func TestRecordingBashLongOutput(t *testing.T) {
	evs := recording(t, "bash_long_output.jsonl")
	if got := types(evs); got != "system/init assistant user assistant result/success" {
		t.Fatalf("events: %s", got)
	}
	tr := evs[2].Message.Content[0]
	if tr.Type != "tool_result" || !strings.HasPrefix(tr.Content, "<persisted-output>") || !strings.Contains(tr.Content, "tool-results/") {
		t.Errorf("tool_result %.300q", tr.Content)
	}
	if evs[2].Size < 30000 {
		t.Errorf("the user line also carries tool_use_result with the raw stdout; size %d", evs[2].Size)
	}
}

func TestRecordingPartialMessages(t *testing.T) {
	evs := recording(t, "partial_messages.jsonl")
	var text, partial strings.Builder
	var toolInput json.RawMessage
	var assistantText string
	var starts int
	for _, ev := range evs {
		switch {
		case ev.Type == "system" && ev.Subtype == "status":
			if ev.System == nil || ev.System.Status != "requesting" {
				t.Errorf("status %+v", ev.System)
			}
		case ev.Stream != nil:
			s := ev.Stream
			switch s.Type {
			case "message_start":
				starts++
				if s.MessageID == "" || s.Model == "" || s.Usage == nil {
					t.Errorf("message_start %+v", s)
				}
			case "content_block_start":
				if s.BlockType == "tool_use" && (s.ToolName != "Bash" || s.ToolUseID == "") {
					t.Errorf("tool start %+v", s)
				}
			case "content_block_delta":
				switch s.DeltaType {
				case "text_delta":
					if starts == 1 {
						text.WriteString(s.Text)
					}
				case "input_json_delta":
					partial.WriteString(s.JSON)
				}
			case "message_delta":
				if s.StopReason == "" || s.Usage == nil || s.Usage.OutputTokens == 0 {
					t.Errorf("message_delta %+v", s)
				}
			}
		case ev.Type == "assistant" && assistantText == "":
			assistantText = ev.Message.Content[0].Text
		case ev.Type == "assistant" && ev.Message.Content[0].Type == "tool_use":
			toolInput = ev.Message.Content[0].Input
		}
	}
	if starts != 2 || text.String() != assistantText || assistantText == "" {
		t.Errorf("%d message starts; deltas %q vs assistant %q", starts, text.String(), assistantText)
	}
	if partial.String() != string(toolInput) {
		t.Errorf("partial json %q vs input %s", partial.String(), toolInput)
	}
}

func TestRecordingStops(t *testing.T) {
	for _, c := range []struct {
		file, types string
		check       func(t *testing.T, evs []Event)
	}{
		{"max_turns.jsonl", "system/init assistant user assistant user result/error_max_turns", func(t *testing.T, evs []Event) {
			r := evs[len(evs)-1].Result
			if !r.IsError || r.TerminalReason != "max_turns" || len(r.Errors) != 1 || r.Errors[0] != "Reached maximum number of turns (2)" {
				t.Errorf("result %+v", r)
			}
		}},
		{"permission_denied.jsonl", "system/init assistant system/permission_denied user assistant result/success", func(t *testing.T, evs []Event) {
			d := evs[2].System
			if d.ToolName != "Write" || d.ToolUseID != evs[1].Message.Content[0].ID || !strings.Contains(d.Message, "haven't granted") {
				t.Errorf("permission_denied %+v", d)
			}
			if r := evs[len(evs)-1].Result; r.PermissionDenials != 1 || r.IsError {
				t.Errorf("result %+v", r)
			}
			if tr := evs[3].Message.Content[0]; !tr.IsError {
				t.Errorf("denied tool result %+v", tr)
			}
		}},
		{"sigint_streaming.jsonl", "system/init assistant user", func(t *testing.T, evs []Event) {
			if !evs[1].Message.Aborted || evs[2].Message.Content[0].Text != "[Request interrupted by user]" {
				t.Errorf("interrupted %+v %+v", evs[1].Message, evs[2].Message)
			}
		}},
		{"sigint_waiting.jsonl", "system/init user", nil},
		{"sigint_tool.jsonl", "system/init assistant user user result/error_during_execution", func(t *testing.T, evs []Event) {
			if r := evs[len(evs)-1].Result; !r.IsError || r.TerminalReason != "aborted_tools" {
				t.Errorf("result %+v", r)
			}
		}},
		{"sigterm_streaming.jsonl", "system/init", nil},
		{"stream_dropped.jsonl", "system/init system/api_retry assistant result/success", func(t *testing.T, evs []Event) {
			if r := evs[1].Retry; r.ErrorStatus != 0 || r.Error != "unknown" {
				t.Errorf("retry %+v", r)
			}
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			evs := recording(t, c.file)
			if got := types(evs); got != c.types {
				t.Fatalf("events: %s, want %s", got, c.types)
			}
			if c.check != nil {
				c.check(t, evs)
			}
		})
	}
}

func TestCraftedLines(t *testing.T) {
	input := strings.Join([]string{
		`{"type":"system","subtype":"init","session_id":"s1","model":"m","tools":["Bash"],"mcp_servers":[{"name":"fs","status":"connected"}]}`,
		``,
		`   `,
		`not json at all`,
		`{"type":"assistant","message":{"content":[{"type":"text","text":"cut`,
		`[1,2,3]`,
		`"a string"`,
		`{"type":"brand_new_event","payload":{"x":1},"session_id":"s1"}`,
		`{"type":"assistant","message":{"id":"m1","role":"assistant","content":[{"type":"text","text":"hi"},{"type":"server_widget","widget":{"a":[1,2]}},{"type":"thinking","thinking":"hmm","signature":"x"}]},"parent_tool_use_id":"toolu_parent"}`,
		`{"type":"user","message":{"role":"user","content":"plain prompt"}}`,
		`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"line one"},{"type":"image","source":{}},{"type":"text","text":"line two"}]}]}}`,
		`{"type":"result","subtype":"success","num_turns":"three","result":"kept anyway","is_error":false}`,
		`{"type":"system","subtype":"permission_denied","tool_name":"Write","message":"no"}`,
		`{"type":"result","subtype":"error_max_turns","is_error":true,"permission_denials":[{"tool_name":"A"},{"tool_name":"B"}],"usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":3,"cache_read_input_tokens":4}}`,
	}, "\n") + "\n"
	evs := readAll(t, strings.NewReader(input), 0)
	want := "system/init malformed malformed malformed malformed brand_new_event assistant user user result/success system/permission_denied result/error_max_turns"
	if got := types(evs); got != want {
		t.Fatalf("events:\n%s\nwant\n%s", got, want)
	}
	if in := evs[0].Init; in.MCPServers[0] != (MCPServer{"fs", "connected"}) || in.Tools[0] != "Bash" {
		t.Errorf("init %+v", in)
	}
	for _, ev := range evs[1:5] {
		if ev.Err == "" || ev.Raw == nil {
			t.Errorf("malformed without error or raw: %+v", ev)
		}
	}
	if string(evs[1].Raw) != "not json at all" || evs[1].Size != len("not json at all") {
		t.Errorf("raw %q size %d", evs[1].Raw, evs[1].Size)
	}
	if evs[3].Err != "not a JSON object" {
		t.Errorf("array line: %q", evs[3].Err)
	}
	if u := evs[5]; u.SessionID != "s1" || !bytes.Contains(u.Raw, []byte(`"payload"`)) || u.Err != "" {
		t.Errorf("unknown type %+v", u)
	}
	m := evs[6].Message
	if len(m.Content) != 3 || m.Content[0].Text != "hi" || m.ParentToolUseID != "toolu_parent" || m.ID != "m1" {
		t.Fatalf("message %+v", m)
	}
	if b := m.Content[1]; b.Type != "server_widget" || string(b.Raw) != `{"type":"server_widget","widget":{"a":[1,2]}}` {
		t.Errorf("unknown block %+v raw %s", b, b.Raw)
	}
	if b := m.Content[2]; b.Type != "thinking" || b.Text != "hmm" || b.Raw != nil {
		t.Errorf("thinking block %+v", b)
	}
	if evs[6].Err != "" {
		t.Errorf("unknown blocks are not errors: %s", evs[6].Err)
	}
	if c := evs[7].Message.Content; len(c) != 1 || c[0].Type != "text" || c[0].Text != "plain prompt" || evs[7].Err != "" {
		t.Errorf("string content %+v err %q", c, evs[7].Err)
	}
	if b := evs[8].Message.Content[0]; b.Content != "line one\n[image]\nline two" || !b.IsError || b.ToolUseID != "t1" {
		t.Errorf("tool_result %+v", b)
	}
	if r := evs[9]; r.Result == nil || r.Result.Result != "kept anyway" || !strings.Contains(r.Err, "num_turns") {
		t.Errorf("a mistyped field keeps the event: %+v %+v", r, r.Result)
	}
	if s := evs[10]; s.System == nil || s.System.Message != "no" || s.System.ToolName != "Write" || s.Err != "" {
		t.Errorf("system message %+v err %q", s.System, s.Err)
	}
	r := evs[11].Result
	if r.PermissionDenials != 2 || r.Usage != (Usage{1, 2, 3, 4}) || r.Usage.Total() != 10 {
		t.Errorf("result %+v", r)
	}
}

func TestLineEndings(t *testing.T) {
	a := `{"type":"assistant","message":{"content":[{"type":"text","text":"a"}]}}`
	b := `{"type":"result","subtype":"success","result":"b"}`
	for name, input := range map[string]string{
		"LF":                  a + "\n" + b + "\n",
		"CRLF":                a + "\r\n" + b + "\r\n",
		"no final newline":    a + "\n" + b,
		"CRLF no final":       a + "\r\n" + b + "\r",
		"blank lines":         "\n\r\n" + a + "\n\n\n" + b + "\n\n",
		"leading white space": "  " + a + "\n\t" + b + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			evs := readAll(t, strings.NewReader(input), 0)
			if len(evs) != 2 || evs[0].Message == nil || evs[1].Result == nil || evs[1].Result.Result != "b" {
				t.Fatalf("got %s", types(evs))
			}
			for _, ev := range evs {
				if bytes.HasSuffix(ev.Raw, []byte("\r")) || bytes.HasSuffix(ev.Raw, []byte("\n")) || ev.Size != len(ev.Raw) {
					t.Errorf("raw %q size %d", ev.Raw, ev.Size)
				}
			}
		})
	}
	if evs := readAll(t, strings.NewReader(""), 0); len(evs) != 0 {
		t.Errorf("empty input gave %d events", len(evs))
	}
}

func TestRawIsOwnedByTheEvent(t *testing.T) {
	var in bytes.Buffer
	for i := 0; i < 5000; i++ {
		in.WriteString(`{"type":"status","n":`)
		in.WriteString(strings.Repeat("1", i%50+1))
		in.WriteString("}\n")
	}
	evs := readAll(t, bytes.NewReader(in.Bytes()), 0)
	lines := strings.Split(strings.TrimSuffix(in.String(), "\n"), "\n")
	for i, ev := range evs {
		if string(ev.Raw) != lines[i] {
			t.Fatalf("event %d raw %q, want %q", i, ev.Raw, lines[i])
		}
	}
}

// patternReader yields n bytes of a JSON-looking line without ever holding
// them, followed by a newline and a small valid event.
type patternReader struct {
	n, off int
	tail   string
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n+len(p.tail) {
		return 0, io.EOF
	}
	w := 0
	for w < len(b) && p.off < p.n {
		switch {
		case p.off == 0:
			b[w] = '{'
		case p.off == p.n-1:
			b[w] = '}'
		default:
			b[w] = 'x'
		}
		w++
		p.off++
	}
	for w < len(b) && p.off >= p.n && p.off < p.n+len(p.tail) {
		b[w] = p.tail[p.off-p.n]
		w++
		p.off++
	}
	return w, nil
}

func TestOversizedLineIsBoundedInMemory(t *testing.T) {
	const size = 100 << 20
	src := &patternReader{n: size, tail: "\r\n" + `{"type":"result","subtype":"success"}` + "\n"}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(src, 1<<20)
	ev, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if ev.Type != TypeOversized || ev.Size != size || len(ev.Raw) != OversizedPrefix || ev.Raw[0] != '{' || ev.Raw[1] != 'x' {
		t.Fatalf("got %s size %d raw %d bytes", ev.Type, ev.Size, len(ev.Raw))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading a 100 MiB line allocated %d MiB; it must stay near maxLine", alloc>>20)
	}
	ev, err = r.Next()
	if err != nil || ev.Result == nil || ev.Subtype != "success" {
		t.Fatalf("the line after an oversized one: %+v %v", ev, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("want EOF, got %v", err)
	}
}

func TestMaxLineBoundaries(t *testing.T) {
	line := func(n int) string { // a valid event of exactly n bytes
		head := `{"type":"x","p":"`
		return head + strings.Repeat("a", n-len(head)-2) + `"}`
	}
	for _, c := range []struct {
		name    string
		maxLine int
		input   string
		want    string
		size    int
	}{
		{"exactly max", 100, line(100) + "\n", "x", 100},
		{"one over", 100, line(101) + "\n", TypeOversized, 101},
		{"exactly max with CRLF", 100, line(100) + "\r\n", "x", 100},
		{"one over with CRLF", 100, line(101) + "\r\n", TypeOversized, 101},
		{"over, no newline", 100, line(500), TypeOversized, 500},
		{"across buffer refills", 300 << 10, line(200<<10) + "\n", "x", 200 << 10},
		{"exactly max across refills", 200 << 10, line(200<<10) + "\r\n", "x", 200 << 10},
		{"over across refills", 150 << 10, line(200<<10) + "\n", TypeOversized, 200 << 10},
		{"CRLF just over across refills", 200<<10 - 1, line(200<<10) + "\r\n", TypeOversized, 200 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs := readAll(t, strings.NewReader(`{"type":"before"}`+"\n"+c.input), c.maxLine)
			if len(evs) != 2 || evs[0].Type != "before" {
				t.Fatalf("got %s", types(evs))
			}
			ev := evs[1]
			if ev.Type != c.want || ev.Size != c.size {
				t.Fatalf("got %s size %d, want %s size %d (%s)", ev.Type, ev.Size, c.want, c.size, ev.Err)
			}
			wantRaw := strings.TrimRight(c.input, "\r\n")
			if ev.Type == TypeOversized {
				wantRaw = wantRaw[:min(len(wantRaw), OversizedPrefix)]
			}
			if string(ev.Raw) != wantRaw {
				t.Errorf("raw is %d bytes, want %d", len(ev.Raw), len(wantRaw))
			}
		})
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(b []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(b, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReaderErrorsPassThrough(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(&failingReader{data: []byte(`{"type":"a"}` + "\n" + `{"type":"b","partial`), err: boom}, 0)
	if ev, err := r.Next(); err != nil || ev.Type != "a" {
		t.Fatalf("%+v %v", ev, err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
}

func BenchmarkParse(b *testing.B) {
	files := []string{"write_file.jsonl", "partial_messages.jsonl", "max_turns.jsonl", "permission_denied.jsonl"}
	var lines [][]byte
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			// The init line is one per run; leave it out so the mix
			// resembles a long run of small events.
			if len(l) > 0 && !bytes.Contains(l, []byte(`"subtype":"init"`)) {
				lines = append(lines, l)
			}
		}
	}
	var input []byte
	for len(input) < 4<<20 {
		for _, l := range lines {
			input = append(input, l...)
			input = append(input, '\n')
		}
	}
	n := bytes.Count(input, []byte("\n"))
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	events := 0
	for b.Loop() {
		r := NewReader(bytes.NewReader(input), 0)
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			if ev.Type == TypeMalformed {
				b.Fatal(ev.Err)
			}
			events++
		}
	}
	if events%n != 0 {
		b.Fatalf("%d events, not a multiple of %d", events, n)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkParseSmall(b *testing.B) {
	line := []byte(`{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello there"}},"session_id":"1224aa57-c0ec-4f5e-b79d-87178962fd3c","parent_tool_use_id":null,"uuid":"7d81e0de-2ffc-4bf0-bba5-f0820730dc12"}` + "\n")
	input := bytes.Repeat(line, 20000)
	b.SetBytes(int64(len(input)))
	events := 0
	for b.Loop() {
		r := NewReader(bytes.NewReader(input), 0)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
			events++
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkParseSmallEncodingJSON is the reference point for the fast
// path: the same line through encoding/json only.
func BenchmarkParseSmallEncodingJSON(b *testing.B) {
	line := []byte(`{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello there"}},"session_id":"1224aa57-c0ec-4f5e-b79d-87178962fd3c","parent_tool_use_id":null,"uuid":"7d81e0de-2ffc-4bf0-bba5-f0820730dc12"}`)
	r := NewReader(nil, 0)
	events := 0
	for b.Loop() {
		r.parseSlow(append([]byte(nil), line...))
		events++
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
