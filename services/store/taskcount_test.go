package store_test

import (
	"testing"

	"aicode/services/store"
)

func testCountActiveTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{Username: "counter", PasswordHash: "x", Role: store.RoleMember}
	if err := s.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	var ws []store.Workspace
	for _, name := range []string{"count-a", "count-b"} {
		w := store.Workspace{Name: name, OwnerID: u.ID, ProjectPath: "/srv/" + name, Image: "x",
			Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredRunning, Status: store.StatusRunning}
		if err := s.CreateWorkspace(ctx, &w); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if q, r, err := s.CountActiveTasks(ctx); err != nil || q != 0 || r != 0 {
		t.Fatalf("empty: %d %d %v", q, r, err)
	}
	var ids []string
	for i := range 5 {
		tk := store.Task{WorkspaceID: ws[i%2].ID, CreatedBy: u.ID, Prompt: "p"}
		if err := s.CreateTask(ctx, &tk); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	// One runs in each workspace; one queued task is cancelled.
	for _, id := range ids[:2] {
		if ok, err := s.ClaimTask(ctx, id, "runner", 10); err != nil || !ok {
			t.Fatalf("claim %s: %v %v", id, ok, err)
		}
	}
	if _, err := s.RequestTaskCancel(ctx, ids[4], "no"); err != nil {
		t.Fatal(err)
	}
	if q, r, err := s.CountActiveTasks(ctx); err != nil || q != 2 || r != 2 {
		t.Fatalf("counts: queued %d running %d, %v", q, r, err)
	}
}

func TestSQLiteCountActiveTasks(t *testing.T) {
	s, _ := openSQLiteRaw(t)
	testCountActiveTasks(t, migrated(t, s))
}

func TestPostgresCountActiveTasks(t *testing.T) {
	p := newPGSchemas(t)
	testCountActiveTasks(t, migrated(t, p.open(t, p.url(t))))
}
