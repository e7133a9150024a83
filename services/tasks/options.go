package tasks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Options tune one run of the CLI.
type Options struct {
	Model              string   `json:"model,omitempty"`
	MaxTurns           int      `json:"max_turns,omitempty"`
	PermissionMode     string   `json:"permission_mode,omitempty"`
	AllowedTools       []string `json:"allowed_tools,omitempty"`
	DisallowedTools    []string `json:"disallowed_tools,omitempty"`
	AppendSystemPrompt string   `json:"append_system_prompt,omitempty"`
}

// PermissionModes are the CLI's --permission-mode choices that make sense
// without anyone at a terminal to answer a prompt.
var PermissionModes = []string{"acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"}

// Limits on what a task may ask for.
const (
	MaxPromptLen       = 100_000
	maxSystemPromptLen = 20_000
	maxTools           = 50
	maxTurnsLimit      = 500
)

var (
	modelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:\[\]-]{0,99}$`)
	// A tool rule: a name, optionally with a parenthesised specifier
	// ("Bash(git diff:*)").
	toolRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}(\([^()\x00-\x1f]{1,200}\))?$`)
)

// ErrInvalid wraps everything wrong with a request, in words for its user.
type ErrInvalid struct{ Field, Msg string }

func (e *ErrInvalid) Error() string { return e.Msg }

// Validate checks o and fills defaults.
func (o *Options) Validate(defaultModel, defaultMode string) error {
	o.Model = strings.TrimSpace(o.Model)
	if o.Model == "" {
		o.Model = defaultModel
	}
	if o.Model != "" && !modelRe.MatchString(o.Model) {
		return &ErrInvalid{"model", fmt.Sprintf("%q is not a model name.", o.Model)}
	}
	if o.MaxTurns < 0 || o.MaxTurns > maxTurnsLimit {
		return &ErrInvalid{"max_turns", fmt.Sprintf("Max turns must be between 1 and %d (or empty for no limit).", maxTurnsLimit)}
	}
	if o.PermissionMode == "" {
		o.PermissionMode = defaultMode
	}
	ok := false
	for _, m := range PermissionModes {
		ok = ok || m == o.PermissionMode
	}
	if !ok {
		return &ErrInvalid{"permission_mode", fmt.Sprintf("%q is not a permission mode.", o.PermissionMode)}
	}
	for _, list := range []*[]string{&o.AllowedTools, &o.DisallowedTools} {
		var clean []string
		for _, t := range *list {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if !toolRe.MatchString(t) {
				return &ErrInvalid{"tools", fmt.Sprintf("%q is not a tool rule (a name like Edit, or Bash(git diff:*)).", t)}
			}
			clean = append(clean, t)
		}
		if len(clean) > maxTools {
			return &ErrInvalid{"tools", fmt.Sprintf("At most %d tool rules.", maxTools)}
		}
		*list = clean
	}
	o.AppendSystemPrompt = strings.TrimSpace(o.AppendSystemPrompt)
	if len(o.AppendSystemPrompt) > maxSystemPromptLen {
		return &ErrInvalid{"append_system_prompt", fmt.Sprintf("The added system prompt is longer than %d characters.", maxSystemPromptLen)}
	}
	return nil
}

// SplitTools reads a comma- or newline-separated list of tool rules, where
// commas inside parentheses belong to the rule.
func SplitTools(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case (r == ',' || r == '\n') && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	out = append(out, strings.TrimSpace(s[start:]))
	var clean []string
	for _, t := range out {
		if t != "" {
			clean = append(clean, t)
		}
	}
	return clean
}

// Args is the CLI's command line for prompt, continuing session resume
// when it is set. Every value is its own argument: nothing is parsed by a
// shell.
func (o Options) Args(prompt, resume string) []string {
	args := []string{"claude", "-p", "--output-format", "stream-json", "--verbose"}
	if resume != "" {
		args = append(args, "--resume", resume)
	}
	if o.Model != "" {
		args = append(args, "--model", o.Model)
	}
	if o.MaxTurns > 0 {
		args = append(args, "--max-turns", strconv.Itoa(o.MaxTurns))
	}
	if o.PermissionMode != "" {
		args = append(args, "--permission-mode", o.PermissionMode)
	}
	// One argument per list, comma-separated: a variadic flag would
	// otherwise swallow what follows it.
	if len(o.AllowedTools) > 0 {
		args = append(args, "--allowedTools", strings.Join(o.AllowedTools, ","))
	}
	if len(o.DisallowedTools) > 0 {
		args = append(args, "--disallowedTools", strings.Join(o.DisallowedTools, ","))
	}
	if o.AppendSystemPrompt != "" {
		args = append(args, "--append-system-prompt", o.AppendSystemPrompt)
	}
	// Last, after "--", so a prompt starting with "-" is not an option.
	return append(args, "--", prompt)
}

func (o Options) encode() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// DecodeOptions reads options as stored with a task.
func DecodeOptions(s string) Options {
	var o Options
	_ = json.Unmarshal([]byte(s), &o)
	return o
}
