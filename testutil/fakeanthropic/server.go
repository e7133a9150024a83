// Package fakeanthropic is a loopback stand-in for Anthropic's Messages
// API, good enough for the real claude CLI to run an agent loop against it:
// streamed SSE answers, tool calls, documented error shapes, and a record
// of every request so tests can assert on what the CLI sent.
//
//	srv := fakeanthropic.New(t, fakeanthropic.WithTurns(
//		fakeanthropic.Blocks(fakeanthropic.ToolUse("Write", map[string]string{
//			"file_path": "/workspace/a.txt", "content": "hi\n"})),
//		fakeanthropic.Text("Done."),
//	))
//	// run `claude -p …` with ANTHROPIC_BASE_URL=srv.URL(),
//	// ANTHROPIC_API_KEY=anything, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
//	// and CLAUDE_CODE_MAX_RETRIES=0 (errors are otherwise retried for minutes);
//	// a container reaches 127.0.0.1 with --network host.
//	// Then srv.MainRequests()[1].ToolResults() holds what the Write tool
//	// returned to the model.
//
// Main requests (those offering tools) take the scripted turns; side
// requests and the CLI's compaction requests get generic answers so they
// never shift the script. See services/tasks/streamjson/testdata/FACTS.md
// for what the CLI sends.
package fakeanthropic

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultModel is the model id answers carry unless WithModel says
// otherwise; the CLI shows whatever the API reports.
const DefaultModel = "claude-sonnet-4-5-20250929"

// Script chooses the answer for a main request.
type Script func(Request) Turn

// Option configures a Server.
type Option func(*Server)

// WithTurns answers main requests with the given turns in order: every
// main request consumes one, retries included, so "529 then success" can be
// scripted. Once they are used up the server answers a generic text and
// records Turn = -1.
func WithTurns(turns ...Turn) Option {
	return func(s *Server) { s.turns, s.next, s.script = turns, 0, nil }
}

// WithScript answers main requests with f. f may be called concurrently.
func WithScript(f Script) Option {
	return func(s *Server) { s.script, s.turns = f, nil }
}

// WithSideReply answers side requests (Messages requests without tools).
func WithSideReply(f Script) Option { return func(s *Server) { s.side = f } }

// WithClassifier replaces the default rule (a Messages request is main iff
// it offers tools).
func WithClassifier(isMain func(Request) bool) Option { return func(s *Server) { s.isMain = isMain } }

// WithAPIKey makes the server accept only this key (as x-api-key or
// Authorization: Bearer); anything else gets 401 authentication_error.
// Without it any non-empty key is accepted.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithModel sets the model id reported in answers.
func WithModel(id string) Option { return func(s *Server) { s.model = id } }

// WithLog logs one line per request to the test log.
func WithLog() Option { return func(s *Server) { s.log = true } }

// Server is a running fake. All methods are safe for concurrent use.
type Server struct {
	tb     testing.TB
	ts     *httptest.Server
	closed chan struct{}
	once   sync.Once

	model  string
	apiKey string
	log    bool
	isMain func(Request) bool
	side   Script

	mu      sync.Mutex
	script  Script
	turns   []Turn
	next    int
	reqs    []Request
	changed chan struct{} // closed and replaced whenever reqs grows
	cached  map[[32]byte]int64
}

// New starts a server on 127.0.0.1:0 and closes it when the test ends.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := &Server{
		tb:      tb,
		closed:  make(chan struct{}),
		model:   DefaultModel,
		changed: make(chan struct{}),
		cached:  map[[32]byte]int64{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.isMain == nil {
		s.isMain = func(r Request) bool { return len(r.Tools) > 0 }
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakeanthropic: listen: %v", err)
	}
	s.ts = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.ts.Start()
	tb.Cleanup(s.Close)
	return s
}

// URL is the base URL to put in ANTHROPIC_BASE_URL.
func (s *Server) URL() string { return s.ts.URL }

// Addr is host:port of the listener.
func (s *Server) Addr() string { return s.ts.Listener.Addr().String() }

// Close stops the server. Hanging and delayed answers are released first,
// since httptest waits for every handler to return.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// SetTurns replaces the script with turns, starting again at the first.
func (s *Server) SetTurns(turns ...Turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turns, s.next, s.script = turns, 0, nil
}

// SetScript replaces the script with f.
func (s *Server) SetScript(f Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.turns = f, nil
}

// Requests is a copy of every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// MainRequests is the subset of Requests answered from the script.
func (s *Server) MainRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Kind == KindMain {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor blocks until cond holds for the recorded requests or ctx ends.
func (s *Server) WaitFor(ctx context.Context, cond func([]Request) bool) error {
	for {
		s.mu.Lock()
		ok := cond(s.reqs)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitMain waits for the n-th (1-based) main request and returns it.
func (s *Server) WaitMain(ctx context.Context, n int) (Request, error) {
	var got Request
	err := s.WaitFor(ctx, func(rs []Request) bool {
		k := 0
		for _, r := range rs {
			if r.Kind == KindMain {
				if k++; k == n {
					got = r
					return true
				}
			}
		}
		return false
	})
	return got, err
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) {
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		return
	}
	req := Request{
		Time: time.Now(), Method: hr.Method, Path: hr.URL.Path, RawQuery: hr.URL.RawQuery,
		Header: hr.Header.Clone(), Body: body, Turn: -1,
	}
	path := strings.TrimSuffix(hr.URL.Path, "/")

	switch {
	case path == "/v1/messages" && hr.Method == http.MethodPost:
		if err := req.decodeMessages(); err != nil {
			req.Kind = KindOther
			s.answerError(w, s.record(req, http.StatusBadRequest), InvalidRequestError("body is not a valid Messages request: "+err.Error()))
			return
		}
		s.messages(w, hr, req)
	case path == "/v1/messages/count_tokens" && hr.Method == http.MethodPost:
		req.Kind = KindCountTokens
		_ = req.decodeMessages()
		if s.refuseAuth(w, &req) {
			return
		}
		s.record(req, http.StatusOK)
		writeJSON(w, http.StatusOK, map[string]any{"input_tokens": estimateTokens(len(body))})
	case path == "/v1/models" && hr.Method == http.MethodGet:
		req.Kind = KindModels
		if s.refuseAuth(w, &req) {
			return
		}
		s.record(req, http.StatusOK)
		m := s.modelInfo(s.model)
		writeJSON(w, http.StatusOK, map[string]any{"data": []any{m}, "has_more": false, "first_id": s.model, "last_id": s.model})
	case strings.HasPrefix(path, "/v1/models/") && hr.Method == http.MethodGet:
		req.Kind = KindModels
		if s.refuseAuth(w, &req) {
			return
		}
		s.record(req, http.StatusOK)
		writeJSON(w, http.StatusOK, s.modelInfo(strings.TrimPrefix(path, "/v1/models/")))
	case hr.Method == http.MethodHead || (hr.Method == http.MethodGet && !strings.HasPrefix(path, "/v1/")):
		// The CLI checks reachability with HEAD /api/hello before it
		// starts; any 2xx will do.
		req.Kind = KindProbe
		s.record(req, http.StatusOK)
		w.WriteHeader(http.StatusOK)
	default:
		req.Kind = KindOther
		s.answerError(w, s.record(req, http.StatusNotFound), &APIError{Status: http.StatusNotFound, Type: "not_found_error", Message: "Not found: " + hr.Method + " " + hr.URL.Path})
	}
}

func (s *Server) messages(w http.ResponseWriter, hr *http.Request, req Request) {
	compact := req.isCompaction()
	main := !compact && s.isMain(req)
	switch {
	case compact:
		req.Kind = KindCompact
	case main:
		req.Kind = KindMain
	default:
		req.Kind = KindSide
	}
	if s.refuseAuth(w, &req) {
		return
	}

	var turn Turn
	if main {
		s.mu.Lock()
		script := s.script
		if script == nil {
			if s.next < len(s.turns) {
				turn, req.Turn = s.turns[s.next], s.next
				s.next++
			} else {
				turn = Text("fakeanthropic: no scripted turn left.")
			}
		}
		s.mu.Unlock()
		if script != nil {
			turn = script(req)
			req.Turn = 0
		}
	} else if compact {
		turn = Text("<analysis>\nThe user asked for work in the workspace; the conversation so far is summarised below.\n</analysis>\n\n<summary>\n1. Primary Request and Intent:\n   Summarised by fakeanthropic.\n</summary>")
	} else if s.side != nil {
		turn = s.side(req)
	} else {
		turn = Text("OK")
	}

	status := http.StatusOK
	if turn.Error != nil {
		status = turn.Error.Status
	}
	seq := s.record(req, status)

	if turn.Hang {
		select {
		case <-hr.Context().Done():
		case <-s.closed:
			// Cut the connection rather than answer an empty 200, which a
			// client could take for a (broken) message.
			panic(http.ErrAbortHandler)
		}
		return
	}
	if turn.Error != nil {
		s.answerError(w, seq, turn.Error)
		return
	}
	msg := s.buildMessage(req, turn)
	if req.Stream {
		s.stream(w, hr.Context(), msg, turn)
		return
	}
	writeJSON(w, http.StatusOK, msg.json())
}

// refuseAuth answers 401 when the request carries no acceptable key, the
// way the API does before looking at the body.
func (s *Server) refuseAuth(w http.ResponseWriter, req *Request) bool {
	key := req.APIKey()
	if key != "" && (s.apiKey == "" || key == s.apiKey) {
		return false
	}
	e := AuthError()
	if key == "" {
		e.Message = "x-api-key header is required"
	}
	s.answerError(w, s.record(*req, e.Status), e)
	return true
}

// record appends req under the lock and wakes waiters; it returns the
// sequence number given to the request.
func (s *Server) record(req Request, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Seq = len(s.reqs) + 1
	req.Status = status
	if s.log {
		s.tb.Logf("fakeanthropic #%d %s %s kind=%s model=%s stream=%v msgs=%d tools=%d status=%d",
			req.Seq, req.Method, req.Path, req.Kind, req.Model, req.Stream, len(req.Messages), len(req.Tools), status)
	}
	s.reqs = append(s.reqs, req)
	close(s.changed)
	s.changed = make(chan struct{})
	return req.Seq
}

func (s *Server) answerError(w http.ResponseWriter, seq int, e *APIError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", itoa(int64((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Request-Id", s.requestID(seq))
	writeJSON(w, e.Status, map[string]any{
		"type":       "error",
		"error":      map[string]string{"type": e.Type, "message": e.Message},
		"request_id": s.requestID(seq),
	})
}

func (s *Server) modelInfo(id string) map[string]any {
	return map[string]any{"type": "model", "id": id, "display_name": displayName(id), "created_at": "2025-09-29T00:00:00Z"}
}

// usageFor estimates token counts the way a caching API would report
// them: the system prompt and tools are written to the cache the first
// time a prefix is seen and read from it afterwards.
func (s *Server) usageFor(req Request) Usage {
	prefixLen := len(req.System)
	for _, t := range req.Tools {
		prefixLen += 200 + len(t) // tool schemas are not recorded; a typical size
	}
	prefix := estimateTokens(prefixLen)
	convo := estimateTokens(len(req.Body) - prefixLen)
	if convo < 1 {
		convo = 1
	}
	if !strings.Contains(string(req.Body), `"cache_control"`) {
		return Usage{InputTokens: prefix + convo}
	}
	key := sha256.Sum256([]byte(req.Model + "\x00" + req.System + "\x00" + strings.Join(req.Tools, ",")))
	s.mu.Lock()
	prev, seen := s.cached[key]
	if convo > prev {
		s.cached[key] = convo
	}
	s.mu.Unlock()
	if !seen {
		return Usage{InputTokens: 3, CacheCreationInputTokens: prefix + convo}
	}
	read := prefix + min(prev, convo)
	return Usage{InputTokens: 3, CacheReadInputTokens: read, CacheCreationInputTokens: prefix + convo - read}
}

func estimateTokens(bytes int) int64 { return int64((bytes + 3) / 4) }

func displayName(id string) string {
	switch {
	case strings.Contains(id, "opus"):
		return "Claude Opus"
	case strings.Contains(id, "haiku"):
		return "Claude Haiku"
	default:
		return "Claude Sonnet"
	}
}
