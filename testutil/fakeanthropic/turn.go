package fakeanthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Turn is one scripted answer of the model: either a message made of
// blocks, an HTTP error, or a request that never answers.
type Turn struct {
	Blocks []Block

	// StopReason defaults to "tool_use" when a block is a tool call and to
	// "end_turn" otherwise, which is what the real API reports.
	StopReason string

	// Delay is slept before each SSE event after message_start, so a test
	// can watch events arrive live or cancel a run half way.
	Delay time.Duration

	// Error, when set, is returned instead of a message.
	Error *APIError

	// StreamError, when set, is sent as an SSE "error" event after the
	// message has started, the way the API reports overload mid-stream.
	StreamError *APIError

	// Hang keeps the request open, sending nothing, until the client goes
	// away or the server is closed.
	Hang bool

	// DropAfter > 0 aborts the TCP connection after that many SSE events,
	// which is what a network failure looks like to the client.
	DropAfter int

	// Usage replaces the estimated token counts.
	Usage *Usage

	// Model replaces the server's model id in the answer.
	Model string
}

// Block is one content block of a scripted answer.
type Block struct {
	Type  string // "text" or "tool_use"
	Text  string
	ID    string // tool_use id; generated when empty
	Name  string
	Input json.RawMessage
}

// Usage mirrors the API's usage object.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// APIError is an error answer in the API's documented shape.
type APIError struct {
	Status     int    // HTTP status
	Type       string // e.g. "authentication_error"
	Message    string
	RetryAfter time.Duration // sent as retry-after when > 0
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message)
}

// Text is a turn made of one text block.
func Text(s string) Turn { return Turn{Blocks: []Block{TextBlock(s)}} }

// TextBlock is a text content block.
func TextBlock(s string) Block { return Block{Type: "text", Text: s} }

// ToolUse is a tool call block; input is marshalled to JSON (a
// json.RawMessage or []byte is used as is).
func ToolUse(name string, input any) Block {
	var raw json.RawMessage
	switch v := input.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case string:
		raw = json.RawMessage(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("fakeanthropic: tool input for %s: %v", name, err))
		}
		raw = b
	}
	return Block{Type: "tool_use", Name: name, Input: raw}
}

// Blocks is a turn made of the given blocks.
func Blocks(b ...Block) Turn { return Turn{Blocks: b} }

// Fail is a turn that answers with the given error.
func Fail(e *APIError) Turn { return Turn{Error: e} }

// Documented error answers.
func AuthError() *APIError {
	return &APIError{Status: http.StatusUnauthorized, Type: "authentication_error", Message: "invalid x-api-key"}
}

func RateLimitError() *APIError {
	return &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Message: "Number of request tokens has exceeded your per-minute rate limit"}
}

func OverloadedError() *APIError {
	return &APIError{Status: 529, Type: "overloaded_error", Message: "Overloaded"}
}

func InvalidRequestError(msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg}
}

func ServerError() *APIError {
	return &APIError{Status: http.StatusInternalServerError, Type: "api_error", Message: "Internal server error"}
}
