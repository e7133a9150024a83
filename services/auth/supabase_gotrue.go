package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	gotrue "github.com/supabase-community/gotrue-go"
)

// goTrue calls a Supabase project's GoTrue through gotrue-go. The library
// takes no context, so each call gets an HTTP client whose transport
// carries the caller's: a request that goes away stops waiting.
type goTrue struct {
	base      gotrue.Client
	transport http.RoundTripper
	timeout   time.Duration
}

func newGoTrue(url, anonKey string, hc *http.Client) *goTrue {
	g := &goTrue{base: gotrue.New("", anonKey).WithCustomGoTrueURL(url), transport: http.DefaultTransport, timeout: 10 * time.Second}
	if hc != nil {
		if hc.Transport != nil {
			g.transport = hc.Transport
		}
		if hc.Timeout > 0 {
			g.timeout = hc.Timeout
		}
	}
	return g
}

type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// client returns a client bound to ctx, sending token as its bearer when
// not empty.
func (g *goTrue) client(ctx context.Context, token string) gotrue.Client {
	c := g.base.WithClient(http.Client{Timeout: g.timeout, Transport: ctxTransport{ctx: ctx, base: g.transport}})
	if token != "" {
		c = c.WithToken(token)
	}
	return c
}

// goTrueError is a GoTrue answer other than 2xx; Status 0 means no answer
// at all (connection refused, timeout).
type goTrueError struct {
	Status int
	Code   string // error_code, e.g. invalid_credentials
	Msg    string // GoTrue's human message; never holds a secret
}

func (e *goTrueError) Error() string {
	if e.Status == 0 {
		return "supabase auth unreachable: " + e.Msg
	}
	return "supabase auth answered " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Msg
}

// rejected: GoTrue answered and refused the request itself (wrong
// password, spent refresh token), as opposed to failing or being away.
func (e *goTrueError) rejected() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
}

// gotrue-go reports non-2xx answers as "response status code N: body".
var statusRe = regexp.MustCompile(`(?s)^response status code (\d{3})(?:: (.*))?$`)

// asGoTrueError turns a gotrue-go error into a goTrueError. Transport
// errors keep only their kind: the URL they quote is not secret, but the
// message is shown in logs only anyway.
func asGoTrueError(err error) *goTrueError {
	if err == nil {
		return nil
	}
	m := statusRe.FindStringSubmatch(err.Error())
	if m == nil {
		msg := "no answer"
		switch {
		case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
			msg = "timed out"
		case errors.Is(err, context.Canceled):
			msg = "request cancelled"
		case strings.Contains(err.Error(), "connection refused"):
			msg = "connection refused"
		}
		return &goTrueError{Msg: msg}
	}
	status, _ := strconv.Atoi(m[1])
	e := &goTrueError{Status: status}
	var body struct {
		ErrorCode        string `json:"error_code"`
		Msg              string `json:"msg"`
		Message          string `json:"message"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal([]byte(m[2]), &body) == nil {
		e.Code = firstOf(body.ErrorCode, body.Error)
		e.Msg = firstOf(body.Msg, body.Message, body.ErrorDescription, body.Error)
	}
	if len(e.Msg) > 200 {
		e.Msg = e.Msg[:200]
	}
	return e
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
