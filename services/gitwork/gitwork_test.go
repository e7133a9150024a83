package gitwork_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"aicode/services/engine"
	"aicode/services/gitwork"
	"aicode/testutil"
)

func TestCheckBranchName(t *testing.T) {
	for _, ok := range goodBranches {
		if err := gitwork.CheckBranchName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range badBranches {
		if err := gitwork.CheckBranchName(bad); !errors.Is(err, gitwork.ErrBadBranch) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}

var goodBranches = []string{
	"main", "aicode/task-12", "feature/ü-ñ", "a.b", "a/b.c/d", "x@y", "@a", "a-", "UPPER_case", "with'quote",
	"a.lockx", "lock.a", "{braces}", "a@b{c", strings.Repeat("x", 200),
}

var badBranches = []string{
	"", "-x", "@", "HEAD", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[b", `a\b`, "a@{b", "a/", "/a", "a//b",
	"a.", ".a", "a/.b", "a.lock", "a/b.lock/c", "a\tb", "a\nb", "a\x7fb", "a\x01", "\xff", strings.Repeat("x", 201),
}

// ---- commit messages ----

func TestCommitMessage(t *testing.T) {
	t.Run("subject, body and trailer", func(t *testing.T) {
		prompt := "Fix the login bug. Users  with\tlong names cannot sign in; add a test too.\n\n# Details\n  - keep the API\n  - no new deps\r\n"
		got := gitwork.CommitMessage(prompt, "t-123")
		want := "Fix the login bug\n\n" +
			"Fix the login bug. Users with long names cannot sign in; add a test too.\n\n" +
			"# Details\n  - keep the API\n  - no new deps\n\n" +
			"AICode-Task: t-123\n"
		if got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("short prompt is the subject only", func(t *testing.T) {
		if got := gitwork.CommitMessage("  Add a README.  ", "7"); got != "Add a README\n\nAICode-Task: 7\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("long first line cut on a word", func(t *testing.T) {
		prompt := strings.Repeat("refactor everything ", 10) + "now"
		msg := gitwork.CommitMessage(prompt, "x")
		subject, rest, _ := strings.Cut(msg, "\n")
		if n := utf8.RuneCountInString(subject); n > 72 || n < 50 {
			t.Fatalf("subject of %d characters: %q", n, subject)
		}
		kept := strings.TrimSuffix(subject, "…")
		if kept == subject || !strings.HasPrefix(prompt, kept+" ") {
			t.Fatalf("subject not cut on a word: %q", subject)
		}
		if !strings.HasPrefix(rest, "\n") || !strings.Contains(msg, "\nnow\n") && !strings.Contains(msg, " now\n") {
			t.Fatalf("body lacks the whole prompt: %q", msg)
		}
		for _, l := range strings.Split(msg, "\n") {
			if utf8.RuneCountInString(l) > 72 {
				t.Errorf("line over 72: %q", l)
			}
		}
	})
	t.Run("one long word", func(t *testing.T) {
		word := strings.Repeat("ä", 100)
		subject, _, _ := strings.Cut(gitwork.CommitMessage(word, "x"), "\n")
		if subject != strings.Repeat("ä", 71)+"…" {
			t.Fatalf("subject %q", subject)
		}
	})
	t.Run("long prompt bounded", func(t *testing.T) {
		prompt := "Do it.\n" + strings.Repeat("word ", 2000)
		msg := gitwork.CommitMessage(prompt, "x")
		if n := utf8.RuneCountInString(msg); n > 2200 {
			t.Fatalf("message of %d characters", n)
		}
		if !strings.Contains(msg, "…\n\nAICode-Task: x\n") {
			t.Fatalf("no ellipsis before the trailer: %q", msg[len(msg)-60:])
		}
	})
	t.Run("sentence marks", func(t *testing.T) {
		for prompt, want := range map[string]string{
			"Bump to v1.2.3 and rebuild":      "Bump to v1.2.3 and rebuild",
			"Why does this fail? Please look": "Why does this fail?",
			"Stop!Now":                        "Stop!Now",
			"\n\n   \n## Heading line\nbody":  "Heading line",
			"Ends with dots...":               "Ends with dots",
			"\x1b[31mred\x1b[0m text":         "[31mred[0m text",
			"":                                "AICode task x",
			"   \n\t\n":                       "AICode task x",
		} {
			subject, _, _ := strings.Cut(gitwork.CommitMessage(prompt, "x"), "\n")
			if subject != want {
				t.Errorf("%q: subject %q, want %q", prompt, subject, want)
			}
		}
	})
	t.Run("task id kept on one line", func(t *testing.T) {
		msg := gitwork.CommitMessage("Do it", "a\nb ")
		if !strings.HasSuffix(msg, "\n\nAICode-Task: a b\n") {
			t.Fatalf("got %q", msg)
		}
		if msg := gitwork.CommitMessage("Do it", ""); msg != "Do it\n" {
			t.Fatalf("no id: %q", msg)
		}
	})
}

// ---- against a real workspace container ----

const testUser = "1000:1000"

// workspace is a running container of the workspace image for one test.
// Its /workspace is the image's own directory (owned by dev), living in
// the container's layer: it goes away with the container, and nothing the
// container's user writes ends up on the host.
type workspace struct {
	t   *testing.T
	eng *engine.Engine
	id  string
	r   gitwork.Runner
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	eng := testutil.Engine(t)
	image := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE")
	if image == "" {
		image = "aicode-workspace:latest"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if ok, err := eng.ImageExists(ctx, image); err != nil || !ok {
		t.Fatalf("image %s missing (%v); build it with `sudo make workspace-image-offline` (scripts/test-env.sh does)", image, err)
	}
	id := testutil.RunContainer(t, eng, engine.ContainerSpec{
		Image:  image,
		User:   testUser,
		Labels: map[string]string{"io.aicode.test": "gitwork"},
		// The spec always has a bind mount; this one is not used.
		BindSource:  t.TempDir(),
		BindTarget:  "/mnt/unused",
		MemoryBytes: 256 << 20,
		PidsLimit:   128,
	})
	return &workspace{t: t, eng: eng, id: id, r: gitwork.EngineRunner(eng, id, testUser)}
}

// shAs runs a bash script in /workspace as user and fails the test unless it
// exits 0. Setup commits get a fixed identity from the environment.
func (w *workspace) shAs(user, script string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := w.eng.Capture(ctx, w.id, engine.ExecSpec{
		Cmd:     []string{"bash", "-euo", "pipefail", "-c", script},
		User:    user,
		WorkDir: "/workspace",
		Env: []string{"HOME=/home/dev", "LC_ALL=C.UTF-8",
			"GIT_AUTHOR_NAME=Setup", "GIT_AUTHOR_EMAIL=setup@example.test",
			"GIT_COMMITTER_NAME=Setup", "GIT_COMMITTER_EMAIL=setup@example.test"},
	}, nil, 1<<20)
	if err != nil {
		w.t.Fatalf("run %q: %v", script, err)
	}
	if res.ExitCode != 0 {
		w.t.Fatalf("%q exited %d: %s%s", script, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

func (w *workspace) sh(script string) string {
	w.t.Helper()
	return w.shAs(testUser, script)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// repoWithHistory makes a repository on main with two commits and returns
// HEAD.
func (w *workspace) repoWithHistory() string {
	w.t.Helper()
	return strings.TrimSpace(w.sh(`
git init -q -b main
printf 'one\ntwo\nthree\n' > a.txt
printf 'target\n' > b.txt
seq 1 50 > 'old name.txt'
mkdir dir && echo bye > dir/to-delete.txt
printf '\x00\x01\x02binary' > bin.dat
git add -A && git commit -q -m first
echo four >> a.txt && git commit -q -am second
git rev-parse HEAD`))
}

func TestNotARepo(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	w.sh("echo hello > file.txt")
	repo, err := gitwork.Detect(ctx, w.r)
	if err != nil || repo != (gitwork.Repo{}) {
		t.Fatalf("Detect: %+v, %v", repo, err)
	}
	if _, err := gitwork.StartBranch(ctx, w.r, "task"); !errors.Is(err, gitwork.ErrNotRepo) {
		t.Errorf("StartBranch: %v", err)
	}
	if _, _, err := gitwork.Commit(ctx, w.r, "msg", "A", "a@example.test"); !errors.Is(err, gitwork.ErrNotRepo) {
		t.Errorf("Commit: %v", err)
	}
	if _, err := gitwork.Changes(ctx, w.r, "", "HEAD", 1000); !errors.Is(err, gitwork.ErrNotRepo) {
		t.Errorf("Changes: %v", err)
	}
}

func TestUnbornRepo(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	w.sh("git init -q -b main")
	repo, err := gitwork.Detect(ctx, w.r)
	if err != nil || repo != (gitwork.Repo{IsRepo: true, Branch: "main"}) {
		t.Fatalf("Detect: %+v, %v", repo, err)
	}
	w.sh("echo hi > 'first file.txt'")
	if repo, _ := gitwork.Detect(ctx, w.r); !repo.Dirty {
		t.Fatalf("untracked file not dirty: %+v", repo)
	}

	start, err := gitwork.StartBranch(ctx, w.r, "aicode/task-1")
	if err != nil || start != (gitwork.Start{Branch: "aicode/task-1"}) {
		t.Fatalf("StartBranch: %+v, %v", start, err)
	}
	if repo, _ := gitwork.Detect(ctx, w.r); repo != (gitwork.Repo{IsRepo: true, Branch: "aicode/task-1", Dirty: true}) {
		t.Fatalf("after start: %+v", repo)
	}
	sha, committed, err := gitwork.Commit(ctx, w.r, "First commit\n", "Ada", "ada@example.test")
	if err != nil || !committed || !shaRE.MatchString(sha) {
		t.Fatalf("Commit: %q %v %v", sha, committed, err)
	}
	if repo, _ := gitwork.Detect(ctx, w.r); repo != (gitwork.Repo{IsRepo: true, Head: sha, Branch: "aicode/task-1"}) {
		t.Fatalf("after commit: %+v", repo)
	}
	// The unborn main was renamed, not left behind.
	if out := w.sh("git branch --format='%(refname:short)'"); out != "aicode/task-1\n" {
		t.Errorf("branches: %q", out)
	}
	ch, err := gitwork.Changes(ctx, w.r, start.Base, sha, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []gitwork.FileChange{{Path: "first file.txt", Status: "added", Additions: 1}}
	if !reflect.DeepEqual(ch.Files, want) || !bytes.Contains(ch.Diff, []byte("+++ b/first file.txt")) || ch.DiffTruncated {
		t.Fatalf("changes: %+v\n%s", ch.Files, ch.Diff)
	}
	again, committed, err := gitwork.Commit(ctx, w.r, "Nothing\n", "Ada", "ada@example.test")
	if err != nil || committed || again != sha {
		t.Fatalf("second commit: %q %v %v", again, committed, err)
	}
}

func TestUnbornNothingToCommit(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	w.sh("git init -q -b main")
	sha, committed, err := gitwork.Commit(ctx, w.r, "msg", "Ada", "ada@example.test")
	if err != nil || committed || sha != "" {
		t.Fatalf("Commit: %q %v %v", sha, committed, err)
	}
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	w.repoWithHistory()
	// The repository asks for things gitwork must not do or honour: hooks
	// (two ways), signing, a cleanup that eats "#" lines, another author.
	w.sh(`
mkdir -p .githooks
for h in .git/hooks/pre-commit .git/hooks/commit-msg .githooks/pre-commit; do
  printf '#!/bin/sh\ntouch /tmp/hook-ran\nexit 1\n' > "$h"; chmod +x "$h"
done
git add .githooks && git commit -q --no-verify -m hooks
git config core.hooksPath .githooks
git config commit.gpgsign true
git config commit.cleanup strip
git config author.name Mallory
git config user.email mallory@example.test`)
	base := strings.TrimSpace(w.sh("git rev-parse HEAD"))

	repo, err := gitwork.Detect(ctx, w.r)
	if err != nil || repo != (gitwork.Repo{IsRepo: true, Head: base, Branch: "main"}) {
		t.Fatalf("Detect: %+v %v", repo, err)
	}
	start, err := gitwork.StartBranch(ctx, w.r, "aicode/task-42")
	if err != nil || start != (gitwork.Start{Base: base, Branch: "aicode/task-42"}) {
		t.Fatalf("StartBranch: %+v %v", start, err)
	}

	// What a task might do.
	w.sh(`
printf 'one\nTWO\nthree\nfour\nfive\n' > a.txt
rm b.txt && ln -s a.txt b.txt
git rm -q dir/to-delete.txt
mv 'old name.txt' 'new näme ✓.txt'
mkdir 'sp ace' && printf 'x\n' > "sp ace/ne
w.txt"
printf '\x00\x01\x02other' > bin.dat`)

	prompt := "Tidy the repo. Rename the list file.\n\n# Rules\nKeep a.txt sorted."
	msg := gitwork.CommitMessage(prompt, "42")
	sha, committed, err := gitwork.Commit(ctx, w.r, msg, "Ada Lovelace", "ada@example.test")
	if err != nil || !committed || !shaRE.MatchString(sha) {
		t.Fatalf("Commit: %q %v %v", sha, committed, err)
	}
	if out := w.sh("ls /tmp/hook-ran 2>/dev/null || echo none"); out != "none\n" {
		t.Errorf("a repository hook ran")
	}
	logged := w.sh(`git log -1 --format='%an <%ae>|%cn <%ce>|%G?|%P' && git log -1 --format=%B && git log -1 --format='%(trailers:key=AICode-Task,valueonly)'`)
	wantLog := fmt.Sprintf("Ada Lovelace <ada@example.test>|Ada Lovelace <ada@example.test>|N|%s\n%s\n42\n\n", base, msg)
	if logged != wantLog {
		t.Errorf("log:\n%q\nwant\n%q", logged, wantLog)
	}
	if repo, _ := gitwork.Detect(ctx, w.r); repo != (gitwork.Repo{IsRepo: true, Head: sha, Branch: "aicode/task-42"}) {
		t.Errorf("after commit: %+v", repo)
	}
	if out := w.sh("git rev-parse main"); strings.TrimSpace(out) != base {
		t.Errorf("main moved to %s", out)
	}

	ch, err := gitwork.Changes(ctx, w.r, start.Base, sha, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]gitwork.FileChange{
		"a.txt":             {Path: "a.txt", Status: "modified", Additions: 2, Deletions: 1},
		"b.txt":             {Path: "b.txt", Status: "type-changed", Additions: 1, Deletions: 1},
		"bin.dat":           {Path: "bin.dat", Status: "modified", Binary: true},
		"dir/to-delete.txt": {Path: "dir/to-delete.txt", Status: "deleted", Deletions: 1},
		"new näme ✓.txt":    {Path: "new näme ✓.txt", OldPath: "old name.txt", Status: "renamed"},
		"sp ace/ne\nw.txt":  {Path: "sp ace/ne\nw.txt", Status: "added", Additions: 1},
	}
	got := map[string]gitwork.FileChange{}
	for _, f := range ch.Files {
		got[f.Path] = f
	}
	if !reflect.DeepEqual(got, want) || len(ch.Files) != len(want) {
		t.Errorf("files:\n%+v\nwant\n%+v", ch.Files, want)
	}
	for _, frag := range []string{
		"diff --git a/a.txt b/a.txt\n", "-two\n+TWO\n", "rename from old name.txt\nrename to new näme ✓.txt\n",
		"deleted file mode 100644\n", "new file mode 120000\n", "Binary files a/bin.dat and b/bin.dat differ\n",
		`+++ "b/sp ace/ne\nw.txt"`,
	} {
		if !bytes.Contains(ch.Diff, []byte(frag)) {
			t.Errorf("diff lacks %q:\n%s", frag, ch.Diff)
		}
	}
	if ch.DiffTruncated || ch.FilesTruncated {
		t.Errorf("truncated: %v %v", ch.DiffTruncated, ch.FilesTruncated)
	}

	// head "" is HEAD; a bounded diff ends at a line end.
	small, err := gitwork.Changes(ctx, w.r, start.Base, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	if !small.DiffTruncated || len(small.Diff) > 200 || len(small.Diff) == 0 || !bytes.HasSuffix(small.Diff, []byte("\n")) || !bytes.HasPrefix(ch.Diff, small.Diff) {
		t.Errorf("bounded diff (%d bytes, truncated %v): %q", len(small.Diff), small.DiffTruncated, small.Diff)
	}
	if !reflect.DeepEqual(small.Files, ch.Files) {
		t.Errorf("files differ with head \"\"")
	}
	none, err := gitwork.Changes(ctx, w.r, start.Base, sha, 0)
	if err != nil || none.Diff != nil || len(none.Files) != len(want) {
		t.Errorf("maxDiff 0: %d files, %d diff bytes, %v", len(none.Files), len(none.Diff), err)
	}
	if _, err := gitwork.Changes(ctx, w.r, "--output=/tmp/x", sha, 100); err == nil {
		t.Error("option-like revision accepted")
	}
	if _, err := gitwork.Changes(ctx, w.r, "no-such-rev", sha, 100); err == nil || !strings.Contains(err.Error(), "no-such-rev") {
		t.Errorf("bad revision: %v", err)
	}

	// Nothing left to commit.
	again, committed, err := gitwork.Commit(ctx, w.r, msg, "Ada Lovelace", "ada@example.test")
	if err != nil || committed || again != sha {
		t.Errorf("empty commit: %q %v %v", again, committed, err)
	}
}

func TestDirtyTreeCarried(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	base := w.repoWithHistory()
	w.sh(`echo changed >> a.txt; echo staged > b.txt; git add b.txt; echo new > untracked.txt`)
	if repo, _ := gitwork.Detect(ctx, w.r); !repo.Dirty || repo.Head != base {
		t.Fatalf("before: %+v", repo)
	}
	start, err := gitwork.StartBranch(ctx, w.r, "task/dirty")
	if err != nil || start.Base != base {
		t.Fatalf("StartBranch: %+v %v", start, err)
	}
	if out := w.sh(`git status --porcelain=v1 | sort; git symbolic-ref --short HEAD`); out != " M a.txt\n?? untracked.txt\nM  b.txt\ntask/dirty\n" {
		t.Fatalf("status after start:\n%s", out)
	}
	sha, committed, err := gitwork.Commit(ctx, w.r, "Carry\n", "Ada", "ada@example.test")
	if err != nil || !committed {
		t.Fatalf("Commit: %v %v", committed, err)
	}
	ch, err := gitwork.Changes(ctx, w.r, base, sha, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range ch.Files {
		paths = append(paths, f.Status+" "+f.Path)
	}
	if strings.Join(paths, ",") != "modified a.txt,modified b.txt,added untracked.txt" {
		t.Errorf("changes: %v", paths)
	}
	if out := w.sh("git rev-parse main"); strings.TrimSpace(out) != base {
		t.Errorf("main moved: %s", out)
	}
}

func TestBranchRefused(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	w.repoWithHistory()
	w.sh("git branch taken && git branch feat")
	for _, name := range []string{"taken", "main", "feat/x"} {
		if _, err := gitwork.StartBranch(ctx, w.r, name); !errors.Is(err, gitwork.ErrBranchExists) {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"bad name", "-b", "x..y", "HEAD"} {
		if _, err := gitwork.StartBranch(ctx, w.r, name); !errors.Is(err, gitwork.ErrBadBranch) {
			t.Errorf("%q: %v", name, err)
		}
	}
	if out := w.sh("git symbolic-ref --short HEAD; git status --porcelain"); out != "main\n" {
		t.Errorf("refusals changed the repository: %q", out)
	}

	// CheckBranchName agrees with git (apart from its own length bound),
	// asked in one exec: each costs a fifth of a second.
	var names []string
	for _, name := range append(append([]string{}, goodBranches...), badBranches...) {
		// git reads a lone "@" as HEAD, i.e. the current branch's name.
		if len(name) <= 200 && utf8.ValidString(name) && name != "@" {
			names = append(names, name)
		}
	}
	script := `for n in "$@"; do if git check-ref-format --branch "$n" >/dev/null 2>&1; then echo ok; else echo bad; fi; done`
	res, err := w.eng.Capture(ctx, w.id, engine.ExecSpec{Cmd: append([]string{"bash", "-c", script, "-"}, names...), User: testUser, WorkDir: "/workspace"}, nil, 1<<16)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("check-ref-format: %v %d %s", err, res.ExitCode, res.Stderr)
	}
	verdicts := strings.Fields(string(res.Stdout))
	if len(verdicts) != len(names) {
		t.Fatalf("%d verdicts for %d names", len(verdicts), len(names))
	}
	for i, name := range names {
		if gitValid, ours := verdicts[i] == "ok", gitwork.CheckBranchName(name) == nil; gitValid != ours {
			t.Errorf("%q: git says valid=%v, CheckBranchName valid=%v", name, gitValid, ours)
		}
	}
}

// A repository owned by another uid than the one git runs as (a host
// directory bind-mounted in, say) makes git refuse with "dubious
// ownership" unless told the directory is safe. Here dev (1000) owns it
// and lets anyone write, and gitwork runs as 1234, a uid without a passwd
// entry, as a workspace user configured by number may well be.
func TestDubiousOwnership(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	ctx := ctxFor(t)
	base := w.repoWithHistory()
	w.sh("chmod -R a+rwX /workspace")
	const other = "1234:1234"
	if out := w.shAs(other, "git status 2>&1 || true"); !strings.Contains(out, "dubious ownership") {
		t.Fatalf("setup did not make the ownership dubious: %s", out)
	}
	r := gitwork.EngineRunner(w.eng, w.id, other)
	repo, err := gitwork.Detect(ctx, r)
	if err != nil || repo != (gitwork.Repo{IsRepo: true, Head: base, Branch: "main"}) {
		t.Fatalf("Detect: %+v %v", repo, err)
	}
	start, err := gitwork.StartBranch(ctx, r, "task/owned")
	if err != nil {
		t.Fatal(err)
	}
	w.sh("echo more >> a.txt")
	sha, committed, err := gitwork.Commit(ctx, r, "More\n", "Ada", "ada@example.test")
	if err != nil || !committed {
		t.Fatalf("Commit: %v %v", committed, err)
	}
	ch, err := gitwork.Changes(ctx, r, start.Base, sha, 1<<20)
	if err != nil || len(ch.Files) != 1 || ch.Files[0].Path != "a.txt" || ch.Files[0].Additions != 1 {
		t.Fatalf("Changes: %+v %v", ch.Files, err)
	}
}

// fakeRunner answers every command with one fixed result.
type fakeRunner struct {
	stdout, stderr string
	code           int
	err            error
}

func (f fakeRunner) Run(context.Context, []string, io.Reader, int) ([]byte, []byte, int, error) {
	return []byte(f.stdout), []byte(f.stderr), f.code, f.err
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	down := errors.New("engine down")
	if _, err := gitwork.Detect(ctx, fakeRunner{err: down}); !errors.Is(err, down) {
		t.Errorf("runner failure: %v", err)
	}
	_, err := gitwork.Detect(ctx, fakeRunner{code: 128, stderr: "fatal: unsafe repository\nhint: do X\n"})
	var gerr *gitwork.Error
	if !errors.As(err, &gerr) || gerr.Op != "status" || gerr.ExitCode != 128 || gerr.Stderr != "fatal: unsafe repository" {
		t.Errorf("git failure: %#v", err)
	}
	if _, _, err := gitwork.Commit(ctx, fakeRunner{}, " \n", "A", "a@b"); err == nil {
		t.Error("empty message accepted")
	}
	if _, _, err := gitwork.Commit(ctx, fakeRunner{}, "m", "A <x>", "a@b"); err == nil {
		t.Error("name with <> accepted")
	}
	if _, _, err := gitwork.Commit(ctx, fakeRunner{}, "m", "A", ""); err == nil {
		t.Error("empty email accepted")
	}
}
