// Package gitwork runs the git steps of a task's lifecycle in a workspace
// container: look at the repository, start the task's branch, commit what
// the task changed and describe the changes.
//
// Every call runs the container's own git against Dir with settings that
// keep the repository's content from running anything or changing the
// output format: no hooks, no fsmonitor, no external diff or textconv
// drivers, no signing, no pager, no background gc. Nothing is ever forced
// and nothing is pushed.
package gitwork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// EmptyTree is git's well-known id of the empty tree: the base of a branch
// started before the repository had any commit.
const EmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// Errors callers match with errors.Is.
var (
	ErrNotRepo      = errors.New("the workspace is not a git repository")
	ErrBadBranch    = errors.New("invalid branch name")
	ErrBranchExists = errors.New("branch already exists")
)

// Error is a git command that ran and failed.
type Error struct {
	Op       string // what gitwork was doing, e.g. "commit"
	ExitCode int
	Stderr   string // trimmed and bounded
}

func (e *Error) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("git %s: exit status %d", e.Op, e.ExitCode)
	}
	return fmt.Sprintf("git %s: %s (exit status %d)", e.Op, e.Stderr, e.ExitCode)
}

// Output bounds. Metadata commands print little; a bound still keeps a
// surprise (say, a repository with a million untracked files) from
// filling memory.
const (
	smallOut  = 64 << 10
	stderrMax = 2000 // of git's stderr quoted in an error
	filesMax  = 16 << 20
)

// gitArgs is the git command line for one subcommand. Settings given with
// -c beat the repository's own config.
func gitArgs(args ...string) []string {
	base := []string{
		"git", "--no-pager", "-C", Dir,
		// The workspace directory may belong to another uid than the
		// workspace user (a host directory bind-mounted in); it is the
		// user's project either way.
		"-c", "safe.directory=" + Dir,
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "commit.gpgsign=false",
		"-c", "gc.auto=0",
		"-c", "maintenance.auto=false",
		"-c", "color.ui=false",
		"-c", "core.quotePath=false",
	}
	return append(base, args...)
}

// result is what a git command left behind.
type result struct {
	stdout, stderr []byte
	code           int
}

// git runs a git subcommand; err is only a failure to run it at all.
func git(ctx context.Context, r Runner, stdin io.Reader, maxOut int, args ...string) (result, error) {
	stdout, stderr, code, err := r.Run(ctx, gitArgs(args...), stdin, maxOut)
	if err != nil {
		return result{}, fmt.Errorf("run git %s: %w", args[0], err)
	}
	return result{stdout: stdout, stderr: stderr, code: code}, nil
}

// gitOK runs a git subcommand that must succeed.
func gitOK(ctx context.Context, r Runner, op string, stdin io.Reader, maxOut int, args ...string) ([]byte, error) {
	res, err := git(ctx, r, stdin, maxOut, args...)
	if err != nil {
		return nil, err
	}
	if res.code != 0 {
		return nil, failure(op, res)
	}
	return res.stdout, nil
}

// failure turns a failed command into an error, recognising the one
// condition callers act upon.
func failure(op string, res result) error {
	if isNotRepo(res) {
		return fmt.Errorf("git %s: %w", op, ErrNotRepo)
	}
	return &Error{Op: op, ExitCode: res.code, Stderr: quoteStderr(res.stderr)}
}

// isNotRepo recognises git's answer outside a repository. gitEnv makes
// sure the message is the English one.
func isNotRepo(res result) bool {
	return res.code == 128 && bytes.Contains(res.stderr, []byte("not a git repository"))
}

// quoteStderr makes git's stderr fit into an error message: trimmed,
// bounded, valid UTF-8, and the hint lines (advice) dropped.
func quoteStderr(b []byte) string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "hint:") {
			continue
		}
		lines = append(lines, l)
	}
	s := strings.ToValidUTF8(strings.Join(lines, "; "), "?")
	if len(s) > stderrMax {
		cut := stderrMax
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Repo is what Detect found in the workspace.
type Repo struct {
	IsRepo bool
	// Head is the full commit id HEAD points at; "" on an unborn branch
	// (a repository without commits yet).
	Head string
	// Branch is the checked-out branch's short name; "" when detached.
	Branch string
	// Dirty: something is staged, modified or untracked (not ignored).
	Dirty bool
}

// Detect looks at the workspace. A workspace that is not a repository is
// not an error: IsRepo is false.
func Detect(ctx context.Context, r Runner) (Repo, error) {
	// One command says it all. --no-optional-locks: looking must not take
	// the index lock a running task's own git may want at the same time.
	res, err := git(ctx, r, nil, smallOut,
		"--no-optional-locks", "status", "--porcelain=v2", "--branch", "-z",
		"--untracked-files=normal", "--ignore-submodules=none")
	if err != nil {
		return Repo{}, err
	}
	if isNotRepo(res) {
		return Repo{}, nil
	}
	if res.code != 0 {
		return Repo{}, failure("status", res)
	}
	return parseStatus(res.stdout)
}

// Start is a task's branch as StartBranch made it.
type Start struct {
	// Base is the commit the branch started from; "" when the repository
	// had no commit yet (diff against EmptyTree then).
	Base   string
	Branch string
}

// StartBranch creates branch name at the current HEAD and checks it out.
// Uncommitted changes come along. On an unborn branch (no commit yet) the
// new name simply replaces the unborn one.
func StartBranch(ctx context.Context, r Runner, name string) (Start, error) {
	if err := CheckBranchName(name); err != nil {
		return Start{}, err
	}
	repo, err := Detect(ctx, r)
	if err != nil {
		return Start{}, err
	}
	if !repo.IsRepo {
		return Start{}, fmt.Errorf("start branch: %w", ErrNotRepo)
	}
	// Asked first so the answer does not hang on the wording of git's
	// message; switch -c refuses an existing branch anyway, which covers
	// one created in between.
	res, err := git(ctx, r, nil, smallOut, "show-ref", "--verify", "--quiet", "refs/heads/"+name)
	if err != nil {
		return Start{}, err
	}
	switch res.code {
	case 0:
		return Start{}, fmt.Errorf("%w: %s", ErrBranchExists, name)
	case 1: // absent
	default:
		return Start{}, failure("show-ref", res)
	}
	res, err = git(ctx, r, nil, smallOut, "switch", "--no-guess", "-c", name)
	if err != nil {
		return Start{}, err
	}
	if res.code != 0 {
		msg := string(res.stderr)
		switch {
		case strings.Contains(msg, "already exists"):
			// Created in the meantime.
			return Start{}, fmt.Errorf("%w: %s", ErrBranchExists, name)
		case strings.Contains(msg, "cannot lock ref") && strings.Contains(msg, "exists"):
			// "a/b" next to an existing "a" (or the other way round):
			// refs are files, so the names collide.
			return Start{}, fmt.Errorf("%w: %s collides with an existing branch: %s", ErrBranchExists, name, quoteStderr(res.stderr))
		case strings.Contains(msg, "not a valid branch name"):
			return Start{}, fmt.Errorf("%w: %q", ErrBadBranch, name)
		}
		return Start{}, failure("switch", res)
	}
	return Start{Base: repo.Head, Branch: name}, nil
}

// CheckBranchName applies git's rules for branch names (git
// check-ref-format --branch) without asking git, plus a length bound; the
// error wraps ErrBadBranch and says which rule was broken.
func CheckBranchName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrBadBranch, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 200:
		// Each component becomes a file name (255 bytes at most), and
		// the whole shows up in titles and URLs.
		return bad("longer than 200 bytes")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case name == "@":
		return bad(`"@" alone is not allowed`)
	case name == "HEAD":
		return bad("HEAD is not a branch name")
	case strings.HasPrefix(name, "-"):
		return bad(`cannot begin with "-"`)
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad(`cannot begin or end with "/"`)
	case strings.HasSuffix(name, "."):
		return bad(`cannot end with "."`)
	case strings.Contains(name, ".."):
		return bad(`cannot contain ".."`)
	case strings.Contains(name, "//"):
		return bad(`cannot contain "//"`)
	case strings.Contains(name, "@{"):
		return bad(`cannot contain "@{"`)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return bad("cannot contain control characters")
		}
		if strings.ContainsRune(" ~^:?*[\\", c) {
			return bad(fmt.Sprintf("cannot contain %q", c))
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return bad(`no part can begin with "."`)
		}
		if strings.HasSuffix(part, ".lock") {
			return bad(`no part can end with ".lock"`)
		}
	}
	return nil
}

// Commit stages everything (git add -A: new, changed and deleted files,
// minus ignored ones) and commits it as authorName <authorEmail>, who is
// also the committer. With nothing to commit it returns the current HEAD
// ("" when unborn) and committed false.
func Commit(ctx context.Context, r Runner, message, authorName, authorEmail string) (sha string, committed bool, err error) {
	if strings.TrimSpace(message) == "" {
		return "", false, errors.New("commit: empty message")
	}
	if err := checkIdent("author name", authorName); err != nil {
		return "", false, err
	}
	if err := checkIdent("author email", authorEmail); err != nil {
		return "", false, err
	}
	if _, err := gitOK(ctx, r, "add", nil, smallOut, "add", "-A"); err != nil {
		return "", false, err
	}
	res, err := git(ctx, r, nil, smallOut, "diff", "--cached", "--quiet", "--no-ext-diff", "--ignore-submodules=none")
	if err != nil {
		return "", false, err
	}
	switch res.code {
	case 0:
		head, err := headCommit(ctx, r)
		return head, false, err
	case 1: // something is staged
	default:
		return "", false, failure("diff --cached", res)
	}
	// Identity through config rather than --author, so the committer is
	// the same person; author.* and committer.* too, since a repository's
	// own author.name would otherwise win over user.name.
	ident := []string{
		"-c", "user.name=" + authorName, "-c", "user.email=" + authorEmail,
		"-c", "author.name=" + authorName, "-c", "author.email=" + authorEmail,
		"-c", "committer.name=" + authorName, "-c", "committer.email=" + authorEmail,
	}
	// The message comes on stdin, verbatim but for whitespace: the
	// repository's commit.cleanup=strip would eat a prompt's "# Heading"
	// lines, and -F skips the editor and the template.
	args := append(ident, "commit", "--quiet", "--no-verify", "--no-gpg-sign", "--cleanup=whitespace", "-F", "-")
	if _, err := gitOK(ctx, r, "commit", strings.NewReader(message), smallOut, args...); err != nil {
		return "", false, err
	}
	head, err := headCommit(ctx, r)
	if err != nil {
		return "", false, err
	}
	if head == "" {
		return "", false, errors.New("commit: HEAD has no commit after committing")
	}
	return head, true, nil
}

// checkIdent refuses what git would silently mangle in an identity:
// angle brackets and line breaks are cut out of the name or address.
func checkIdent(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("commit: empty %s", what)
	}
	if strings.ContainsAny(v, "<>\n\r\x00") {
		return fmt.Errorf("commit: %s %q contains <, > or a line break", what, v)
	}
	return nil
}

// headCommit is HEAD's commit id, "" on an unborn branch.
func headCommit(ctx context.Context, r Runner) (string, error) {
	res, err := git(ctx, r, nil, smallOut, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	if err != nil {
		return "", err
	}
	switch {
	case res.code == 0:
		return strings.TrimSpace(string(res.stdout)), nil
	case res.code == 1 && len(bytes.TrimSpace(res.stderr)) == 0:
		return "", nil
	default:
		return "", failure("rev-parse HEAD", res)
	}
}

// FileChange is one file that differs between two commits.
type FileChange struct {
	Path string
	// OldPath is where a renamed or copied file came from.
	OldPath string
	// Status: added, modified, deleted, renamed, copied, type-changed (a
	// file became a symlink or the other way round), or unmerged/unknown.
	Status string
	// Lines added and deleted; 0 for binary files.
	Additions, Deletions int
	Binary               bool
}

// ChangeSet is what differs between two commits. (Not named Changes: that
// is the function producing it.)
type ChangeSet struct {
	Files []FileChange
	// FilesTruncated: the file list was too long to read whole and holds
	// the first files only.
	FilesTruncated bool
	// Diff is the unified diff, cut at a line end to at most maxDiff bytes
	// when it was longer (DiffTruncated).
	Diff          []byte
	DiffTruncated bool
}

// Changes describes what changed from base to head: the files, and the
// unified diff up to maxDiff bytes (none when maxDiff <= 0). base "" means
// the empty tree (a branch started before the first commit); head ""
// means HEAD. Renames are detected (-M) in both.
func Changes(ctx context.Context, r Runner, base, head string, maxDiff int) (ChangeSet, error) {
	if base == "" {
		base = EmptyTree
	}
	if head == "" {
		head = "HEAD"
	}
	// Resolve both first, through stdin so no revision can pass for an
	// option. It also makes sure this is a repository: outside one, git
	// diff quietly turns into diff --no-index and compares files.
	trees, err := resolveTrees(ctx, r, base, head)
	if err != nil {
		return ChangeSet{}, err
	}
	// Both listings and the patch see the same options, so their rename
	// pairing agrees.
	diff := func(format ...string) []string {
		args := []string{"diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M"}
		args = append(args, format...)
		return append(args, trees[0], trees[1], "--")
	}
	var out ChangeSet
	names, err := gitOK(ctx, r, "diff --name-status", nil, filesMax+1, diff("--name-status", "-z")...)
	if err != nil {
		return ChangeSet{}, err
	}
	stats, err := gitOK(ctx, r, "diff --numstat", nil, filesMax+1, diff("--numstat", "-z")...)
	if err != nil {
		return ChangeSet{}, err
	}
	if len(names) > filesMax {
		out.FilesTruncated = true
		names = names[:filesMax]
	}
	if len(stats) > filesMax {
		stats = stats[:filesMax]
	}
	files, err := parseNameStatus(names)
	if err != nil {
		return ChangeSet{}, err
	}
	counts, err := parseNumstat(stats)
	if err != nil {
		return ChangeSet{}, err
	}
	out.Files = joinCounts(files, counts)
	if maxDiff <= 0 {
		return out, nil
	}
	patch, err := gitOK(ctx, r, "diff", nil, maxDiff+1,
		diff("--patch", "--src-prefix=a/", "--dst-prefix=b/", "--no-relative")...)
	if err != nil {
		return ChangeSet{}, err
	}
	out.Diff, out.DiffTruncated = cutDiff(patch, maxDiff)
	return out, nil
}

// resolveTrees turns revisions into the ids of their trees (a diff of two
// commits is the diff of their trees).
func resolveTrees(ctx context.Context, r Runner, revs ...string) ([]string, error) {
	var in strings.Builder
	for _, rev := range revs {
		if strings.ContainsAny(rev, "\x00\n\r") {
			return nil, fmt.Errorf("changes: bad revision %q", rev)
		}
		in.WriteString(rev + "^{tree}\n")
	}
	out, err := gitOK(ctx, r, "cat-file", strings.NewReader(in.String()), smallOut,
		"cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(revs) {
		return nil, fmt.Errorf("changes: git cat-file answered %q", bounded(out))
	}
	trees := make([]string, len(revs))
	for i, l := range lines {
		id, typ, _ := strings.Cut(l, " ")
		if typ != "tree" {
			return nil, fmt.Errorf("changes: unknown revision %q", revs[i])
		}
		trees[i] = id
	}
	return trees, nil
}

// cutDiff bounds a patch of which one byte more than max was asked for:
// more than max means it went on. The cut falls after the last whole line
// that fits, so the result is still a readable (if partial) diff.
func cutDiff(patch []byte, max int) ([]byte, bool) {
	if len(patch) <= max {
		return patch, false
	}
	patch = patch[:max]
	if i := bytes.LastIndexByte(patch, '\n'); i >= 0 {
		patch = patch[:i+1]
	}
	return patch, true
}
