package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"aicode/services/store"
	"aicode/testutil"
)

// The list fragment costs the same few queries whether it shows one row or
// fifty: no query per row.
func TestListFragmentQueriesAreBounded(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{
		Image: "aicode-test:unused",
		Env:   map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
	})
	ctx := context.Background()
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("member", adminPW, "member")
	owners := []string{}
	for _, n := range []string{"admin", "member"} {
		u, err := s.App.Store.GetUserByUsername(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, u.ID)
	}
	for i := 0; i < 300; i++ {
		w := &store.Workspace{Name: fmt.Sprintf("bulk-%03d", i), OwnerID: owners[i%2], ProjectPath: fmt.Sprintf("/nonexistent/bulk-%03d", i),
			Image: "x", Limits: store.Limits{MemoryMB: 64, CPUs: 1, PidsLimit: 64}, Desired: store.DesiredRunning, Status: store.StatusRunning}
		if err := s.App.Store.CreateWorkspace(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	counter, ok := s.App.Store.(store.QueryCounter)
	if !ok {
		t.Fatal("store does not count queries")
	}
	cost := func(path string, wantRows int) int64 {
		t.Helper()
		before := counter.QueryCount()
		r := admin.GetHTMX(path)
		after := counter.QueryCount()
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.Status)
		}
		if n := strings.Count(r.Body, `data-testid="workspace-row"`); n != wantRows {
			t.Fatalf("%s: %d rows, want %d", path, n, wantRows)
		}
		return after - before
	}
	full := cost("/workspaces", 50)
	one := cost("/workspaces?q=bulk-007", 1)
	last := cost("/workspaces?page=6", 50)
	// The session lookup may or may not be cached; rows cost nothing.
	if max(full, one, last)-min(full, one, last) > 1 {
		t.Errorf("query count depends on rows: 50 rows %d, 1 row %d, page 6 %d", full, one, last)
	}
	// Session lookup, the page, the total.
	if full > 4 {
		t.Errorf("the list fragment took %d queries; want at most 4", full)
	}
}
