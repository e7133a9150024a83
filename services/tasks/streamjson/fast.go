package streamjson

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The fast path decodes a line into the same wire structs as
// encoding/json, without reflection: on the 2-core CI machine
// encoding/json alone costs ~15 µs for a 250-byte stream_event line,
// which would eat most of the ingest budget. Whenever a line holds
// something the fast path does not decode exactly as encoding/json would
// (a mistyped field, an escaped key, a syntax error, deep nesting), it
// gives up and the caller decodes the line with encoding/json, which stays
// the reference. FuzzFastPath checks that the two agree.

const maxDepth = 1000

type cursor struct {
	b      []byte
	i      int
	depth  int
	fail   bool
	intern map[string]string
}

// The same few strings (event and block types, the session id, the model)
// recur on every line; sharing one copy saves allocations and memory in
// stored events.
const (
	maxInterned    = 512
	maxInternedLen = 64
)

// sym decodes a string that is likely to recur.
func (c *cursor) sym(dst *string) {
	if c.intern == nil {
		c.str(dst)
		return
	}
	start := c.i
	raw, ok := c.rawString()
	if !ok || len(raw) > maxInternedLen {
		c.i = start
		c.str(dst)
		return
	}
	if s, ok := c.intern[string(raw)]; ok {
		*dst = s
		return
	}
	s := string(raw)
	if len(c.intern) < maxInterned {
		c.intern[s] = s
	}
	*dst = s
}

func (c *cursor) slow() { c.fail = true }

func (c *cursor) ws() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *cursor) peek() byte {
	if c.i < len(c.b) {
		return c.b[c.i]
	}
	return 0
}

// object calls field for every key of the object at the cursor; field
// must consume the value. It reports false when the value is null.
func (c *cursor) object(field func(key []byte)) bool {
	c.ws()
	if c.null() {
		return false
	}
	if c.peek() != '{' {
		c.slow()
		return false
	}
	c.depth++
	if c.depth > maxDepth {
		c.slow()
		return false
	}
	c.i++
	c.ws()
	if c.peek() == '}' {
		c.i++
		c.depth--
		return true
	}
	for !c.fail {
		c.ws()
		key, ok := c.rawString()
		if !ok {
			c.slow()
			return false
		}
		c.ws()
		if c.peek() != ':' {
			c.slow()
			return false
		}
		c.i++
		c.ws()
		field(key)
		if c.fail {
			return false
		}
		c.ws()
		switch c.peek() {
		case ',':
			c.i++
		case '}':
			c.i++
			c.depth--
			return true
		default:
			c.slow()
			return false
		}
	}
	return false
}

// array calls elem for every element of the array at the cursor; elem
// must consume the element. It reports false when the value is null.
func (c *cursor) array(elem func()) bool {
	c.ws()
	if c.null() {
		return false
	}
	if c.peek() != '[' {
		c.slow()
		return false
	}
	c.depth++
	if c.depth > maxDepth {
		c.slow()
		return false
	}
	c.i++
	c.ws()
	if c.peek() == ']' {
		c.i++
		c.depth--
		return true
	}
	for !c.fail {
		c.ws()
		elem()
		if c.fail {
			return false
		}
		c.ws()
		switch c.peek() {
		case ',':
			c.i++
		case ']':
			c.i++
			c.depth--
			return true
		default:
			c.slow()
			return false
		}
	}
	return false
}

func (c *cursor) null() bool {
	if len(c.b)-c.i >= 4 && string(c.b[c.i:c.i+4]) == "null" {
		c.i += 4
		return true
	}
	return false
}

// rawString returns the bytes between the quotes of a string without
// escapes; escaped or invalid strings report false.
func (c *cursor) rawString() ([]byte, bool) {
	if c.peek() != '"' {
		return nil, false
	}
	start := c.i + 1
	ascii := true
	for j := start; j < len(c.b); j++ {
		switch ch := c.b[j]; {
		case ch == '"':
			if !ascii && !utf8.Valid(c.b[start:j]) {
				return nil, false // encoding/json would substitute U+FFFD
			}
			c.i = j + 1
			return c.b[start:j], true
		case ch == '\\' || ch < 0x20:
			return nil, false
		case ch >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// str decodes the string at the cursor into *dst; null leaves *dst alone,
// as encoding/json does.
func (c *cursor) str(dst *string) {
	if c.null() {
		return
	}
	if raw, ok := c.rawString(); ok {
		*dst = string(raw)
		return
	}
	if c.peek() != '"' {
		c.slow()
		return
	}
	// Escapes: let encoding/json unquote this one string.
	start := c.i
	if !c.skipString() {
		c.slow()
		return
	}
	if json.Unmarshal(c.b[start:c.i], dst) != nil {
		c.slow()
	}
}

func (c *cursor) number() []byte {
	start := c.i
	if c.peek() == '-' {
		c.i++
	}
	switch {
	case c.peek() == '0':
		c.i++
	case c.peek() >= '1' && c.peek() <= '9':
		for c.peek() >= '0' && c.peek() <= '9' {
			c.i++
		}
	default:
		c.slow()
		return nil
	}
	if c.peek() == '.' {
		c.i++
		if !(c.peek() >= '0' && c.peek() <= '9') {
			c.slow()
			return nil
		}
		for c.peek() >= '0' && c.peek() <= '9' {
			c.i++
		}
	}
	if c.peek() == 'e' || c.peek() == 'E' {
		c.i++
		if c.peek() == '+' || c.peek() == '-' {
			c.i++
		}
		if !(c.peek() >= '0' && c.peek() <= '9') {
			c.slow()
			return nil
		}
		for c.peek() >= '0' && c.peek() <= '9' {
			c.i++
		}
	}
	return c.b[start:c.i]
}

func (c *cursor) int64(dst *int64) {
	if c.null() {
		return
	}
	n, err := strconv.ParseInt(string(c.number()), 10, 64)
	if err != nil {
		c.slow()
		return
	}
	*dst = n
}

func (c *cursor) int(dst *int) {
	var n int64 = int64(*dst)
	c.int64(&n)
	*dst = int(n)
}

func (c *cursor) float(dst *float64) {
	if c.null() {
		return
	}
	f, err := strconv.ParseFloat(string(c.number()), 64)
	if err != nil {
		c.slow()
		return
	}
	*dst = f
}

func (c *cursor) bool(dst *bool) {
	switch {
	case c.null():
	case len(c.b)-c.i >= 4 && string(c.b[c.i:c.i+4]) == "true":
		c.i += 4
		*dst = true
	case len(c.b)-c.i >= 5 && string(c.b[c.i:c.i+5]) == "false":
		c.i += 5
		*dst = false
	default:
		c.slow()
	}
}

// raw skips a value and returns a copy of its bytes.
func (c *cursor) raw() json.RawMessage {
	start := c.i
	c.skip()
	if c.fail {
		return nil
	}
	return append(json.RawMessage(nil), c.b[start:c.i]...)
}

// viaJSON hands one sub-value to encoding/json: for rare, small fields it
// is not worth a hand decoder.
func (c *cursor) viaJSON(dst any) {
	start := c.i
	c.skip()
	if c.fail {
		return
	}
	if json.Unmarshal(c.b[start:c.i], dst) != nil {
		c.slow()
	}
}

func (c *cursor) skipString() bool {
	if c.peek() != '"' {
		return false
	}
	for j := c.i + 1; j < len(c.b); j++ {
		switch ch := c.b[j]; {
		case ch == '"':
			c.i = j + 1
			return true
		case ch < 0x20:
			return false
		case ch == '\\':
			j++
			if j >= len(c.b) {
				return false
			}
			switch c.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(c.b) {
					return false
				}
				for _, h := range c.b[j+1 : j+5] {
					if !isHex(h) {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F'
}

// skip consumes any value, checking it is valid JSON.
func (c *cursor) skip() {
	c.ws()
	switch ch := c.peek(); {
	case ch == '"':
		if !c.skipString() {
			c.slow()
		}
	case ch == '{':
		c.object(func([]byte) { c.skip() })
	case ch == '[':
		c.array(c.skip)
	case ch == 't' || ch == 'f':
		var b bool
		c.bool(&b)
	case ch == 'n':
		if !c.null() {
			c.slow()
		}
	default:
		c.number()
	}
}

// unknown skips the value of a key the struct does not have. encoding/json
// matches keys case-insensitively as a last resort; such a key is left to
// it.
func (c *cursor) unknown(key []byte, known []string) {
	for _, b := range key {
		if b >= 'A' && b <= 'Z' || b >= 0x80 {
			for _, k := range known {
				if strings.EqualFold(string(key), k) {
					c.slow()
					return
				}
			}
			break
		}
	}
	c.skip()
}

var eventKeys = []string{"type", "subtype", "session_id", "uuid", "cwd", "model", "tools", "mcp_servers",
	"permissionMode", "claude_code_version", "apiKeySource", "output_style", "slash_commands", "agents",
	"status", "tool_name", "tool_use_id", "attempt", "max_retries", "retry_delay_ms", "error_status", "error",
	"message", "parent_tool_use_id", "is_api_error_message", "request_id", "aborted", "is_error",
	"duration_ms", "duration_api_ms", "num_turns", "total_cost_usd", "result", "usage", "permission_denials",
	"stop_reason", "terminal_reason", "errors", "api_error_status", "api_error_type", "api_error", "event"}

// fastDecode fills w from a line that starts with '{'. It reports false
// when the caller must use encoding/json instead.
func fastDecode(line []byte, w *wireEvent, intern map[string]string) bool {
	c := &cursor{b: line, intern: intern}
	c.ws()
	if c.peek() != '{' {
		return false
	}
	c.object(func(key []byte) {
		switch string(key) {
		case "type":
			c.sym(&w.Type)
		case "subtype":
			c.sym(&w.Subtype)
		case "session_id":
			c.sym(&w.SessionID)
		case "uuid":
			c.str(&w.UUID)
		case "cwd":
			c.str(&w.CWD)
		case "model":
			c.sym(&w.Model)
		case "tools":
			c.viaJSON(&w.Tools)
		case "mcp_servers":
			c.viaJSON(&w.MCPServers)
		case "permissionMode":
			c.sym(&w.PermissionMode)
		case "claude_code_version":
			c.str(&w.ClaudeCodeVersion)
		case "apiKeySource":
			c.str(&w.APIKeySource)
		case "output_style":
			c.str(&w.OutputStyle)
		case "slash_commands":
			c.viaJSON(&w.SlashCommands)
		case "agents":
			c.viaJSON(&w.Agents)
		case "status":
			c.sym(&w.Status)
		case "tool_name":
			c.sym(&w.ToolName)
		case "tool_use_id":
			c.str(&w.ToolUseID)
		case "attempt":
			c.int(&w.Attempt)
		case "max_retries":
			c.int(&w.MaxRetries)
		case "retry_delay_ms":
			c.int64(&w.RetryDelayMS)
		case "error_status":
			c.int(&w.ErrorStatus)
		case "error":
			w.Error = c.raw()
		case "message":
			switch c.peek() {
			case '"':
				c.str(&w.MessageText)
			default:
				if w.Message == nil {
					w.Message = new(wireMessage)
				}
				if !fastMessage(c, w.Message) {
					w.Message = nil
				}
			}
		case "parent_tool_use_id":
			c.str(&w.ParentToolUseID)
		case "is_api_error_message":
			c.bool(&w.IsAPIErrorMessage)
		case "request_id":
			c.str(&w.RequestID)
		case "aborted":
			c.bool(&w.Aborted)
		case "is_error":
			c.bool(&w.IsError)
		case "duration_ms":
			c.int64(&w.DurationMS)
		case "duration_api_ms":
			c.int64(&w.DurationAPIMS)
		case "num_turns":
			c.int(&w.NumTurns)
		case "total_cost_usd":
			c.float(&w.TotalCostUSD)
		case "result":
			c.str(&w.Result)
		case "usage":
			w.Usage = fastUsage(c, w.Usage)
		case "permission_denials":
			n := 0
			if c.array(func() {
				// encoding/json decodes each element into struct{}:
				// objects and nulls pass, anything else is a type error.
				if c.peek() != '{' && c.peek() != 'n' {
					c.slow()
					return
				}
				c.skip()
				n++
			}) {
				w.PermissionDenials = make([]struct{}, n)
			}
		case "stop_reason":
			c.sym(&w.StopReason)
		case "terminal_reason":
			c.sym(&w.TerminalReason)
		case "errors":
			c.viaJSON(&w.Errors)
		case "api_error_status":
			c.int(&w.APIErrorStatus)
		case "api_error_type":
			c.str(&w.APIErrorType)
		case "api_error":
			c.str(&w.APIError)
		case "event":
			if c.peek() == 'n' {
				c.skip()
				w.Event = nil
				return
			}
			if w.Event == nil {
				w.Event = new(wireStreamEvent)
			}
			fastStreamEvent(c, w.Event)
		default:
			c.unknown(key, eventKeys)
		}
	})
	c.ws()
	return !c.fail && c.i == len(c.b)
}

var usageKeys = []string{"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}

// fastUsage decodes a usage object into u, allocating it when needed;
// null leaves u as it was.
func fastUsage(c *cursor, u *Usage) *Usage {
	if c.null() {
		return u
	}
	if u == nil {
		u = new(Usage)
	}
	c.object(func(key []byte) {
		switch string(key) {
		case "input_tokens":
			c.int64(&u.InputTokens)
		case "output_tokens":
			c.int64(&u.OutputTokens)
		case "cache_creation_input_tokens":
			c.int64(&u.CacheCreationInputTokens)
		case "cache_read_input_tokens":
			c.int64(&u.CacheReadInputTokens)
		default:
			c.unknown(key, usageKeys)
		}
	})
	return u
}

var messageKeys = []string{"id", "model", "role", "content", "usage", "stop_reason"}

// fastMessage decodes a message object; false means it was null.
func fastMessage(c *cursor, m *wireMessage) bool {
	return c.object(func(key []byte) {
		switch string(key) {
		case "id":
			c.str(&m.ID)
		case "model":
			c.sym(&m.Model)
		case "role":
			c.sym(&m.Role)
		case "stop_reason":
			c.sym(&m.StopReason)
		case "usage":
			m.Usage = fastUsage(c, m.Usage)
		case "content":
			if c.peek() == '"' {
				// A plain-string content: the typed pass cannot take
				// it, so it must be left to the repair step.
				c.slow()
				return
			}
			if c.peek() == 'n' {
				c.skip()
				m.Content = nil
				return
			}
			m.Content = m.Content[:0]
			c.array(func() {
				var b wireBlock
				start := c.i
				fastBlock(c, &b) // a null element stays a zero block, as with encoding/json
				if !knownBlock(b.Type) && !c.fail {
					b.raw = append(json.RawMessage(nil), c.b[start:c.i]...)
				}
				m.Content = append(m.Content, b)
			})
			if m.Content == nil {
				m.Content = []wireBlock{}
			}
		default:
			c.unknown(key, messageKeys)
		}
	})
}

var blockKeys = []string{"type", "text", "thinking", "id", "name", "input", "tool_use_id", "content", "is_error"}

func fastBlock(c *cursor, b *wireBlock) bool {
	return c.object(func(key []byte) {
		switch string(key) {
		case "type":
			c.sym(&b.Type)
		case "text":
			c.str(&b.Text)
		case "thinking":
			c.str(&b.Thinking)
		case "id":
			c.str(&b.ID)
		case "name":
			c.str(&b.Name)
		case "input":
			b.Input = c.raw()
		case "tool_use_id":
			c.str(&b.ToolUseID)
		case "is_error":
			c.bool(&b.IsError)
		case "content":
			switch c.peek() {
			case '"':
				var s string
				c.str(&s)
				b.Content = toolContent(s)
			case '[':
				var sb strings.Builder
				n := 0
				c.array(func() {
					var typ, text string
					if c.peek() != '{' {
						c.slow() // encoding/json: type error
						return
					}
					c.object(func(key []byte) {
						switch string(key) {
						case "type":
							c.str(&typ)
						case "text":
							c.str(&text)
						default:
							c.unknown(key, []string{"type", "text"})
						}
					})
					if n > 0 {
						sb.WriteByte('\n')
					}
					n++
					if typ == "text" {
						sb.WriteString(text)
					} else {
						sb.WriteString("[" + typ + "]")
					}
				})
				b.Content = toolContent(sb.String())
			default:
				c.skip() // numbers, objects, null: toolContent ignores them
			}
		default:
			c.unknown(key, blockKeys)
		}
	})
}

var streamKeys = []string{"type", "index", "content_block", "delta", "message", "usage"}

func fastStreamEvent(c *cursor, e *wireStreamEvent) {
	c.object(func(key []byte) {
		switch string(key) {
		case "type":
			c.sym(&e.Type)
		case "index":
			c.int(&e.Index)
		case "usage":
			e.Usage = fastUsage(c, e.Usage)
		case "content_block":
			if c.peek() == 'n' {
				c.skip()
				e.ContentBlock = nil
				return
			}
			if e.ContentBlock == nil {
				e.ContentBlock = new(streamBlock)
			}
			cb := e.ContentBlock
			c.object(func(key []byte) {
				switch string(key) {
				case "type":
					c.sym(&cb.Type)
				case "id":
					c.str(&cb.ID)
				case "name":
					c.str(&cb.Name)
				default:
					c.unknown(key, []string{"type", "id", "name"})
				}
			})
		case "delta":
			if c.peek() == 'n' {
				c.skip()
				e.Delta = nil
				return
			}
			if e.Delta == nil {
				e.Delta = new(streamDelta)
			}
			d := e.Delta
			c.object(func(key []byte) {
				switch string(key) {
				case "type":
					c.sym(&d.Type)
				case "text":
					c.str(&d.Text)
				case "thinking":
					c.str(&d.Thinking)
				case "partial_json":
					c.str(&d.PartialJSON)
				case "stop_reason":
					c.sym(&d.StopReason)
				default:
					c.unknown(key, []string{"type", "text", "thinking", "partial_json", "stop_reason"})
				}
			})
		case "message":
			if c.peek() == 'n' {
				c.skip()
				e.Message = nil
				return
			}
			if e.Message == nil {
				e.Message = new(streamMessage)
			}
			m := e.Message
			c.object(func(key []byte) {
				switch string(key) {
				case "id":
					c.str(&m.ID)
				case "model":
					c.str(&m.Model)
				case "usage":
					m.Usage = fastUsage(c, m.Usage)
				default:
					c.unknown(key, []string{"id", "model", "usage"})
				}
			})
		default:
			c.unknown(key, streamKeys)
		}
	})
}
