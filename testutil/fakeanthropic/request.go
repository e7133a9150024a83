package fakeanthropic

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Kind says how the server classified a request.
type Kind string

const (
	// KindMain is a Messages request with tools: the agent loop's turn,
	// answered from the script.
	KindMain Kind = "main"
	// KindSide is a Messages request without tools (titles, summaries,
	// quota checks), answered with a short generic text so it never
	// consumes a scripted turn.
	KindSide Kind = "side"
	// KindCompact is the CLI asking for a summary of the conversation when
	// the context is nearly full. It carries the tools like a main request,
	// so it is told apart by its instructions and answered with a summary.
	KindCompact     Kind = "compact"
	KindCountTokens Kind = "count_tokens"
	KindModels      Kind = "models"
	KindProbe       Kind = "probe" // HEAD/GET connectivity checks
	KindOther       Kind = "other" // answered 404 not_found_error
)

// Request is one request the server received, recorded before it was
// answered.
type Request struct {
	Seq      int // 1-based order of arrival
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	Kind     Kind

	// Messages API fields, when the body is a Messages request.
	Model     string
	Stream    bool
	MaxTokens int
	System    string   // all system text blocks, joined by "\n"
	Tools     []string // tool names in request order
	Messages  []Message

	// Turn is the index of the scripted turn that answered a main request
	// under WithTurns; -1 when no scripted turn was left (the server then
	// answered a generic text) and for other kinds; 0 under WithScript.
	Turn int

	// Status is the HTTP status the server chose (200 for streams even if
	// they were dropped later).
	Status int
}

// Message is one conversation message of a Messages request.
type Message struct {
	Role    string
	Content []Content
}

// Content is one block of a request message. Content (the field) holds a
// tool_result's content flattened to text.
type Content struct {
	Type      string
	Text      string
	ID        string
	Name      string
	Input     json.RawMessage
	ToolUseID string
	Content   string
	IsError   bool
	Raw       json.RawMessage
}

// APIKey is the credential the client sent: x-api-key, else the bearer
// token of Authorization.
func (r Request) APIKey() string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// Betas lists the anthropic-beta flags of the request.
func (r Request) Betas() []string {
	var out []string
	for _, h := range r.Header.Values("Anthropic-Beta") {
		for _, b := range strings.Split(h, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// ToolResults are all tool_result blocks of the conversation, oldest first.
func (r Request) ToolResults() []Content {
	var out []Content
	for _, m := range r.Messages {
		for _, c := range m.Content {
			if c.Type == "tool_result" {
				out = append(out, c)
			}
		}
	}
	return out
}

// ToolResult is the result for the given tool_use id.
func (r Request) ToolResult(toolUseID string) (Content, bool) {
	for _, c := range r.ToolResults() {
		if c.ToolUseID == toolUseID {
			return c, true
		}
	}
	return Content{}, false
}

// Prompts are the texts the user typed, oldest first: user text blocks
// other than the CLI's injected <system-reminder> blocks.
func (r Request) Prompts() []string {
	var out []string
	for _, m := range r.Messages {
		if m.Role != "user" {
			continue
		}
		for _, c := range m.Content {
			if c.Type == "text" && !isReminder(c.Text) {
				out = append(out, c.Text)
			}
		}
	}
	return out
}

// Prompt is the latest prompt (see Prompts), or "".
func (r Request) Prompt() string {
	p := r.Prompts()
	if len(p) == 0 {
		return ""
	}
	return p[len(p)-1]
}

// Step counts the assistant messages since the latest prompt: 0 for the
// first model call of a prompt, 1 after one tool round trip, and so on.
// Unlike a request counter it does not move when the client retries, so
// a script keyed on it survives retries and side requests.
func (r Request) Step() int {
	last := -1
	for i, m := range r.Messages {
		if m.Role != "user" {
			continue
		}
		for _, c := range m.Content {
			if c.Type == "text" && !isReminder(c.Text) {
				last = i
			}
		}
	}
	n := 0
	for _, m := range r.Messages[last+1:] {
		if m.Role == "assistant" {
			n++
		}
	}
	return n
}

// isCompaction recognises the CLI's summarisation request: its last user
// message asks for an <analysis> and a <summary> block and no tool calls.
func (r Request) isCompaction() bool {
	if len(r.Messages) == 0 {
		return false
	}
	m := r.Messages[len(r.Messages)-1]
	if m.Role != "user" {
		return false
	}
	for _, c := range m.Content {
		if c.Type == "text" && strings.Contains(c.Text, "<summary>") && strings.Contains(c.Text, "Do NOT call any tools") {
			return true
		}
	}
	return false
}

func isReminder(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), "<system-reminder>")
}

// wire types for decoding a Messages request.
type wireRequest struct {
	Model     string          `json:"model"`
	Stream    bool            `json:"stream"`
	MaxTokens int             `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

type wireBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

func (r *Request) decodeMessages() error {
	var w wireRequest
	if err := json.Unmarshal(r.Body, &w); err != nil {
		return err
	}
	r.Model, r.Stream, r.MaxTokens = w.Model, w.Stream, w.MaxTokens
	r.System = flattenText(w.System, "\n")
	for _, t := range w.Tools {
		r.Tools = append(r.Tools, t.Name)
	}
	for _, m := range w.Messages {
		r.Messages = append(r.Messages, Message{Role: m.Role, Content: decodeContent(m.Content)})
	}
	return nil
}

// decodeContent accepts both shapes the API allows: a plain string or an
// array of blocks.
func decodeContent(raw json.RawMessage) []Content {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []Content{{Type: "text", Text: s}}
	}
	var blocks []json.RawMessage
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	out := make([]Content, 0, len(blocks))
	for _, b := range blocks {
		var w wireBlock
		_ = json.Unmarshal(b, &w)
		c := Content{Type: w.Type, Text: w.Text, ID: w.ID, Name: w.Name, Input: w.Input,
			ToolUseID: w.ToolUseID, IsError: w.IsError, Raw: b}
		if w.Type == "tool_result" {
			c.Content = flattenText(w.Content, "\n")
		}
		out = append(out, c)
	}
	return out
}

// flattenText turns a string or an array of text blocks into one string;
// other blocks appear as "[type]".
func flattenText(raw json.RawMessage, sep string) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []wireBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	parts := make([]string, 0, len(blocks))
	for _, b := range blocks {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		} else {
			parts = append(parts, "["+b.Type+"]")
		}
	}
	return strings.Join(parts, sep)
}
