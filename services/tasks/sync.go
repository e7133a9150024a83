package tasks

import (
	"context"
	"os"
	"time"

	"aicode/services/bus"
	"aicode/services/store"
)

// Viewing a task that runs on another replica. Its transcript is spooled
// on the replica running it and reaches the blob store when it ends. A
// viewer elsewhere asks that runner for a checkpoint over the bus: the
// runner copies its spool to the (shared) blob store and answers. The
// viewer subscribed to the task's live events before asking, so whatever
// the checkpoint lacks reaches it live (the bridge keeps one replica's
// messages in order): nothing is skipped or lost between the two.

// TopicSync carries checkpoint requests and answers between replicas.
const TopicSync = "task.sync"

// Sync is a checkpoint request (Request) or its answer.
type Sync struct {
	TaskID  string `json:"task_id"`
	Runner  string `json:"runner"`
	Request bool   `json:"request,omitempty"`
	// Seq: how many events the checkpoint holds (answers only).
	Seq int64 `json:"seq,omitempty"`
}

// syncWait bounds how long a viewer waits for a checkpoint; past it, it
// reads whatever the blob store holds (the runner may be gone: then the
// housekeeping of a live replica soon wraps the task up).
const syncWait = 3 * time.Second

// remote reports whether t runs on another replica that may be asked for
// a checkpoint.
func (s *Service) remote(t store.Task) bool {
	return s.d.Replicated && t.Status == store.TaskRunning && t.Runner != "" && t.Runner != s.d.Runner
}

// requestSync asks t's runner for a checkpoint and waits for its answer.
func (s *Service) requestSync(ctx context.Context, t store.Task) {
	sub := s.d.Bus.Subscribe(TopicSync, 64)
	defer sub.Close()
	s.d.Bus.Publish(TopicSync, Sync{TaskID: t.ID, Runner: t.Runner, Request: true})
	timer := time.NewTimer(syncWait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			s.log.Debug("no checkpoint from the task's runner", "task", t.ID, "runner", t.Runner)
			return
		case msg := <-sub.C():
			if m, ok := msg.(Sync); ok && !m.Request && m.TaskID == t.ID {
				return
			}
		}
	}
}

// syncLoop answers checkpoint requests for the tasks running here.
// Requests that pile up while one is served are answered by one
// checkpoint per task.
func (s *Service) syncLoop(ctx context.Context) {
	sub := s.d.Bus.Subscribe(TopicSync, 256)
	defer sub.Close()
	for {
		var msg any
		select {
		case <-ctx.Done():
			return
		case msg = <-sub.C():
		}
		want := map[string]bool{}
		for more := true; more; {
			if m, ok := msg.(Sync); ok && m.Request && m.Runner == s.d.Runner {
				want[m.TaskID] = true
			}
			select {
			case msg = <-sub.C():
			default:
				more = false
			}
		}
		for id := range want {
			s.mu.Lock()
			r := s.running[id]
			s.mu.Unlock()
			seq := int64(-1) // not running here (any more): the store has it
			if r != nil {
				var err error
				if seq, err = r.checkpoint(ctx); err != nil {
					s.log.Warn("task checkpoint", "task", id, "err", err)
				}
			}
			s.d.Bus.Publish(TopicSync, Sync{TaskID: id, Runner: s.d.Runner, Seq: seq})
		}
	}
}

// checkpoint copies the spool to the blob store under the transcript's
// key and returns how many events it holds. Once finish has stored the
// final transcript it does nothing: a late checkpoint must never replace
// it.
func (r *run) checkpoint(ctx context.Context) (int64, error) {
	r.cpMu.Lock()
	defer r.cpMu.Unlock()
	if r.stored {
		return -1, nil
	}
	r.mu.Lock()
	seq := r.seq
	r.mu.Unlock()
	r.flushSpool()
	f, err := os.Open(r.s.spoolPath(r.t.ID))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	_, err = r.s.d.Blobs.Put(ctx, transcriptKey(r.t.ID), f)
	return seq, err
}

// registerCodecs lets the task topics travel between replicas.
func registerCodecs(b *bus.Bus) {
	b.RegisterCodec(TopicSync, bus.JSON[Sync]())
}
