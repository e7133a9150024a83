package tasks

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors of the service.
var (
	ErrNotFound = errors.New("task not found")
	// ErrFinished: the task has ended; it can be retried, not cancelled.
	ErrFinished = errors.New("the task has already finished")
	// ErrNoCredentials: nobody set Claude credentials for this run.
	ErrNoCredentials = errors.New("no Claude credentials are set")
)

// Error kinds, stored with a failed task so lists can filter and pages
// can say what to do.
const (
	KindAuth        = "auth"
	KindLimit       = "usage_limit"
	KindNetwork     = "network"
	KindOverloaded  = "overloaded"
	KindMaxTurns    = "max_turns"
	KindNoCLI       = "no_cli"
	KindCredentials = "no_credentials"
	KindWorkspace   = "workspace"
	KindEngine      = "engine"
	KindCLI         = "cli"
	KindTimeout     = "timeout"
	KindMalformed   = "malformed"
)

var (
	// "Claude AI usage limit reached|1767225600": the CLI's machine form.
	limitEpochRe = regexp.MustCompile(`(?i)limit reached\|(\d{9,11})`)
	// "resets 3pm", "resets at 15:00 (UTC)", "try again at ...".
	limitResetRe = regexp.MustCompile(`(?i)(?:resets?|try again)(?: at)? ([0-9][^\n.·|"]{0,40})`)
)

// explain turns what the CLI said about a failure into a kind and a
// sentence its user can act on. text is the result's text or the error
// output; both may be empty.
func explain(subtype, text string, now time.Time) (kind, msg string) {
	low := strings.ToLower(text)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(low, w) {
				return true
			}
		}
		return false
	}
	switch {
	case subtype == "error_max_turns":
		return KindMaxTurns, "Claude stopped after the maximum number of turns for this task. Raise Max turns and retry, or follow up to continue."
	case has("invalid api key", "invalid x-api-key", "authentication_error", "invalid bearer token", "oauth token has expired",
		"please run /login", "api error: 401", "status 401", "unauthorized", "credit balance is too low"):
		if has("credit balance") {
			return KindAuth, "The Anthropic account has no credit left. Add credit, or set other credentials in Settings."
		}
		return KindAuth, "Claude refused the credentials: the API key or token is invalid or expired. Set new ones in Settings → Claude credentials."
	case has("usage limit", "limit reached", "rate_limit_error", "429", "rate limit"):
		when := ""
		if m := limitEpochRe.FindStringSubmatch(text); m != nil {
			if sec, err := strconv.ParseInt(m[1], 10, 64); err == nil {
				when = time.Unix(sec, 0).UTC().Format("Mon 2 Jan 15:04 UTC")
			}
		} else if m := limitResetRe.FindStringSubmatch(text); m != nil {
			when = strings.TrimSpace(m[1])
		}
		if when != "" {
			return KindLimit, "Claude's usage limit was reached; it resets " + when + ". Retry the task after that."
		}
		return KindLimit, "Claude's usage or rate limit was reached. Retry the task later."
	case has("overloaded", "529"):
		return KindOverloaded, "Anthropic's API is overloaded right now. Retry the task in a few minutes."
	case has("connection error", "connection_failed", "econnrefused", "enotfound", "eai_again", "fetch failed", "etimedout", "econnreset",
		"network error", "unable to connect", "socket hang up", "getaddrinfo", "request timed out"):
		return KindNetwork, "Claude Code could not reach the Anthropic API (network failure). Check the workspace's network access and proxy settings, then retry."
	}
	line := firstLine(text)
	if line == "" {
		return KindCLI, "Claude Code failed without saying why."
	}
	return KindCLI, "Claude Code failed: " + line
}

// firstLine is s's first non-empty line, cut to a readable length. It
// looks no further than it must: s may be a tool's megabytes of output.
func firstLine(s string) string {
	for s != "" {
		l := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			l, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if len(l) > 4*300 {
			l = l[:4*300]
		}
		if l = strings.TrimSpace(l); l != "" {
			return truncate(l, 300)
		}
	}
	return ""
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// infraError is a failure of the machinery around the CLI (the engine, the
// store): the task is tried again later.
type infraError struct{ err error }

func (e *infraError) Error() string { return fmt.Sprintf("infrastructure: %v", e.err) }
func (e *infraError) Unwrap() error { return e.err }
