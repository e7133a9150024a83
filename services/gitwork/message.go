package gitwork

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Commit message shape, after git's conventions: a subject short enough
// for one-line logs, a body wrapped for 80-column terminals (with room for
// the indent git log adds), a trailer tools can query with
// `git log --format=%(trailers:key=AICode-Task)`.
const (
	subjectMax = 72
	wrapAt     = 72
	bodyMax    = 2000
	// TrailerKey names the task a commit was made for.
	TrailerKey = "AICode-Task"
)

// CommitMessage writes the message of a task's commit from its prompt: the
// prompt's first sentence (or line) as the subject, the prompt wrapped as
// the body (left out when it says no more than the subject), and a trailer
// naming the task.
func CommitMessage(prompt string, taskID string) string {
	prompt = cleanText(prompt)
	subject := subjectOf(prompt)
	if subject == "" {
		subject = "AICode task"
		if id := oneLine(taskID); id != "" {
			subject += " " + id
		}
	}
	var b strings.Builder
	b.WriteString(subject)
	// A one-sentence prompt already is the subject: no body repeating it.
	if body := wrapBody(cutRunes(prompt, bodyMax)); body != "" && strings.TrimRight(collapse(prompt), ".") != subject {
		b.WriteString("\n\n")
		b.WriteString(body)
	}
	b.WriteString("\n")
	if id := oneLine(taskID); id != "" {
		b.WriteString("\n" + TrailerKey + ": " + id + "\n")
	}
	return b.String()
}

// cleanText normalises line ends, turns tabs into spaces and drops other
// control characters (an escape sequence has no place in a commit), and
// trims trailing spaces off every line.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n ")
}

// collapse joins all whitespace runs into single spaces.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// oneLine makes a value safe for a single header-like line.
func oneLine(s string) string { return collapse(cleanText(s)) }

// subjectOf is the first sentence of the first non-blank line, whitespace
// collapsed, without a closing period, at most subjectMax characters.
func subjectOf(prompt string) string {
	first := ""
	for _, l := range strings.Split(prompt, "\n") {
		if strings.TrimSpace(l) != "" {
			// A Markdown heading's marks are not part of the words.
			first = collapse(strings.TrimLeft(strings.TrimSpace(l), "#"))
			break
		}
	}
	// A sentence ends at ". ", "! " or "? "; "v1.2" and "e.g.x" do not.
	for i := 0; i+1 < len(first); i++ {
		if strings.ContainsRune(".!?", rune(first[i])) && first[i+1] == ' ' {
			first = first[:i+1]
			break
		}
	}
	first = strings.TrimRight(first, ".")
	return cutWords(first, subjectMax)
}

// cutWords shortens s to at most max characters, "…" included, ending at
// a word boundary when there is one in the second half.
func cutWords(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	cut := max - 1     // room for the ellipsis
	if r[cut] != ' ' { // else the cut falls between two words already
		for i := cut - 1; i >= max/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
	}
	return strings.TrimRight(string(r[:cut]), " ,;:-") + "…"
}

// cutRunes bounds the body's source text at a word boundary.
func cutRunes(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)[:max]
	cut := len(r)
	for i := len(r) - 1; i >= max*3/4; i-- {
		if unicode.IsSpace(r[i]) {
			cut = i
			break
		}
	}
	return strings.TrimRightFunc(string(r[:cut]), unicode.IsSpace) + " …"
}

// wrapBody wraps each line of text at wrapAt characters on spaces, keeping
// the prompt's own line breaks (lists, code) and at most one blank line in
// a row. A word longer than a line stays whole.
func wrapBody(text string) string {
	var out []string
	blank := false
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		// Keep the line's indent (list items, code) on its first part and
		// on its continuations.
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		cur := indent
		for _, w := range strings.Fields(trimmed) {
			switch {
			case cur == indent:
				cur += w
			case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(w) > wrapAt:
				out = append(out, cur)
				cur = indent + w
			default:
				cur += " " + w
			}
		}
		out = append(out, cur)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}
