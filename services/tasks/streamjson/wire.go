package streamjson

import (
	"encoding/json"
	"strings"
)

// wireEvent is the union of the fields of every event type the package
// understands, so that a line is decoded in a single pass whatever its
// type. Fields are only read for the types they belong to.
type wireEvent struct {
	Type      string `json:"type"`
	Subtype   string `json:"subtype"`
	SessionID string `json:"session_id"`
	UUID      string `json:"uuid"`

	// system/init
	CWD               string      `json:"cwd"`
	Model             string      `json:"model"`
	Tools             []string    `json:"tools"`
	MCPServers        []MCPServer `json:"mcp_servers"`
	PermissionMode    string      `json:"permissionMode"`
	ClaudeCodeVersion string      `json:"claude_code_version"`
	APIKeySource      string      `json:"apiKeySource"`
	OutputStyle       string      `json:"output_style"`
	SlashCommands     []string    `json:"slash_commands"`
	Agents            []string    `json:"agents"`

	// other system events (status, permission_denied, …)
	Status    string `json:"status"`
	ToolName  string `json:"tool_name"`
	ToolUseID string `json:"tool_use_id"`

	// system/api_retry
	Attempt      int             `json:"attempt"`
	MaxRetries   int             `json:"max_retries"`
	RetryDelayMS int64           `json:"retry_delay_ms"`
	ErrorStatus  int             `json:"error_status"`
	Error        json.RawMessage `json:"error"` // a string so far; kept loose

	// assistant, user
	Message           *wireMessage `json:"message"`
	ParentToolUseID   string       `json:"parent_tool_use_id"`
	IsAPIErrorMessage bool         `json:"is_api_error_message"`
	RequestID         string       `json:"request_id"`
	Aborted           bool         `json:"aborted"`

	// result (api_error_* also on synthetic assistant messages)
	IsError           bool       `json:"is_error"`
	DurationMS        int64      `json:"duration_ms"`
	DurationAPIMS     int64      `json:"duration_api_ms"`
	NumTurns          int        `json:"num_turns"`
	TotalCostUSD      float64    `json:"total_cost_usd"`
	Result            string     `json:"result"`
	Usage             *Usage     `json:"usage"`
	PermissionDenials []struct{} `json:"permission_denials"` // only counted
	StopReason        string     `json:"stop_reason"`
	TerminalReason    string     `json:"terminal_reason"`
	Errors            []string   `json:"errors"`
	APIErrorStatus    int        `json:"api_error_status"`
	APIErrorType      string     `json:"api_error_type"`
	APIError          string     `json:"api_error"`

	// stream_event
	Event *wireStreamEvent `json:"event"`

	// MessageText is "message" when it is a string (system notices); only
	// the fast path fills it, encoding/json's path repairs it afterwards.
	MessageText string `json:"-"`
}

type wireMessage struct {
	ID         string      `json:"id"`
	Model      string      `json:"model"`
	Role       string      `json:"role"`
	Content    []wireBlock `json:"content"`
	Usage      *Usage      `json:"usage"`
	StopReason string      `json:"stop_reason"`
}

type wireStreamEvent struct {
	Type         string         `json:"type"`
	Index        int            `json:"index"`
	ContentBlock *streamBlock   `json:"content_block"`
	Delta        *streamDelta   `json:"delta"`
	Message      *streamMessage `json:"message"`
	Usage        *Usage         `json:"usage"`
}

type streamBlock struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

type streamDelta struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Thinking    string `json:"thinking"`
	PartialJSON string `json:"partial_json"`
	StopReason  string `json:"stop_reason"`
}

type streamMessage struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	Usage *Usage `json:"usage"`
}

func (w *wireEvent) fill(ev *Event) {
	ev.Type, ev.Subtype, ev.SessionID, ev.UUID = w.Type, w.Subtype, w.SessionID, w.UUID
	switch w.Type {
	case "system":
		switch w.Subtype {
		case "init":
			ev.Init = &Init{
				Model: w.Model, CWD: w.CWD, Tools: w.Tools, MCPServers: w.MCPServers,
				PermissionMode: w.PermissionMode, ClaudeCodeVersion: w.ClaudeCodeVersion,
				APIKeySource: w.APIKeySource, OutputStyle: w.OutputStyle,
				SlashCommands: w.SlashCommands, Agents: w.Agents,
			}
		case "api_retry":
			ev.Retry = &Retry{Attempt: w.Attempt, MaxRetries: w.MaxRetries, RetryDelayMS: w.RetryDelayMS,
				ErrorStatus: w.ErrorStatus, Error: looseString(w.Error)}
		default:
			ev.System = &System{Status: w.Status, Message: w.MessageText, ToolName: w.ToolName, ToolUseID: w.ToolUseID}
		}
	case "assistant", "user":
		if m := w.Message; m != nil {
			var content []Block
			if len(m.Content) > 0 {
				content = make([]Block, len(m.Content))
				for i := range m.Content {
					content[i] = m.Content[i].block()
				}
			}
			ev.Message = &Message{
				ID: m.ID, Model: m.Model, Role: m.Role, Content: content, Usage: m.Usage,
				StopReason: m.StopReason, ParentToolUseID: w.ParentToolUseID,
				IsAPIError: w.IsAPIErrorMessage, APIErrorStatus: w.APIErrorStatus, APIErrorType: w.APIErrorType,
				Error: looseString(w.Error), RequestID: w.RequestID, Aborted: w.Aborted,
			}
		}
	case "result":
		r := &Result{
			Subtype: w.Subtype, IsError: w.IsError, DurationMS: w.DurationMS, DurationAPIMS: w.DurationAPIMS,
			NumTurns: w.NumTurns, TotalCostUSD: w.TotalCostUSD, Result: w.Result,
			PermissionDenials: len(w.PermissionDenials), SessionID: w.SessionID,
			StopReason: w.StopReason, TerminalReason: w.TerminalReason, Errors: w.Errors,
			APIErrorStatus: w.APIErrorStatus, APIErrorType: w.APIErrorType, APIError: w.APIError,
		}
		if w.Usage != nil {
			r.Usage = *w.Usage
		}
		ev.Result = r
	case "stream_event":
		if e := w.Event; e != nil {
			s := &StreamEvent{Type: e.Type, Index: e.Index, Usage: e.Usage}
			if b := e.ContentBlock; b != nil {
				s.BlockType, s.ToolUseID, s.ToolName = b.Type, b.ID, b.Name
			}
			if d := e.Delta; d != nil {
				s.DeltaType, s.JSON, s.StopReason = d.Type, d.PartialJSON, d.StopReason
				s.Text = d.Text
				if d.Thinking != "" {
					s.Text = d.Thinking
				}
			}
			if m := e.Message; m != nil {
				s.MessageID, s.Model = m.ID, m.Model
				if m.Usage != nil {
					s.Usage = m.Usage
				}
			}
			ev.Stream = s
		}
	}
}

// looseString is the value of a string field, or "" when the field is
// absent or of another JSON type.
func looseString(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// wireBlock decodes the fields of every known block type at once.
type wireBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Thinking  string          `json:"thinking"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   toolContent     `json:"content"`
	IsError   bool            `json:"is_error"`
	raw       json.RawMessage // unknown types; filled by the fast path
}

func knownBlock(t string) bool {
	switch t {
	case "text", "tool_use", "tool_result", "thinking", "redacted_thinking":
		return true
	}
	return false
}

func (w *wireBlock) block() Block {
	b := Block{Type: w.Type, Text: w.Text, ID: w.ID, Name: w.Name, Input: w.Input,
		ToolUseID: w.ToolUseID, Content: string(w.Content), IsError: w.IsError, Raw: w.raw}
	if w.Type == "thinking" {
		b.Text = w.Thinking
	}
	return b
}

// toolContent flattens a tool_result's content, a string or an array of
// blocks, to text. Non-text blocks leave a marker such as "[image]" so a
// reader knows something was there.
type toolContent string

func (c *toolContent) UnmarshalJSON(data []byte) error {
	switch firstByte(data) {
	case '"':
		var s string
		err := json.Unmarshal(data, &s)
		*c = toolContent(s)
		return err
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(data, &parts); err != nil {
			return err
		}
		var sb strings.Builder
		for i, p := range parts {
			if i > 0 {
				sb.WriteByte('\n')
			}
			if p.Type == "text" {
				sb.WriteString(p.Text)
			} else {
				sb.WriteString("[" + p.Type + "]")
			}
		}
		*c = toolContent(sb.String())
	}
	return nil
}

func firstByte(data []byte) byte {
	for _, b := range data {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b
	}
	return 0
}

// repairMessage re-reads the "message" field of ev loosely. It runs only
// when the typed pass could not take the message as it is: a plain-string
// message (system notices), string content (prompts), or blocks of types
// this package does not know, whose JSON must be kept. Keeping this off
// the common path spares every ordinary line a second decode.
func repairMessage(raw []byte, ev *Event) bool {
	var outer struct {
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(raw, &outer) != nil || len(outer.Message) == 0 {
		return false
	}
	switch firstByte(outer.Message) {
	case '"':
		ev.Message = nil // encoding/json left an empty one behind
		if ev.System != nil {
			ev.System.Message = looseString(outer.Message)
		}
		return true
	case '{':
	default:
		return false
	}
	var m struct {
		ID         string          `json:"id"`
		Model      string          `json:"model"`
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		Usage      *Usage          `json:"usage"`
		StopReason string          `json:"stop_reason"`
	}
	if json.Unmarshal(outer.Message, &m) != nil {
		return false
	}
	if ev.Message == nil {
		ev.Message = &Message{}
	}
	msg := ev.Message
	msg.ID, msg.Model, msg.Role, msg.Usage, msg.StopReason = m.ID, m.Model, m.Role, m.Usage, m.StopReason
	msg.Content = nil
	switch firstByte(m.Content) {
	case '"':
		msg.Content = []Block{{Type: "text", Text: looseString(m.Content)}}
	case '[':
		var parts []json.RawMessage
		if json.Unmarshal(m.Content, &parts) != nil {
			return false
		}
		for _, p := range parts {
			var w wireBlock
			_ = json.Unmarshal(p, &w)
			b := w.block()
			if !knownBlock(w.Type) {
				b.Raw = p
			}
			msg.Content = append(msg.Content, b)
		}
	}
	return true
}
