package storetest

import (
	"testing"
	"time"

	"aicode/services/store"
)

func eventKinds(es []store.WorkspaceEvent) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Kind
	}
	return out
}

func appendEvent(t *testing.T, s store.Store, e store.WorkspaceEvent) store.WorkspaceEvent {
	t.Helper()
	added, err := s.AppendWorkspaceEvent(t.Context(), &e)
	noErr(t, err, "append event "+e.Kind)
	if !added {
		t.Fatalf("event %+v reported as a duplicate", e)
	}
	return e
}

// Appending, reading back exactly, deduplicating replays, and cascading
// with the workspace.
func testWorkspaceEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "owner", store.RoleMember)
	w := newWorkspace(t, s, owner, "evented", store.StatusRunning)

	at := time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.FixedZone("CEST", 2*3600))
	start := appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "c1", Kind: store.EventStart, At: at})
	if start.ID <= 0 {
		t.Fatalf("append set ID %d", start.ID)
	}
	wantUTC(t, start.At, "appended At")
	if !start.At.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("At normalised to %v, want %v at microsecond precision", start.At, at)
	}
	code := 137
	die := appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "c1", Kind: store.EventDie, At: at.Add(time.Second), ExitCode: &code, Detail: "exit code 137"})
	oom := appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "c1", Kind: store.EventOOM, At: at.Add(time.Second)})
	if !(start.ID < die.ID && die.ID < oom.ID) {
		t.Fatalf("ids not increasing: %d %d %d", start.ID, die.ID, oom.ID)
	}

	// The engine replaying an event stores nothing new.
	again := store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "c1", Kind: store.EventStart, At: at}
	added, err := s.AppendWorkspaceEvent(ctx, &again)
	noErr(t, err, "append a replayed event")
	if added {
		t.Fatal("a replayed event was stored twice")
	}
	// The same kind at another instant, or from another container, is new.
	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, ContainerID: "c2", Kind: store.EventStart, At: at})

	// Zero At means now.
	before := time.Now().Add(-time.Second)
	now := appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, Kind: store.EventStop})
	if now.At.Before(before) || now.At.After(time.Now().Add(time.Second)) {
		t.Fatalf("zero At became %v", now.At)
	}

	_, err = s.AppendWorkspaceEvent(ctx, &store.WorkspaceEvent{WorkspaceID: "nosuchworkspace", Kind: store.EventStart})
	wantErr(t, err, store.ErrNotFound, "event of an unknown workspace")
	if _, err := s.AppendWorkspaceEvent(ctx, &store.WorkspaceEvent{WorkspaceID: w.ID}); err == nil {
		t.Fatal("an event without a kind was accepted")
	}

	got, err := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: w.ID, Limit: 10})
	noErr(t, err, "list events")
	wantEqual(t, eventKinds(got), []string{"stop", "start", "oom", "die", "start"}, "newest first")
	gotDie := got[3]
	if gotDie.ExitCode == nil || *gotDie.ExitCode != 137 || gotDie.Detail != "exit code 137" || gotDie.WorkspaceName != "evented" {
		t.Fatalf("die read back as %+v", gotDie)
	}
	wantUTC(t, gotDie.At, "read At")
	die.WorkspaceName = "evented"
	wantEqual(t, gotDie, die, "die event read back")
	if got[2].ExitCode != nil {
		t.Fatalf("oom event has exit code %v", *got[2].ExitCode)
	}

	// Events go with their workspace.
	noErr(t, s.DeleteWorkspace(ctx, w.ID), "delete workspace")
	got, err = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: w.ID, Limit: 10})
	noErr(t, err, "list after delete")
	if len(got) != 0 {
		t.Fatalf("%d events outlived their workspace", len(got))
	}
}

func testWorkspaceEventsFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	ann := newUser(t, s, "ann", store.RoleMember)
	ben := newUser(t, s, "ben", store.RoleMember)
	a1 := newWorkspace(t, s, ann, "ann-1", store.StatusRunning)
	a2 := newWorkspace(t, s, ann, "ann-2", store.StatusRunning)
	b1 := newWorkspace(t, s, ben, "ben-1", store.StatusRunning)
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: a2.ID, UserID: ben.ID}), "share ann-2 with ben")

	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: a1.ID, Kind: store.EventOOM, At: base})
	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: a2.ID, Kind: store.EventOOM, At: base.Add(time.Minute)})
	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: b1.ID, Kind: store.EventStart, At: base.Add(2 * time.Minute)})
	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: b1.ID, Kind: store.EventOOM, At: base.Add(3 * time.Minute)})

	wsNames := func(es []store.WorkspaceEvent) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.WorkspaceName
		}
		return out
	}
	got, err := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{Kind: store.EventOOM, Limit: 10})
	noErr(t, err, "every OOM")
	wantEqual(t, wsNames(got), []string{"ben-1", "ann-2", "ann-1"}, "OOMs across workspaces, newest first")
	got, _ = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{Kind: store.EventOOM, Since: base.Add(time.Minute), Limit: 10})
	wantEqual(t, wsNames(got), []string{"ben-1", "ann-2"}, "since is inclusive")
	got, _ = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{Kind: store.EventOOM, VisibleTo: ben.ID, Limit: 10})
	wantEqual(t, wsNames(got), []string{"ben-1", "ann-2"}, "ben sees his own and the shared one")
	got, _ = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{VisibleTo: ann.ID, Limit: 10})
	wantEqual(t, wsNames(got), []string{"ann-2", "ann-1"}, "ann sees only hers")
	got, _ = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: b1.ID, Limit: 10})
	wantEqual(t, eventKinds(got), []string{"oom", "start"}, "one workspace")

	// Paging backwards by id.
	page1, _ := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{Limit: 3})
	page2, _ := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{BeforeID: page1[2].ID, Limit: 3})
	if len(page1) != 3 || len(page2) != 1 || page2[0].WorkspaceName != "ann-1" {
		t.Fatalf("paging: %+v then %+v", page1, page2)
	}

	for _, limit := range []int{0, -1, store.MaxPageSize + 1} {
		if _, err := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{Limit: limit}); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
}

func testTrimWorkspaceEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "owner", store.RoleMember)
	w := newWorkspace(t, s, owner, "busy", store.StatusRunning)
	other := newWorkspace(t, s, owner, "quiet", store.StatusRunning)
	for i := range 10 {
		appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: w.ID, Kind: store.EventStart, At: base.Add(time.Duration(i) * time.Second)})
	}
	appendEvent(t, s, store.WorkspaceEvent{WorkspaceID: other.ID, Kind: store.EventStart, At: base})

	n, err := s.TrimWorkspaceEvents(ctx, w.ID, 3)
	noErr(t, err, "trim")
	wantEqual(t, n, int64(7), "events trimmed")
	got, _ := s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: w.ID, Limit: 20})
	if len(got) != 3 || !got[0].At.Equal(base.Add(9*time.Second)) || !got[2].At.Equal(base.Add(7*time.Second)) {
		t.Fatalf("after trimming to 3: %+v", got)
	}
	n, err = s.TrimWorkspaceEvents(ctx, w.ID, 3)
	noErr(t, err, "trim again")
	wantEqual(t, n, int64(0), "nothing more to trim")
	n, _ = s.TrimWorkspaceEvents(ctx, w.ID, 100)
	wantEqual(t, n, int64(0), "keeping more than there are")
	n, _ = s.TrimWorkspaceEvents(ctx, "nosuchworkspace", 1)
	wantEqual(t, n, int64(0), "unknown workspace")
	got, _ = s.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: other.ID, Limit: 20})
	wantEqual(t, len(got), 1, "other workspace untouched")
	if _, err := s.TrimWorkspaceEvents(ctx, w.ID, 0); err == nil {
		t.Fatal("keep 0 accepted")
	}
}
