// Package streamjson reads what `claude -p --output-format stream-json
// --verbose` prints: one JSON object per line. Every line becomes an
// Event; types and blocks this package does not know are kept raw rather
// than dropped, so a newer CLI never loses data.
package streamjson

import "encoding/json"

// Event types produced by the reader itself, never by the CLI.
const (
	TypeMalformed = "malformed" // a line that is not a JSON object
	TypeOversized = "oversized" // a line longer than the reader's limit
)

// Event is one line of output.
type Event struct {
	Type    string // "system", "assistant", "user", "result", "stream_event", unknown types as-is, or TypeMalformed / TypeOversized
	Subtype string // "init", "api_retry", "status", "success", "error_max_turns", "error_during_execution", …

	// Raw is the line as read, without its line terminator; it belongs to
	// the Event. For oversized lines it is only the first OversizedPrefix
	// bytes.
	Raw  []byte
	Size int // length of the whole line in bytes, terminator excluded

	SessionID string
	UUID      string

	Init    *Init        // system/init
	Retry   *Retry       // system/api_retry
	System  *System      // other system subtypes
	Message *Message     // assistant and user
	Result  *Result      // result
	Stream  *StreamEvent // stream_event (--include-partial-messages)

	// Err is the JSON error for malformed lines. For other lines it is the
	// first field whose JSON type was unexpected; the rest still decoded.
	Err string
}

// Init is the system/init event: what the session runs with.
type Init struct {
	Model             string
	CWD               string
	Tools             []string
	MCPServers        []MCPServer
	PermissionMode    string
	ClaudeCodeVersion string
	APIKeySource      string
	OutputStyle       string
	SlashCommands     []string
	Agents            []string
}

// MCPServer is one entry of Init.MCPServers.
type MCPServer struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Retry is a system/api_retry event: the CLI will try the API again.
type Retry struct {
	Attempt      int
	MaxRetries   int
	RetryDelayMS int64
	ErrorStatus  int    // HTTP status, 0 for network errors
	Error        string // e.g. "overloaded", "authentication_failed", "unknown"
}

// System holds the common fields of the other system events, such as
// "status" (status "requesting") and "permission_denied" (a tool call the
// permission mode refused).
type System struct {
	Status    string
	Message   string
	ToolName  string
	ToolUseID string
}

// Message is the payload of assistant and user events.
type Message struct {
	ID              string
	Model           string // "<synthetic>" for messages the CLI made up (API errors)
	Role            string
	Content         []Block
	Usage           *Usage
	StopReason      string
	ParentToolUseID string // set for messages of subagents

	// The CLI reports API failures as a synthetic assistant message with
	// these set.
	IsAPIError     bool
	APIErrorStatus int
	APIErrorType   string
	Error          string
	RequestID      string
	Aborted        bool // streaming was interrupted (SIGINT)
}

// Block is one content block. Unknown block types keep their JSON in Raw.
type Block struct {
	Type string
	Text string // text, and the thinking of thinking blocks

	ID    string // tool_use
	Name  string
	Input json.RawMessage

	ToolUseID string // tool_result
	Content   string // tool_result content flattened to text; non-text parts as "[image]"
	IsError   bool

	Raw json.RawMessage // unknown block types
}

// Usage is a token count as the API reports it.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// Total is every token billed: input (cached or not) plus output.
func (u Usage) Total() int64 {
	return u.InputTokens + u.OutputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// Add sums two counts.
func (u Usage) Add(o Usage) Usage {
	return Usage{
		InputTokens:              u.InputTokens + o.InputTokens,
		OutputTokens:             u.OutputTokens + o.OutputTokens,
		CacheCreationInputTokens: u.CacheCreationInputTokens + o.CacheCreationInputTokens,
		CacheReadInputTokens:     u.CacheReadInputTokens + o.CacheReadInputTokens,
	}
}

// Result is the last event of a run that ended on its own terms. Subtype
// "success" does not mean success: API failures end with Subtype
// "success", IsError true and APIErrorStatus set.
type Result struct {
	Subtype           string
	IsError           bool
	DurationMS        int64
	DurationAPIMS     int64
	NumTurns          int
	TotalCostUSD      float64
	Result            string
	Usage             Usage
	PermissionDenials int
	SessionID         string
	StopReason        string
	TerminalReason    string // "completed", "max_turns", "api_error", "aborted_tools", "aborted_streaming", …
	Errors            []string
	APIErrorStatus    int
	APIErrorType      string
	APIError          string // e.g. "connection_failed"
}

// StreamEvent is a raw Messages API stream event passed through by
// --include-partial-messages.
type StreamEvent struct {
	Type       string // message_start, content_block_start, content_block_delta, …
	Index      int
	BlockType  string // content_block_start: "text", "tool_use", …
	ToolUseID  string
	ToolName   string
	DeltaType  string // "text_delta", "input_json_delta", "thinking_delta", …
	Text       string // text_delta text, thinking_delta thinking
	JSON       string // input_json_delta partial_json
	StopReason string // message_delta
	MessageID  string // message_start
	Model      string
	Usage      *Usage // message_start and message_delta
}
