package storetest

import (
	"testing"
	"time"

	"aicode/services/store"
)

func testStatsPoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser(t, s, "alice", store.RoleMember)
	w1 := newWorkspace(t, s, alice, "one", store.StatusRunning)
	w2 := newWorkspace(t, s, alice, "two", store.StatusRunning)
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var pts []store.StatsPoint
	for i := 0; i < 5; i++ {
		pts = append(pts, store.StatsPoint{
			WorkspaceID: w1.ID, At: base.Add(time.Duration(i) * time.Minute),
			CPUPercent: 12.5 * float64(i), MemUsed: 1 << 20 * int64(i+1), MemLimit: 512 << 20,
			NetRxBps: 1.5, NetTxBps: 2.5, BlkReadBps: 3.5, BlkWriteBps: 4.5, Pids: int64(i + 3),
		})
	}
	// Seconds within the minute are dropped; a point in another zone is
	// stored as UTC.
	pts = append(pts, store.StatsPoint{WorkspaceID: w2.ID, At: base.Add(30 * time.Second).In(time.FixedZone("X", 3600)), CPUPercent: 99})
	noErr(t, s.SaveStatsPoints(ctx, pts), "save")
	noErr(t, s.SaveStatsPoints(ctx, nil), "save nothing")

	got, err := s.StatsPoints(ctx, w1.ID, base.Add(2*time.Minute))
	noErr(t, err, "list")
	wantEqual(t, len(got), 3, "points since minute 2")
	wantEqual(t, got[0], pts[2], "first point")
	wantEqual(t, got[2], pts[4], "last point")
	for _, p := range got {
		wantUTC(t, p.At, "point time")
	}
	other, err := s.StatsPoints(ctx, w2.ID, time.Time{})
	noErr(t, err, "list other")
	wantEqual(t, len(other), 1, "other workspace's points")
	wantEqual(t, other[0].At, base, "minute of the other point")

	// Saving a minute again replaces it.
	again := pts[4]
	again.CPUPercent, again.Pids = 1, 1
	noErr(t, s.SaveStatsPoints(ctx, []store.StatsPoint{again}), "save again")
	got, err = s.StatsPoints(ctx, w1.ID, base)
	noErr(t, err, "list all")
	wantEqual(t, len(got), 5, "points after replacing one")
	wantEqual(t, got[4], again, "replaced point")

	// A point without a workspace or time is refused and nothing of the
	// batch is kept.
	bad := []store.StatsPoint{{WorkspaceID: w1.ID, At: base.Add(time.Hour)}, {WorkspaceID: w1.ID}}
	if err := s.SaveStatsPoints(ctx, bad); err == nil {
		t.Fatal("a point without a time was saved")
	}
	got, err = s.StatsPoints(ctx, w1.ID, base)
	noErr(t, err, "list after a refused batch")
	wantEqual(t, len(got), 5, "points after a refused batch")

	// Pruning is by age, across workspaces.
	n, err := s.PruneStatsPoints(ctx, base.Add(3*time.Minute))
	noErr(t, err, "prune")
	wantEqual(t, n, int64(4), "pruned points")
	got, err = s.StatsPoints(ctx, w1.ID, time.Time{})
	noErr(t, err, "list after prune")
	wantEqual(t, len(got), 2, "points left")

	// Deleting the workspace deletes its points.
	noErr(t, s.DeleteWorkspace(ctx, w1.ID), "delete workspace")
	got, err = s.StatsPoints(ctx, w1.ID, time.Time{})
	noErr(t, err, "list after delete")
	wantEqual(t, len(got), 0, "points of a deleted workspace")
}
