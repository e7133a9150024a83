package tasks

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidateAndArgs(t *testing.T) {
	o := Options{Model: " sonnet ", MaxTurns: 7, AllowedTools: []string{"Bash(git diff:*)", " ", "Edit"}, AppendSystemPrompt: " be brief "}
	if err := o.Validate("", "acceptEdits"); err != nil {
		t.Fatal(err)
	}
	got := o.Args("-rm everything", "sess-1")
	want := []string{"claude", "-p", "--output-format", "stream-json", "--verbose", "--resume", "sess-1", "--model", "sonnet",
		"--max-turns", "7", "--permission-mode", "acceptEdits", "--allowedTools", "Bash(git diff:*),Edit",
		"--append-system-prompt", "be brief", "--", "-rm everything"}
	if !slices.Equal(got, want) {
		t.Fatalf("args\n got %q\nwant %q", got, want)
	}
	for _, bad := range []Options{
		{Model: "bad model; rm"},
		{MaxTurns: -1},
		{MaxTurns: 501},
		{PermissionMode: "yolo"},
		{AllowedTools: []string{"Bash(unclosed"}},
		{AllowedTools: []string{"rm -rf /"}},
		{AppendSystemPrompt: strings.Repeat("x", 20001)},
	} {
		if err := bad.Validate("", "acceptEdits"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if got := SplitTools("Bash(git diff:*, git log:*), Edit\nRead,,"); !slices.Equal(got, []string{"Bash(git diff:*, git log:*)", "Edit", "Read"}) {
		t.Fatalf("split %q", got)
	}
}

func TestExplainInPlainWords(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		subtype, text, kind, says string
	}{
		{"success", "status 401 authentication_error \nInvalid API key · Fix external API key", KindAuth, "refused the credentials"},
		{"success", "Claude AI usage limit reached|1767225600", KindLimit, "Thu 1 Jan 00:00 UTC"},
		{"success", "5-hour limit reached ∙ resets 3pm (Europe/Paris)", KindLimit, "resets 3pm (Europe/Paris)"},
		{"success", "status 529 overloaded_error ", KindOverloaded, "overloaded"},
		{"success", "status 0  connection_failed\nAPI Error: Connection error.", KindNetwork, "could not reach"},
		{"error_max_turns", "Reached maximum number of turns (3)", KindMaxTurns, "maximum number of turns"},
		{"error_during_execution", "\n\nsomething odd happened\nmore", KindCLI, "Claude Code failed: something odd happened"},
		{"", "", KindCLI, "without saying why"},
	} {
		kind, msg := explain(c.subtype, c.text, now)
		if kind != c.kind || !strings.Contains(msg, c.says) {
			t.Errorf("%q: %s %q, want %s containing %q", c.text, kind, msg, c.kind, c.says)
		}
	}
}

func TestFirstLineLooksNoFurtherThanNeeded(t *testing.T) {
	if got := firstLine("\n  \n  hello world  \nrest"); got != "hello world" {
		t.Fatalf("%q", got)
	}
	long := strings.Repeat("é", 1000)
	if got := firstLine(long); len(got) > 300+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("long line: %d bytes", len(got))
	}
}
