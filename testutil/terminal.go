package testutil

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Term is a test client of a terminal WebSocket: it collects output,
// acknowledges it like the browser does, and records control messages.
type Term struct {
	t    testing.TB
	Conn *websocket.Conn

	mu       sync.Mutex
	out      bytes.Buffer
	controls []map[string]any
	closed   bool
	changed  chan struct{}
	wmu      sync.Mutex
	// NoAck stops acknowledging output (a paused browser).
	NoAck bool
}

// DialError is a refused handshake.
type DialError struct {
	Status int
	Err    error
}

func (e *DialError) Error() string { return e.Err.Error() }

// DialTerminal opens a terminal WebSocket with c's session cookie. origin
// is sent as the Origin header ("" for none).
func DialTerminal(t testing.TB, c *Client, path, origin string) (*Term, error) {
	t.Helper()
	u, _ := url.Parse(c.Base)
	wsURL := "ws://" + u.Host + path
	h := http.Header{}
	var cookies []string
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	h.Set("Cookie", strings.Join(cookies, "; "))
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10}
	conn, resp, err := d.Dial(wsURL, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, &DialError{Status: status, Err: err}
	}
	tm := &Term{t: t, Conn: conn, changed: make(chan struct{}, 1)}
	go tm.read()
	t.Cleanup(func() { conn.Close() })
	return tm, nil
}

func (tm *Term) read() {
	for {
		kind, data, err := tm.Conn.ReadMessage()
		tm.mu.Lock()
		if err != nil {
			tm.closed = true
			tm.mu.Unlock()
			tm.signal()
			return
		}
		if kind == websocket.TextMessage {
			var m map[string]any
			_ = json.Unmarshal(data, &m)
			tm.controls = append(tm.controls, m)
			if m["type"] == "resync" {
				tm.out.WriteString("\x00RESYNC\x00")
			}
		} else {
			tm.out.Write(data)
		}
		noAck := tm.NoAck
		tm.mu.Unlock()
		if kind == websocket.BinaryMessage && !noAck {
			_ = tm.Send(map[string]any{"type": "ack", "bytes": len(data)})
		}
		tm.signal()
	}
}

func (tm *Term) signal() {
	select {
	case tm.changed <- struct{}{}:
	default:
	}
}

// Send writes a control message.
func (tm *Term) Send(v any) error {
	b, _ := json.Marshal(v)
	tm.wmu.Lock()
	defer tm.wmu.Unlock()
	return tm.Conn.WriteMessage(websocket.TextMessage, b)
}

// Type sends keystrokes.
func (tm *Term) Type(s string) error {
	tm.wmu.Lock()
	defer tm.wmu.Unlock()
	return tm.Conn.WriteMessage(websocket.BinaryMessage, []byte(s))
}

// Output is everything received so far (resyncs marked as \x00RESYNC\x00).
func (tm *Term) Output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// Controls are the control messages received so far.
func (tm *Term) Controls() []map[string]any {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]map[string]any(nil), tm.controls...)
}

// Closed reports whether the server closed the connection.
func (tm *Term) Closed() bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.closed
}

// WaitFor waits until cond holds, failing the test after d.
func (tm *Term) WaitFor(what string, d time.Duration, cond func(tm *Term) bool) {
	tm.t.Helper()
	deadline := time.After(d)
	for !cond(tm) {
		select {
		case <-tm.changed:
		case <-deadline:
			tm.t.Fatalf("terminal: waited %s for %s; output so far:\n%q\ncontrols: %v", d, what, tail(tm.Output(), 2000), tm.Controls())
		}
	}
}

// WaitOutput waits for s to appear in the output.
func (tm *Term) WaitOutput(s string, d time.Duration) {
	tm.t.Helper()
	tm.WaitFor("output "+strconvQuote(s), d, func(tm *Term) bool { return strings.Contains(tm.Output(), s) })
}

// WaitControl waits for a control message of the given type and returns it.
func (tm *Term) WaitControl(typ string, d time.Duration) map[string]any {
	tm.t.Helper()
	var found map[string]any
	tm.WaitFor("control "+typ, d, func(tm *Term) bool {
		for _, m := range tm.Controls() {
			if m["type"] == typ {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
