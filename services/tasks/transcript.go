package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"aicode/services/auth"
	"aicode/services/blob"
	"aicode/services/store"
	"aicode/services/tasks/streamjson"
)

// MaxHistory bounds the events one Events call returns.
const MaxHistory = 5000

// Cursor is a position in a transcript: after event Seq, which ends at
// byte Pos (0 when unknown: the index or a scan finds it).
type Cursor struct {
	Seq, Pos int64
}

// Events returns a task's events after seq afterSeq, in order, at most
// limit (MaxHistory when 0 or more), and whether more follow.
func (s *Service) Events(ctx context.Context, p auth.Principal, wsID, id string, afterSeq int64, limit int) ([]Event, bool, error) {
	return s.EventsFrom(ctx, p, wsID, id, Cursor{Seq: afterSeq}, limit)
}

// EventsFrom is Events from a cursor: a viewer catching up names the
// byte where its last event ended, and reading starts right there.
func (s *Service) EventsFrom(ctx context.Context, p auth.Principal, wsID, id string, c Cursor, limit int) ([]Event, bool, error) {
	t, err := s.Get(ctx, p, wsID, id)
	if err != nil {
		return nil, false, err
	}
	return s.events(ctx, t, c, limit)
}

func (s *Service) events(ctx context.Context, t store.Task, c Cursor, limit int) ([]Event, bool, error) {
	if limit <= 0 || limit > MaxHistory {
		limit = MaxHistory
	}
	if s.remote(t) {
		s.requestSync(ctx, t)
	}
	rc, err := s.openTranscript(ctx, t)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	// Without a byte position, the index says where the line after
	// c.Seq starts (and when it came).
	seq, pos := int64(0), int64(0)
	start := c.Pos
	var at map[int64]time.Time
	if start == 0 && c.Seq > 0 {
		idx, err := s.d.Store.ListTaskEvents(ctx, t.ID, c.Seq, limit+1)
		if err != nil {
			return nil, false, err
		}
		at = make(map[int64]time.Time, len(idx))
		for _, e := range idx {
			at[e.Seq] = e.At
		}
		if len(idx) > 0 && idx[0].Seq == c.Seq+1 {
			start = idx[0].Pos
		}
	}
	if start > 0 || c.Seq == 0 {
		if sk, ok := rc.(io.Seeker); ok {
			if _, err := sk.Seek(start, io.SeekStart); err == nil {
				seq, pos = c.Seq, start
			}
		}
	}
	rd := streamjson.NewReader(rc, maxLine)
	var out []Event
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out, false, nil
		}
		if err != nil {
			return out, false, err
		}
		seq++
		// Transcript lines are one JSON object and a newline each.
		pos += int64(ev.Size) + 1
		if seq <= c.Seq {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		at := at[seq]
		out = append(out, Event{Seq: seq, At: at, End: pos, Event: fromRecord(ev)})
	}
}

// openTranscript opens a running task's spool, or the stored transcript.
func (s *Service) openTranscript(ctx context.Context, t store.Task) (io.ReadCloser, error) {
	s.mu.Lock()
	r := s.running[t.ID]
	s.mu.Unlock()
	if r != nil {
		// Whatever has been published must be readable.
		r.flushSpool()
	}
	if f, err := os.Open(s.spoolPath(t.ID)); err == nil {
		return f, nil
	}
	key := t.TranscriptKey
	if key == "" {
		key = transcriptKey(t.ID)
	}
	return s.d.Blobs.Open(ctx, key)
}

// fromRecord turns the transcript's own records of unkeepable lines back
// into the events they stood for.
func fromRecord(ev streamjson.Event) streamjson.Event {
	switch ev.Type {
	case TypeMalformedRecord:
		var r struct {
			Error string `json:"error"`
			Line  string `json:"line"`
		}
		_ = json.Unmarshal(ev.Raw, &r)
		return streamjson.Event{Type: streamjson.TypeMalformed, Err: r.Error, Raw: []byte(r.Line), Size: len(r.Line)}
	case TypeOversizedRecord:
		var r struct {
			Size int    `json:"size"`
			Head string `json:"head"`
		}
		_ = json.Unmarshal(ev.Raw, &r)
		return streamjson.Event{Type: streamjson.TypeOversized, Size: r.Size, Raw: []byte(r.Head)}
	}
	return ev
}

// Diff returns a finished task's unified diff (empty when it changed
// nothing or the workspace is no git repository).
func (s *Service) Diff(ctx context.Context, p auth.Principal, wsID, id string) ([]byte, error) {
	t, err := s.Get(ctx, p, wsID, id)
	if err != nil || t.DiffKey == "" {
		return nil, err
	}
	rc, err := s.d.Blobs.Open(ctx, t.DiffKey)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxDiff+1))
}

// Files decodes a task's changed files.
func Files(t store.Task) []FileChange {
	var out []FileChange
	_ = json.Unmarshal([]byte(t.Files), &out)
	return out
}

// Transcript opens a task's whole transcript (JSON lines).
func (s *Service) Transcript(ctx context.Context, p auth.Principal, wsID, id string) (io.ReadCloser, error) {
	t, err := s.Get(ctx, p, wsID, id)
	if err != nil {
		return nil, err
	}
	rc, err := s.openTranscript(ctx, t)
	if errors.Is(err, blob.ErrNotFound) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	return rc, err
}
