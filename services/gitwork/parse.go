package gitwork

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// splitZ splits NUL-terminated -z output into fields. A last field without
// its NUL is output cut short by the output bound, so it is dropped
// rather than taken for a whole (but wrong) path.
func splitZ(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// parseStatus reads `git status --porcelain=v2 --branch -z`: "# branch.*"
// headers first, then one entry per changed or untracked path.
func parseStatus(b []byte) (Repo, error) {
	repo := Repo{IsRepo: true}
	var sawOID, sawHead bool
	for _, f := range splitZ(b) {
		if !strings.HasPrefix(f, "# ") {
			// Entries follow the headers; fields after the first entry
			// may be paths (a rename's origin), never headers.
			repo.Dirty = true
			break
		}
		key, val, _ := strings.Cut(f[2:], " ")
		switch key {
		case "branch.oid":
			sawOID = true
			if val != "(initial)" {
				repo.Head = val
			}
		case "branch.head":
			sawHead = true
			if val != "(detached)" {
				repo.Branch = val
			}
		}
	}
	if !sawOID || !sawHead {
		return Repo{}, fmt.Errorf("git status: no branch headers in %q", bounded(b))
	}
	return repo, nil
}

// statusNames maps git's status letters to the words the app shows.
var statusNames = map[byte]string{
	'A': "added",
	'M': "modified",
	'D': "deleted",
	'R': "renamed",
	'C': "copied",
	'T': "type-changed",
	'U': "unmerged",
	'X': "unknown",
}

// parseNameStatus reads `git diff --name-status -z`: a status field
// ("M", "R087", ...) followed by the path, or for renames and copies by
// the old path and the new one, every field ended by NUL. Paths are raw:
// spaces, tabs, newlines and any bytes appear as they are.
func parseNameStatus(b []byte) ([]FileChange, error) {
	fields := splitZ(b)
	var files []FileChange
	for i := 0; i < len(fields); {
		st := fields[i]
		if st == "" {
			return nil, fmt.Errorf("git diff --name-status: empty status at field %d", i)
		}
		name, ok := statusNames[st[0]]
		if !ok {
			return nil, fmt.Errorf("git diff --name-status: unknown status %q", st)
		}
		paths := 1
		if st[0] == 'R' || st[0] == 'C' {
			paths = 2
		}
		if i+paths >= len(fields) {
			break // cut short by the output bound
		}
		fc := FileChange{Status: name, Path: fields[i+1]}
		if paths == 2 {
			fc.OldPath, fc.Path = fields[i+1], fields[i+2]
		}
		files = append(files, fc)
		i += 1 + paths
	}
	return files, nil
}

// lineCounts is one file of `git diff --numstat -z`.
type lineCounts struct {
	path                 string // the new path of a rename
	additions, deletions int
	binary               bool
}

// parseNumstat reads `git diff --numstat -z`: "added<TAB>deleted<TAB>path"
// NUL-ended, or for a rename or copy "added<TAB>deleted<TAB>" NUL, the old
// path NUL, the new path NUL. Binary files count "-" for both.
func parseNumstat(b []byte) ([]lineCounts, error) {
	fields := splitZ(b)
	var out []lineCounts
	for i := 0; i < len(fields); {
		add, rest, ok1 := strings.Cut(fields[i], "\t")
		del, path, ok2 := strings.Cut(rest, "\t")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("git diff --numstat: malformed record %q", bounded([]byte(fields[i])))
		}
		next := i + 1
		if path == "" {
			// A rename: the paths follow in fields of their own.
			if i+2 >= len(fields) {
				break // cut short by the output bound
			}
			path = fields[i+2]
			next = i + 3
		}
		lc := lineCounts{path: path}
		if add == "-" && del == "-" {
			lc.binary = true
		} else {
			var err1, err2 error
			lc.additions, err1 = strconv.Atoi(add)
			lc.deletions, err2 = strconv.Atoi(del)
			if err1 != nil || err2 != nil || lc.additions < 0 || lc.deletions < 0 {
				return nil, fmt.Errorf("git diff --numstat: bad counts %q %q", add, del)
			}
		}
		out = append(out, lc)
		i = next
	}
	return out, nil
}

// joinCounts puts the line counts onto the files. Both listings come from
// the same diff options, so a file's counts are under its (new) path;
// a path is only listed once per diff, but equal paths are still matched
// in order rather than assumed unique.
func joinCounts(files []FileChange, counts []lineCounts) []FileChange {
	byPath := make(map[string][]lineCounts, len(counts))
	for _, c := range counts {
		byPath[c.path] = append(byPath[c.path], c)
	}
	for i := range files {
		q := byPath[files[i].Path]
		if len(q) == 0 {
			continue // the counts were cut short
		}
		c := q[0]
		byPath[files[i].Path] = q[1:]
		files[i].Additions, files[i].Deletions, files[i].Binary = c.additions, c.deletions, c.binary
	}
	return files
}

// bounded quotes at most a little of some output in an error.
func bounded(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
