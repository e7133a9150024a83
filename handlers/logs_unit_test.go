package handlers

import (
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
)

// A viewer that does not take its lines loses the newest ones beyond the
// bound, and is told how many at the place they went missing.
func TestUnitLogQueueSkipsWhenFull(t *testing.T) {
	q := &logTail{ready: make(chan struct{}, 1)}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range logQueueLines + 25 {
		q.push(engine.LogLine{Line: "x", Time: at.Add(time.Duration(i))}, nil)
	}
	items, last := q.take()
	if len(items) != logQueueLines+1 {
		t.Fatalf("%d items queued, want %d lines and a marker", len(items), logQueueLines)
	}
	if m := items[len(items)-1]; m.skipped != 25 {
		t.Fatalf("trailing marker %+v, want 25 skipped", m)
	}
	if !last.Equal(at.Add(logQueueLines + 24)) {
		t.Errorf("newest line read at %v", last)
	}
	// Once drained, lines flow again.
	q.push(engine.LogLine{Line: "again"}, nil)
	items, _ = q.take()
	if len(items) != 1 || items[0].line.Line != "again" {
		t.Fatalf("after draining: %+v", items)
	}

	// The byte bound holds too.
	big := strings.Repeat("y", engine.MaxLogLine)
	for range logQueueBytes/engine.MaxLogLine + 3 {
		q.push(engine.LogLine{Line: big}, nil)
	}
	if q.bytes > logQueueBytes {
		t.Fatalf("%d bytes queued, bound %d", q.bytes, logQueueBytes)
	}
	first, _ := q.take()
	q.push(engine.LogLine{Line: "small"}, nil)
	items, _ = q.take()
	if first[len(first)-1].skipped != 3 {
		t.Errorf("marker after the byte bound: %+v", first[len(first)-1])
	}
	if len(items) != 1 || items[0].line.Line != "small" {
		t.Errorf("after draining: %+v", items)
	}
}

func TestUnitLogQueueFilterAndWake(t *testing.T) {
	q := &logTail{ready: make(chan struct{}, 1)}
	match := lineMatcher("ErRoR")
	q.push(engine.LogLine{Line: "all fine"}, match)
	select {
	case <-q.ready:
		t.Fatal("a filtered-out line woke the viewer")
	default:
	}
	q.push(engine.LogLine{Line: "an ERROR here", Time: time.Unix(5, 0)}, match)
	q.push(engine.LogLine{Line: "another error"}, match)
	select {
	case <-q.ready:
	default:
		t.Fatal("a matching line did not wake the viewer")
	}
	items, last := q.take()
	if len(items) != 2 || items[0].line.Line != "an ERROR here" {
		t.Fatalf("filtered: %+v", items)
	}
	if !last.Equal(time.Unix(5, 0)) {
		t.Errorf("newest line time %v", last)
	}
}

func TestUnitParseLogQueryDefaults(t *testing.T) {
	if m := lineMatcher(""); m != nil {
		t.Error("an empty filter matches selectively")
	}
	if defaultLogTail < 1 || defaultLogTail > maxLogTail {
		t.Errorf("default tail %d outside 1..%d", defaultLogTail, maxLogTail)
	}
}
