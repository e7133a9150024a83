package tasks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/gitwork"
	"aicode/services/store"
	"aicode/services/tasks/streamjson"
	"aicode/services/workspace"
)

// Event is one line of a task's transcript, numbered from 1.
type Event struct {
	Seq int64
	At  time.Time
	// End is the byte of the transcript right after the line: where a
	// viewer catching up resumes.
	End int64
	streamjson.Event
}

// Bounds on what a run keeps.
const (
	maxStderr   = 64 << 10
	maxDiff     = 2 << 20
	maxLine     = 64 << 20
	flushEvery  = 100 * time.Millisecond
	flushBatch  = 500
	cancelPoll  = 2 * time.Second
	summaryLen  = 240
	killTimeout = 15 * time.Second
)

// run is one task being carried out by this process.
type run struct {
	s     *Service
	t     store.Task
	opts  Options
	cid   string
	git   gitwork.Runner
	repo  bool
	spool *os.File

	// The transcript is written through a buffer: one write per line was
	// most of the ingest's time. smu guards it; flushSpool empties it
	// (every flushEvery, and before anyone reads the spool).
	smu sync.Mutex
	sw  *bufio.Writer

	// cpMu orders checkpoints (sync.go) before the final transcript;
	// stored: the final transcript is in the blob store.
	cpMu   sync.Mutex
	stored bool

	cancelOnce sync.Once
	cancelled  chan struct{}
	cancelBy   string

	mu       sync.Mutex // guards pending
	pending  []store.TaskEvent
	seq, pos int64

	result   *streamjson.Result
	lastText string
	stderr   bytes.Buffer
}

// cancel asks the run to stop (a user's Cancel).
func (r *run) cancel(by string) {
	r.cancelOnce.Do(func() {
		r.cancelBy = by
		close(r.cancelled)
	})
}

func (s *Service) spoolPath(id string) string { return filepath.Join(s.d.SpoolDir, id+".jsonl") }

func transcriptKey(id string) string { return "tasks/" + id + "/transcript.jsonl" }
func diffKey(id string) string       { return "tasks/" + id + "/diff.patch" }
func pidFile(id string) string       { return "/tmp/aicli-task-" + id + ".pid" }

// execute carries out a claimed task. It returns an error only for an
// infrastructure failure before the CLI started, after putting the task
// back in the queue (River tries again later); lastTry fails it instead.
func (s *Service) execute(ctx context.Context, t store.Task, lastTry bool) error {
	r := &run{s: s, t: t, opts: DecodeOptions(t.Options), cancelled: make(chan struct{})}
	s.mu.Lock()
	s.running[t.ID] = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, t.ID)
		s.mu.Unlock()
	}()
	s.publish(r.t)

	ex, err := r.prepare(ctx)
	if err != nil {
		var inf *infraError
		if errors.As(err, &inf) && !lastTry && ctx.Err() == nil {
			msg := "Could not start yet (" + truncate(inf.err.Error(), 200) + "); trying again shortly."
			if rerr := s.d.Store.RequeueTask(context.WithoutCancel(ctx), t.ID, msg); rerr != nil {
				s.log.Warn("requeue task", "task", t.ID, "err", rerr)
			}
			if t2, gerr := s.d.Store.GetTask(context.WithoutCancel(ctx), t.ID); gerr == nil {
				s.publish(t2)
			}
			return err
		}
		kind, msg := KindEngine, "The task could not start: "+truncate(err.Error(), 300)
		var pe *prepError
		if errors.As(err, &pe) {
			kind, msg = pe.kind, pe.msg
		}
		if ctx.Err() != nil {
			r.t.Status, r.t.Detail = store.TaskInterrupted, "The server shut down before the task started."
		} else {
			r.t.Status, r.t.ErrorKind, r.t.Detail = store.TaskFailed, kind, msg
		}
		r.finish(context.WithoutCancel(ctx))
		return nil
	}
	r.stream(ctx, ex)
	return nil
}

// prepError is a reason the task cannot run that retrying will not fix.
type prepError struct{ kind, msg string }

func (e *prepError) Error() string { return e.msg }

// prepare makes sure the container runs and has the CLI, finds the
// credentials, starts the task's branch and starts the CLI.
func (r *run) prepare(ctx context.Context) (*engine.Exec, error) {
	s := r.s
	w, err := s.d.Store.GetWorkspace(ctx, r.t.WorkspaceID)
	if err != nil {
		return nil, &infraError{err}
	}
	if w.Status != store.StatusRunning || w.ContainerID == "" {
		u, err := s.d.Store.GetUser(ctx, r.t.CreatedBy)
		if err != nil {
			return nil, &infraError{err}
		}
		p := auth.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
		if w, err = s.d.Workspaces.Do(ctx, p, w.ID, workspace.ActionStart); err != nil {
			if errors.Is(err, engine.ErrUnavailable) {
				return nil, &infraError{err}
			}
			return nil, &prepError{KindWorkspace, "The workspace could not be started for the task: " + truncate(err.Error(), 300)}
		}
	}
	r.cid = w.ContainerID
	env, err := s.cliEnv(ctx, r.t)
	if errors.Is(err, ErrNoCredentials) {
		return nil, &prepError{KindCredentials, "No Claude credentials are set. Add an API key or a subscription token in Settings → Claude credentials (for you or for this workspace), or ask an admin to set one for the deployment."}
	}
	if err != nil {
		return nil, &infraError{err}
	}
	// One exec answers both: is the CLI there (3 if not), is git (4 if not).
	res, err := s.d.Engine.Capture(ctx, r.cid, engine.ExecSpec{
		Cmd:  []string{"sh", "-c", "command -v claude >/dev/null || exit 3; command -v git >/dev/null || exit 4; exit 0"},
		User: s.d.User, WorkDir: workspace.WorkDir,
	}, nil, 4096)
	if err != nil {
		return nil, engineErr(err)
	}
	hasGit := res.ExitCode == 0
	if res.ExitCode == 3 || (res.ExitCode != 0 && res.ExitCode != 4) {
		return nil, &prepError{KindNoCLI, "This workspace's image has no Claude Code CLI: `claude` is not on its PATH. Use the default workspace image (aicode-workspace), or install the npm package @anthropic-ai/claude-code-linux-x64 in yours."}
	}

	resume := ""
	if r.t.ParentID != "" {
		parent, err := s.d.Store.GetTask(ctx, r.t.ParentID)
		if err != nil {
			return nil, &prepError{KindCLI, "The task this follows up is gone."}
		}
		if parent.SessionID == "" {
			return nil, &prepError{KindCLI, "The task this follows up has no Claude session to continue (it ended before Claude started). Start a new task instead."}
		}
		resume = parent.SessionID
	}

	repo := gitwork.Repo{}
	if hasGit {
		r.git = gitwork.EngineRunner(s.d.Engine, r.cid, s.d.User)
		if repo, err = gitwork.Detect(ctx, r.git); err != nil {
			return nil, engineErr(err)
		}
	}
	if repo.IsRepo {
		r.repo = true
		st, err := gitwork.StartBranch(ctx, r.git, s.d.Config.BranchPrefix+r.t.ID)
		switch {
		case errors.Is(err, gitwork.ErrBranchExists):
			// An earlier try got this far; carry on there.
			r.t.Branch = s.d.Config.BranchPrefix + r.t.ID
			r.t.BaseSHA = repo.Head
		case err != nil:
			return nil, &prepError{KindWorkspace, "Could not start the task's git branch: " + truncate(err.Error(), 300)}
		default:
			r.t.Branch, r.t.BaseSHA = st.Branch, st.Base
		}
	}

	f, err := os.OpenFile(s.spoolPath(r.t.ID), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, &infraError{fmt.Errorf("open transcript: %w", err)}
	}
	r.spool = f

	// The shell writes its pid where a later exec can signal it, then
	// becomes the CLI: the engine has no way to signal an exec.
	cmd := append([]string{"sh", "-c", `echo $$ >"$0" && exec "$@"`, pidFile(r.t.ID)}, r.opts.Args(r.t.Prompt, resume)...)
	env = append(env, taskMarker(r.t.ID))
	ex, err := s.d.Engine.StartExec(ctx, r.cid, engine.ExecSpec{Cmd: cmd, User: s.d.User, WorkDir: workspace.WorkDir, Env: env})
	if err != nil {
		f.Close()
		return nil, engineErr(err)
	}
	// The CLI would read a prompt from stdin; it gets none.
	_ = ex.CloseWrite()
	now := time.Now().UTC()
	r.t.StartedAt = &now
	r.t.Status = store.TaskRunning
	r.t.Detail = ""
	r.t.TranscriptKey = transcriptKey(r.t.ID)
	if err := s.d.Store.UpdateTaskRun(ctx, &r.t); err != nil {
		s.log.Warn("save task start", "task", r.t.ID, "err", err)
	}
	s.publish(r.t)
	return ex, nil
}

func engineErr(err error) error {
	if errors.Is(err, engine.ErrUnavailable) {
		return &infraError{err}
	}
	return &prepError{KindEngine, "The Docker engine refused to run the task: " + truncate(err.Error(), 300)}
}

// stream reads the CLI's output to its end, keeping and publishing every
// line, while watching for cancellation; then it wraps up.
func (r *run) stream(ctx context.Context, ex *engine.Exec) {
	s := r.s
	pr, pw := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, err := stdcopy.StdCopy(pw, &limitedWriter{&r.stderr, maxStderr}, ex)
		pw.CloseWithError(err)
	}()

	done := make(chan struct{})
	var why stopReason
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); why = r.watch(ctx, done) }()
	go func() { defer wg.Done(); r.flushLoop(done) }()

	r.readAll(pr)
	_ = pr.Close()
	<-copied
	close(done)
	wg.Wait()
	ex.Close()

	bg := context.WithoutCancel(ctx)
	ictx, cancel := context.WithTimeout(bg, 10*time.Second)
	if st, err := s.d.Engine.InspectExec(ictx, ex.ID); err == nil && !st.Running {
		code := st.ExitCode
		r.t.ExitCode = &code
	}
	cancel()
	r.flush(bg)
	r.decide(why)
	r.finish(bg)
}

// readAll ingests every line the CLI prints until its output ends.
func (r *run) readAll(out io.Reader) {
	rd := streamjson.NewReader(out, maxLine)
	for {
		ev, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.stderr.WriteString("\n[reading the CLI's output: " + err.Error() + "]")
			}
			return
		}
		r.ingest(ev)
	}
}

// Replay ingests a transcript as if the CLI of a queued task printed it:
// every line is parsed, kept and published, then the task is wrapped up
// from its result. It serves imports of transcripts and the benchmarks of
// the ingest path; nothing runs in a container.
func (s *Service) Replay(ctx context.Context, id string, transcript io.Reader) (store.Task, error) {
	t, err := s.d.Store.GetTask(ctx, id)
	if err != nil {
		return store.Task{}, err
	}
	if t.Status != store.TaskQueued {
		return t, ErrFinished
	}
	r := &run{s: s, t: t, opts: DecodeOptions(t.Options), cancelled: make(chan struct{})}
	s.mu.Lock()
	s.running[t.ID] = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, t.ID)
		s.mu.Unlock()
	}()
	if r.spool, err = os.OpenFile(s.spoolPath(t.ID), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640); err != nil {
		return t, err
	}
	now := time.Now().UTC()
	r.t.Status, r.t.StartedAt, r.t.TranscriptKey = store.TaskRunning, &now, transcriptKey(t.ID)
	done := make(chan struct{})
	flushed := make(chan struct{})
	go func() { defer close(flushed); r.flushLoop(done) }()
	r.readAll(transcript)
	close(done)
	<-flushed
	r.flush(ctx)
	r.decide(stopNone)
	r.finish(ctx)
	return r.t, nil
}

// stopReason is why a run was stopped from outside, if it was.
type stopReason int

const (
	stopNone stopReason = iota
	stopCancel
	stopShutdown
	stopTimeout
)

// watch stops the CLI when the user cancels (here or on another replica),
// the server shuts down or the task runs too long: an interrupt first,
// then a kill after the grace period.
func (r *run) watch(ctx context.Context, done <-chan struct{}) stopReason {
	s := r.s
	timeout := time.NewTimer(s.d.Config.Timeout)
	defer timeout.Stop()
	poll := time.NewTicker(cancelPoll)
	defer poll.Stop()
	var why stopReason
	for why == stopNone {
		select {
		case <-done:
			return stopNone
		case <-r.cancelled:
			why = stopCancel
		case <-ctx.Done():
			why = stopShutdown
		case <-timeout.C:
			why = stopTimeout
		case <-poll.C:
			t, err := s.d.Store.GetTask(ctx, r.t.ID)
			if err == nil && t.CancelRequested {
				r.cancel("")
			}
		}
	}
	bg := context.WithoutCancel(ctx)
	r.signal(bg, "INT")
	grace := time.NewTimer(s.d.Config.CancelGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		r.signal(bg, "KILL")
	}
	return why
}

// taskMarker is put in the CLI's environment; everything it starts
// inherits it.
func taskMarker(id string) string { return "AICODE_TASK_ID=" + id }

// killTree kills every process carrying the task's marker: the CLI runs
// its tools in sessions of their own, which outlive it when it is killed
// (and, after a server crash, may have lost it as their parent already).
// Two passes catch what was forked during the first.
const killTree = `for i in 1 2; do for e in /proc/[0-9]*/environ; do
	if tr '\0' '\n' 2>/dev/null <"$e" | grep -qxF "$2"; then p=${e%/environ}; kill -KILL "${p#/proc/}" 2>/dev/null; fi
done; done; `

// signal sends sig to the CLI through another exec; KILL goes to all the
// task's processes.
func (r *run) signal(ctx context.Context, sig string) {
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	script := `pid=$(cat "$1" 2>/dev/null) && kill -` + sig + ` "$pid" 2>/dev/null; true`
	if sig == "KILL" {
		script = killTree + script
	}
	_, err := r.s.d.Engine.Capture(ctx, r.cid, engine.ExecSpec{
		Cmd:  []string{"sh", "-c", script, "sh", pidFile(r.t.ID), taskMarker(r.t.ID)},
		User: r.s.d.User,
	}, nil, 4096)
	if err != nil {
		r.s.log.Warn("signal task CLI", "task", r.t.ID, "signal", sig, "err", err)
	}
}

// ingest keeps one line: appended to the transcript, indexed (in
// batches), folded into the task's figures and published.
func (r *run) ingest(ev streamjson.Event) {
	line := transcriptLine(ev)
	r.mu.Lock()
	r.seq++
	seq, pos := r.seq, r.pos
	r.pos += int64(len(line)) + 1
	r.mu.Unlock()
	r.writeSpool(line)
	at := time.Now().UTC()
	row := store.TaskEvent{TaskID: r.t.ID, Seq: seq, At: at, Type: ev.Type, Subtype: ev.Subtype, Pos: pos, Size: int64(len(line)) + 1}
	row.Tool, row.Summary, row.IsError = summarize(ev)
	r.mu.Lock()
	r.pending = append(r.pending, row)
	r.mu.Unlock()

	changed := false
	if ev.SessionID != "" && r.t.SessionID != ev.SessionID {
		r.t.SessionID, changed = ev.SessionID, true
	}
	switch {
	case ev.Init != nil:
		if ev.Init.Model != "" {
			r.t.Model, changed = ev.Init.Model, true
		}
	case ev.Result != nil:
		res := *ev.Result
		r.result = &res
		r.t.Turns, r.t.CostUSD, r.t.DurationMS = int64(res.NumTurns), res.TotalCostUSD, res.DurationMS
		r.t.Usage = store.Usage{InputTokens: res.Usage.InputTokens, OutputTokens: res.Usage.OutputTokens,
			CacheRead: res.Usage.CacheReadInputTokens, CacheWrite: res.Usage.CacheCreationInputTokens}
		changed = true
	case ev.Message != nil && ev.Type == "assistant":
		for _, b := range ev.Message.Content {
			if b.Type == "text" && strings.TrimSpace(b.Text) != "" {
				r.lastText = b.Text
			}
		}
	}
	r.t.Events = seq
	e := &Event{Seq: seq, At: at, End: pos + int64(len(line)) + 1, Event: ev}
	r.s.d.Bus.Publish(TopicTask(r.t.ID), Update{Event: e})
	if changed {
		r.s.publish(r.t)
	}
}

// transcriptLine is what the transcript keeps of an event, without its
// newline: the CLI's line as it was, or, for lines that were not JSON or
// were too long to keep, a JSON record saying so, so the transcript stays
// one JSON object a line.
func transcriptLine(ev streamjson.Event) []byte {
	var b []byte
	switch ev.Type {
	case streamjson.TypeMalformed:
		b, _ = json.Marshal(map[string]any{"type": TypeMalformedRecord, "error": ev.Err, "line": string(ev.Raw)})
	case streamjson.TypeOversized:
		b, _ = json.Marshal(map[string]any{"type": TypeOversizedRecord, "size": ev.Size, "head": string(ev.Raw)})
	default:
		b = bytes.TrimRight(ev.Raw, "\r\n")
	}
	return b
}

// Record types the transcript uses for lines it could not keep as they
// were.
const (
	TypeMalformedRecord = "aicli_malformed"
	TypeOversizedRecord = "aicli_oversized"
)

// summarize is an event's one-line description for the index.
func summarize(ev streamjson.Event) (tool, summary string, isError bool) {
	switch {
	case ev.Init != nil:
		return "", "Session started · " + ev.Init.Model, false
	case ev.Result != nil:
		return "", firstLine(ev.Result.Result), ev.Result.IsError
	case ev.Message != nil:
		var parts []string
		for _, b := range ev.Message.Content {
			switch b.Type {
			case "text":
				parts = append(parts, firstLine(b.Text))
			case "tool_use":
				tool = b.Name
				parts = append(parts, b.Name+" "+firstLine(string(b.Input)))
			case "tool_result":
				isError = isError || b.IsError
				parts = append(parts, firstLine(b.Content))
			}
		}
		return tool, truncate(strings.Join(parts, " · "), summaryLen), isError
	case ev.Type == streamjson.TypeMalformed:
		return "", truncate("Malformed line: "+ev.Err, summaryLen), true
	case ev.Type == streamjson.TypeOversized:
		return "", fmt.Sprintf("Line of %d bytes, too long to keep", ev.Size), true
	}
	return "", truncate(ev.Type+" "+ev.Subtype, summaryLen), false
}

func (r *run) flushLoop(done <-chan struct{}) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.flushSpool()
			r.flush(context.Background())
		}
	}
}

// spoolBuffer is the transcript's write buffer.
const spoolBuffer = 64 << 10

func (r *run) writeSpool(line []byte) {
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.spool == nil {
		return
	}
	if r.sw == nil {
		r.sw = bufio.NewWriterSize(r.spool, spoolBuffer)
	}
	_, _ = r.sw.Write(line)
	if err := r.sw.WriteByte('\n'); err != nil {
		r.s.log.Warn("write transcript", "task", r.t.ID, "err", err)
	}
}

// flushSpool writes out what the buffer holds.
func (r *run) flushSpool() {
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.sw != nil {
		if err := r.sw.Flush(); err != nil {
			r.s.log.Warn("write transcript", "task", r.t.ID, "err", err)
		}
	}
}

// flush stores the pending index rows.
func (r *run) flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), flushBatch)
		if err := r.s.d.Store.AppendTaskEvents(ctx, batch[:n]); err != nil {
			r.s.log.Warn("store task events", "task", r.t.ID, "count", n, "err", err)
		}
		batch = batch[n:]
	}
}

// decide sets the task's outcome from how the run ended.
func (r *run) decide(why stopReason) {
	t := &r.t
	switch why {
	case stopCancel:
		t.Status = store.TaskCancelled
		t.Detail = "Cancelled while running; the work so far is kept."
		if r.cancelBy != "" {
			t.Detail = "Cancelled by " + r.cancelBy + " while running; the work so far is kept."
		}
		return
	case stopShutdown:
		t.Status = store.TaskInterrupted
		t.Detail = "The server shut down while the task ran; its events and work so far are kept. Retry to run it again."
		return
	case stopTimeout:
		t.Status, t.ErrorKind = store.TaskFailed, KindTimeout
		t.Detail = "Stopped after running longer than the task time limit (" + r.s.d.Config.Timeout.String() + ")."
		return
	}
	if res := r.result; res != nil {
		if !res.IsError && (res.Subtype == "" || res.Subtype == "success") {
			t.Status, t.Detail = store.TaskSucceeded, ""
			return
		}
		t.Status = store.TaskFailed
		api := ""
		if res.APIErrorStatus != 0 || res.APIErrorType != "" || res.APIError != "" {
			api = fmt.Sprintf("status %d %s %s", res.APIErrorStatus, res.APIErrorType, res.APIError)
		}
		t.ErrorKind, t.Detail = explain(res.Subtype, strings.Join([]string{api, res.Result, r.lastText, r.stderr.String()}, "\n"), time.Now())
		return
	}
	t.Status = store.TaskFailed
	text := strings.Join([]string{r.lastText, r.stderr.String()}, "\n")
	kind, msg := explain("", text, time.Now())
	if kind == KindCLI {
		code := "?"
		if t.ExitCode != nil {
			code = fmt.Sprint(*t.ExitCode)
		}
		msg = "Claude Code ended (exit code " + code + ") without a result"
		if l := firstLine(r.stderr.String()); l != "" {
			msg += ": " + l
		} else {
			msg += "."
		}
	}
	t.ErrorKind, t.Detail = kind, msg
}

// finish keeps the work (commit on the task's branch, changes and diff),
// stores the transcript, saves the task and lets the next one start.
func (r *run) finish(ctx context.Context) {
	s := r.s
	t := &r.t
	if r.repo && r.git != nil {
		gctx, cancel := context.WithTimeout(ctx, time.Minute)
		r.keepWork(gctx)
		cancel()
	}
	if r.spool != nil {
		r.flushSpool()
		_ = r.spool.Close()
		r.cpMu.Lock()
		if err := r.storeTranscript(ctx); err != nil {
			s.log.Warn("store transcript", "task", t.ID, "err", err)
		}
		r.stored = true
		r.cpMu.Unlock()
	}
	now := time.Now().UTC()
	t.FinishedAt = &now
	t.HeartbeatAt = nil
	if err := s.d.Store.UpdateTaskRun(ctx, t); err != nil {
		s.log.Error("save finished task", "task", t.ID, "err", err)
	}
	s.log.Info("task finished", "task", t.ID, "workspace", t.WorkspaceID, "status", t.Status, "kind", t.ErrorKind,
		"events", t.Events, "turns", t.Turns, "cost_usd", t.CostUSD)
	if fresh, err := s.d.Store.GetTask(ctx, t.ID); err == nil {
		r.t = fresh
	}
	s.publish(r.t)
	s.q.kick(ctx, t.WorkspaceID)
}

// FileChange is a changed file, as the task page lists it.
type FileChange = gitwork.FileChange

// keepWork commits what the task changed on its branch and records the
// changes since the branch started.
func (r *run) keepWork(ctx context.Context) {
	s := r.s
	t := &r.t
	msg := gitwork.CommitMessage(t.Prompt, t.ID)
	sha, committed, err := gitwork.Commit(ctx, r.git, msg, "AICode task", "aicode-task@localhost")
	if err != nil {
		s.log.Warn("commit task work", "task", t.ID, "err", err)
		t.Detail = strings.TrimSpace(t.Detail + " The work could not be committed: " + truncate(err.Error(), 200))
		return
	}
	// Nothing to commit leaves HEAD where it was: the task's commit only
	// if the CLI committed something itself.
	if committed || (sha != "" && sha != t.BaseSHA) {
		t.CommitSHA = sha
	}
	head := sha
	if head == "" {
		return
	}
	ch, err := gitwork.Changes(ctx, r.git, t.BaseSHA, head, maxDiff)
	if err != nil {
		s.log.Warn("task changes", "task", t.ID, "err", err)
		return
	}
	b, _ := json.Marshal(ch.Files)
	t.Files = string(b)
	if len(ch.Diff) > 0 {
		if _, err := s.d.Blobs.Put(ctx, diffKey(t.ID), bytes.NewReader(ch.Diff)); err != nil {
			s.log.Warn("store diff", "task", t.ID, "err", err)
		} else {
			t.DiffKey = diffKey(t.ID)
		}
	}
}

// storeTranscript moves the spooled transcript to the blob store.
func (r *run) storeTranscript(ctx context.Context) error {
	p := r.s.spoolPath(r.t.ID)
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := r.s.d.Blobs.Put(ctx, transcriptKey(r.t.ID), f); err != nil {
		return err
	}
	r.t.TranscriptKey = transcriptKey(r.t.ID)
	return os.Remove(p)
}

// recoverOrphans wraps up tasks left running by a process that is gone:
// this one before a restart (atStart), or a replica that stopped
// stamping its heartbeat. Their events so far are kept, the CLI (if still
// there) is stopped, and the work is committed.
func (s *Service) recoverOrphans(ctx context.Context, atStart bool) error {
	orphans, err := s.orphans(ctx, atStart)
	for _, t := range orphans {
		s.recoverOne(ctx, t)
	}
	return err
}

// orphans finds the tasks recoverOrphans wraps up.
func (s *Service) orphans(ctx context.Context, atStart bool) ([]store.Task, error) {
	runner, stale := "", time.Now().Add(-staleAfter)
	if atStart {
		runner = s.d.Runner
		if s.d.Store.Dialect() == "sqlite" {
			// One process owns a SQLite database: whatever ran before
			// this start is an orphan, whatever its runner was called.
			stale = time.Now().Add(time.Hour)
		}
	}
	all, err := s.d.Store.OrphanedTasks(ctx, runner, stale)
	if err != nil {
		return nil, err
	}
	var out []store.Task
	for _, t := range all {
		s.mu.Lock()
		_, live := s.running[t.ID]
		s.mu.Unlock()
		if !live {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Service) recoverOne(ctx context.Context, t store.Task) {
	r := &run{s: s, t: t, cancelled: make(chan struct{})}
	w, err := s.d.Store.GetWorkspace(ctx, t.WorkspaceID)
	if err == nil && w.Status == store.StatusRunning && w.ContainerID != "" {
		r.cid = w.ContainerID
		r.signal(ctx, "KILL")
		if t.Branch != "" {
			r.git = gitwork.EngineRunner(s.d.Engine, r.cid, s.d.User)
			r.repo = true
		}
	}
	// What reached the spool before the process died is the transcript.
	if f, err := os.Open(s.spoolPath(t.ID)); err == nil {
		n := int64(0)
		rd := streamjson.NewReader(f, maxLine)
		for {
			ev, err := rd.Next()
			if err != nil {
				break
			}
			n++
			if ev.SessionID != "" {
				r.t.SessionID = ev.SessionID
			}
			if ev.Init != nil && ev.Init.Model != "" {
				r.t.Model = ev.Init.Model
			}
			if res := ev.Result; res != nil {
				r.result = res
				r.t.Turns, r.t.CostUSD, r.t.DurationMS = int64(res.NumTurns), res.TotalCostUSD, res.DurationMS
				r.t.Usage = store.Usage{InputTokens: res.Usage.InputTokens, OutputTokens: res.Usage.OutputTokens,
					CacheRead: res.Usage.CacheReadInputTokens, CacheWrite: res.Usage.CacheCreationInputTokens}
			}
		}
		f.Close()
		r.t.Events = n
		r.spool, _ = os.OpenFile(s.spoolPath(t.ID), os.O_WRONLY|os.O_APPEND, 0)
	}
	r.t.Status = store.TaskInterrupted
	r.t.Detail = "The server stopped while the task ran; its events and work so far are kept. Retry to run it again."
	s.log.Warn("task interrupted by a server stop", "task", t.ID, "workspace", t.WorkspaceID)
	r.finish(ctx)
}

// limitedWriter keeps the first max bytes written to it.
type limitedWriter struct {
	b   *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
