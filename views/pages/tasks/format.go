package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aicode/services/store"
)

// Form is the new-task and follow-up form, as typed (kept on errors).
type Form struct {
	Prompt             string
	Model              string
	MaxTurns           string
	PermissionMode     string
	AllowedTools       string
	DisallowedTools    string
	AppendSystemPrompt string
	Error              string
	ErrorField         string
}

// statusKind maps a task status onto the badge colours workspaces use.
func statusKind(st store.TaskStatus) string {
	switch st {
	case store.TaskSucceeded:
		return "ok"
	case store.TaskFailed:
		return "bad"
	case store.TaskRunning:
		return "busy"
	case store.TaskQueued, store.TaskInterrupted:
		return "warn"
	}
	return "idle"
}

// Cost is a dollar amount with cents, or more precision for small sums.
func Cost(usd float64) string {
	switch {
	case usd == 0:
		return "$0"
	case usd < 0.01:
		return fmt.Sprintf("$%.4f", usd)
	}
	return fmt.Sprintf("$%.2f", usd)
}

// Tokens is a token count, short.
func Tokens(n int64) string {
	switch {
	case n >= 10_000_000:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return strconv.FormatInt(n/1000, 10) + "k"
	case n >= 1000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// Duration is a run's length, short.
func Duration(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms <= 0:
		return "—"
	case d < time.Second:
		return strconv.FormatInt(ms, 10) + " ms"
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// When is a timestamp for lists.
func When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return When(*t)
}

// elapsed is how long a task took, or has been running.
func elapsed(t store.Task) string {
	if t.StartedAt == nil {
		return "—"
	}
	end := time.Now()
	if t.FinishedAt != nil {
		end = *t.FinishedAt
	}
	return Duration(end.Sub(*t.StartedAt).Milliseconds())
}

// oneLine is the start of s on one line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// prettyJSON indents JSON for display, or returns it as it is.
func prettyJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// maxShown bounds a block of text shown inline; the whole of it is in the
// transcript download.
const maxShown = 10_000

func clip(s string) (string, bool) {
	if len(s) <= maxShown {
		return s, false
	}
	return s[:maxShown], true
}

func shortSHA(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// toolInputHint is the part of a tool's input worth showing on one line.
func toolInputHint(raw []byte) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	for _, k := range []string{"command", "file_path", "path", "pattern", "url", "description", "prompt"} {
		if v, ok := m[k].(string); ok && v != "" {
			return oneLine(v, 120)
		}
	}
	return ""
}
