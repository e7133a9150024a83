package storetest

import (
	"testing"
	"time"

	"aicode/services/store"
)

func testSnapshots(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	w1 := newWorkspace(t, s, alice, "one", store.StatusRunning)
	w2 := newWorkspace(t, s, alice, "two", store.StatusRunning)

	a := store.Snapshot{WorkspaceID: w1.ID, CreatedBy: alice.ID, Label: "first", BlobKey: "snapshots/a.tar"}
	noErr(t, s.CreateSnapshot(ctx, &a), "create a")
	if !idPattern.MatchString(a.ID) {
		t.Fatalf("id %q", a.ID)
	}
	time.Sleep(2 * time.Millisecond)
	b := store.Snapshot{WorkspaceID: w1.ID, CreatedBy: alice.ID, Scheduled: true, BlobKey: "snapshots/b.tar"}
	noErr(t, s.CreateSnapshot(ctx, &b), "create b")
	c := store.Snapshot{WorkspaceID: w2.ID, CreatedBy: alice.ID, BlobKey: "snapshots/c.tar"}
	noErr(t, s.CreateSnapshot(ctx, &c), "create c")
	if err := s.CreateSnapshot(ctx, &store.Snapshot{WorkspaceID: w1.ID, CreatedBy: alice.ID}); err == nil {
		t.Fatal("a snapshot without a blob key was stored")
	}
	wantErr(t, s.CreateSnapshot(ctx, &store.Snapshot{WorkspaceID: w1.ID, CreatedBy: "nobody", BlobKey: "k"}), store.ErrNotFound, "unknown creator")

	got, err := s.GetSnapshot(ctx, a.ID)
	noErr(t, err, "get a")
	wantEqual(t, got.Status, store.SnapshotCreating, "new status")
	wantEqual(t, got.Label, "first", "label")
	wantEqual(t, got.CreatedByName, "alice", "creator name")
	wantEqual(t, got.CreatedAt, a.CreatedAt, "created at")
	wantUTC(t, got.CreatedAt, "created at")
	if got.FinishedAt != nil {
		t.Fatal("finished before it finished")
	}
	_, err = s.GetSnapshot(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "missing snapshot")

	list, err := s.ListSnapshots(ctx, w1.ID, 10)
	noErr(t, err, "list")
	if len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID || !list[0].Scheduled {
		t.Fatalf("list: %+v", list)
	}
	if _, err := s.ListSnapshots(ctx, w1.ID, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}

	noErr(t, s.FinishSnapshot(ctx, a.ID, store.SnapshotReady, "", 12345, 67), "finish a")
	got, _ = s.GetSnapshot(ctx, a.ID)
	if got.Status != store.SnapshotReady || got.SizeBytes != 12345 || got.FileCount != 67 || got.FinishedAt == nil {
		t.Fatalf("finished: %+v", got)
	}
	// Only once: a finished snapshot is not finished again.
	wantErr(t, s.FinishSnapshot(ctx, a.ID, store.SnapshotFailed, "late", 0, 0), store.ErrNotFound, "finish twice")
	wantErr(t, s.TouchSnapshot(ctx, a.ID), store.ErrNotFound, "touch finished")
	noErr(t, s.TouchSnapshot(ctx, b.ID), "touch b")

	// Stale: b and c were touched before the cut-off.
	stale, err := s.FailStaleSnapshots(ctx, time.Now().Add(time.Hour), "the server stopped")
	noErr(t, err, "fail stale")
	wantEqual(t, len(stale), 2, "stale count")
	got, _ = s.GetSnapshot(ctx, b.ID)
	wantEqual(t, got.Status, store.SnapshotFailed, "stale status")
	wantEqual(t, got.Error, "the server stopped", "stale error")
	stale, err = s.FailStaleSnapshots(ctx, time.Now().Add(time.Hour), "again")
	noErr(t, err, "fail stale again")
	wantEqual(t, len(stale), 0, "stale twice")

	// Orphans: the workspace is gone, the rows stay until swept.
	noErr(t, s.DeleteWorkspace(ctx, w2.ID), "delete workspace two")
	orphans, err := s.OrphanSnapshots(ctx, 10)
	noErr(t, err, "orphans")
	if len(orphans) != 1 || orphans[0].ID != c.ID {
		t.Fatalf("orphans: %+v", orphans)
	}
	noErr(t, s.DeleteSnapshot(ctx, c.ID), "delete c")
	wantErr(t, s.DeleteSnapshot(ctx, c.ID), store.ErrNotFound, "delete twice")
	orphans, _ = s.OrphanSnapshots(ctx, 10)
	wantEqual(t, len(orphans), 0, "orphans after delete")
}

func testSnapshotSchedules(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	w1 := newWorkspace(t, s, alice, "one", store.StatusRunning)
	w2 := newWorkspace(t, s, alice, "two", store.StatusRunning)
	_, err := s.GetSnapshotSchedule(ctx, w1.ID)
	wantErr(t, err, store.ErrNotFound, "no schedule")

	next := base.Add(time.Hour)
	noErr(t, s.SetSnapshotSchedule(ctx, store.SnapshotSchedule{WorkspaceID: w1.ID, IntervalHours: 6, KeepLast: 3, NextRunAt: next, UpdatedBy: alice.ID}), "set")
	noErr(t, s.SetSnapshotSchedule(ctx, store.SnapshotSchedule{WorkspaceID: w2.ID, IntervalHours: 1, KeepLast: 1, NextRunAt: base.Add(48 * time.Hour), UpdatedBy: alice.ID}), "set two")
	got, err := s.GetSnapshotSchedule(ctx, w1.ID)
	noErr(t, err, "get")
	if got.IntervalHours != 6 || got.KeepLast != 3 || !got.NextRunAt.Equal(next) || got.UpdatedBy != alice.ID {
		t.Fatalf("schedule: %+v", got)
	}
	// Replacing keeps one row.
	noErr(t, s.SetSnapshotSchedule(ctx, store.SnapshotSchedule{WorkspaceID: w1.ID, IntervalHours: 12, KeepLast: 2, NextRunAt: next, UpdatedBy: alice.ID}), "replace")
	got, _ = s.GetSnapshotSchedule(ctx, w1.ID)
	wantEqual(t, got.IntervalHours, 12, "replaced interval")
	if err := s.SetSnapshotSchedule(ctx, store.SnapshotSchedule{WorkspaceID: w1.ID, IntervalHours: 0, KeepLast: 2, NextRunAt: next, UpdatedBy: alice.ID}); err == nil {
		t.Fatal("interval 0 accepted")
	}

	due, err := s.DueSnapshotSchedules(ctx, base.Add(2*time.Hour), 10)
	noErr(t, err, "due")
	if len(due) != 1 || due[0].WorkspaceID != w1.ID {
		t.Fatalf("due: %+v", due)
	}
	// Two replicas claim the same run: one wins.
	ok, err := s.ClaimSnapshotSchedule(ctx, w1.ID, due[0].NextRunAt, next.Add(12*time.Hour))
	noErr(t, err, "claim")
	wantEqual(t, ok, true, "first claim")
	ok, err = s.ClaimSnapshotSchedule(ctx, w1.ID, due[0].NextRunAt, next.Add(12*time.Hour))
	noErr(t, err, "claim again")
	wantEqual(t, ok, false, "second claim")
	due, _ = s.DueSnapshotSchedules(ctx, base.Add(2*time.Hour), 10)
	wantEqual(t, len(due), 0, "due after claim")

	noErr(t, s.DeleteSnapshotSchedule(ctx, w1.ID), "delete")
	wantErr(t, s.DeleteSnapshotSchedule(ctx, w1.ID), store.ErrNotFound, "delete twice")
	// A deleted workspace takes its schedule along.
	noErr(t, s.DeleteWorkspace(ctx, w2.ID), "delete workspace")
	_, err = s.GetSnapshotSchedule(ctx, w2.ID)
	wantErr(t, err, store.ErrNotFound, "schedule of a deleted workspace")
}
