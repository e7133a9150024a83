package fakeanthropic

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// message is an answer before it is rendered as JSON or as SSE.
type message struct {
	id         string
	model      string
	blocks     []Block
	stopReason string
	usage      Usage
}

func (s *Server) buildMessage(req Request, t Turn) message {
	m := message{id: "msg_01" + randomID(22), model: s.model, stopReason: t.StopReason}
	if t.Model != "" {
		m.model = t.Model
	}
	out := 0
	for _, b := range t.Blocks {
		if b.Type == "" {
			b.Type = "text"
		}
		if b.Type == "tool_use" {
			if b.ID == "" {
				b.ID = "toolu_01" + randomID(22)
			}
			if len(b.Input) == 0 {
				b.Input = json.RawMessage("{}")
			}
			if m.stopReason == "" {
				m.stopReason = "tool_use"
			}
		}
		out += len(b.Text) + len(b.Input)
		m.blocks = append(m.blocks, b)
	}
	if m.stopReason == "" {
		m.stopReason = "end_turn"
	}
	if t.Usage != nil {
		m.usage = *t.Usage
	} else {
		m.usage = s.usageFor(req)
		m.usage.OutputTokens = estimateTokens(out) + 5
	}
	return m
}

func (b Block) wire() map[string]any {
	switch b.Type {
	case "tool_use":
		return map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": b.Input}
	default:
		return map[string]any{"type": b.Type, "text": b.Text}
	}
}

func (m message) json() map[string]any {
	content := make([]any, 0, len(m.blocks))
	for _, b := range m.blocks {
		content = append(content, b.wire())
	}
	return map[string]any{
		"id": m.id, "type": "message", "role": "assistant", "model": m.model,
		"content": content, "stop_reason": m.stopReason, "stop_sequence": nil, "usage": m.usage,
	}
}

// stream writes the answer as the documented SSE sequence.
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, m message, t Turn) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Request-Id", "req_011C"+randomID(20))
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)

	events := 0
	send := func(name string, data any) bool {
		if events > 0 && t.Delay > 0 {
			timer := time.NewTimer(t.Delay)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return false
			case <-s.closed:
				timer.Stop()
				panic(http.ErrAbortHandler) // a closed server breaks the stream
			}
		}
		if t.DropAfter > 0 && events >= t.DropAfter {
			// ErrAbortHandler makes net/http close the connection without
			// ending the chunked body: the client sees a broken stream.
			panic(http.ErrAbortHandler)
		}
		events++
		var buf bytes.Buffer
		buf.WriteString("event: ")
		buf.WriteString(name)
		buf.WriteString("\ndata: ")
		b, _ := json.Marshal(data)
		buf.Write(b)
		buf.WriteString("\n\n")
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}

	start := m.usage
	start.OutputTokens = 1
	if !send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": start,
	}}) {
		return
	}
	if t.StreamError != nil {
		send("error", map[string]any{"type": "error", "error": map[string]string{"type": t.StreamError.Type, "message": t.StreamError.Message}})
		return
	}
	for i, b := range m.blocks {
		var first, deltaType, key string
		var chunks []string
		switch b.Type {
		case "tool_use":
			first = "tool_use"
			deltaType, key = "input_json_delta", "partial_json"
			// The API opens a tool block with empty input and an empty
			// first delta, then streams the JSON in pieces.
			chunks = append([]string{""}, splitChunks(string(b.Input), jsonChunk(len(b.Input)))...)
		default:
			first = b.Type
			deltaType, key = "text_delta", "text"
			chunks = splitChunks(b.Text, 24)
		}
		startBlock := map[string]any{"type": first, "text": ""}
		if first == "tool_use" {
			startBlock = map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": map[string]any{}}
		}
		if !send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": startBlock}) {
			return
		}
		if i == 0 && !send("ping", map[string]any{"type": "ping"}) {
			return
		}
		for _, c := range chunks {
			if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": deltaType, key: c}}) {
				return
			}
		}
		if !send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i}) {
			return
		}
	}
	if !send("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": m.stopReason, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": m.usage.OutputTokens}}) {
		return
	}
	send("message_stop", map[string]any{"type": "message_stop"})
}

// jsonChunk picks a piece size giving several partial_json deltas for
// small inputs without flooding the client for large ones.
func jsonChunk(n int) int {
	return min(max(n/4, 8), 512)
}

// splitChunks cuts s into pieces of about size bytes, never inside a UTF-8
// sequence. An empty s gives one empty piece so every block has a delta.
func splitChunks(s string, size int) []string {
	if s == "" {
		return []string{""}
	}
	var out []string
	for len(s) > size {
		cut := size
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = size
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	return append(out, s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

func (s *Server) requestID(seq int) string {
	return "req_011C" + randomID(16) + strconv.Itoa(seq)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
