package workspaces

import (
	"bytes"
	"context"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/workspace"
)

func doc(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(buf.Bytes(), []byte("<tr")) {
		// A bare row only parses inside a table.
		buf = *bytes.NewBuffer(append(append([]byte("<table><tbody>"), buf.Bytes()...), "</tbody></table>"...))
	}
	d, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	admin  = auth.Principal{UserID: "a", Username: "ada", Role: store.RoleAdmin}
	member = auth.Principal{UserID: "m", Username: "max", Role: store.RoleMember}
	viewer = auth.Principal{UserID: "v", Username: "vic", Role: store.RoleViewer}
)

func ws(owner string, st store.Status) store.Workspace {
	return store.Workspace{ID: "w1", Name: "demo", OwnerID: owner, OwnerName: "someone", Image: "img:1", Status: st,
		Limits: store.Limits{MemoryMB: 2048, CPUs: 1.5, PidsLimit: 256}}
}

// Each row offers exactly the actions its status and the viewer's rights
// allow.
func TestRowActionsFollowStatusAndRole(t *testing.T) {
	cases := []struct {
		name string
		user auth.Principal
		w    store.Workspace
		want []string
	}{
		{"admin, running", admin, ws("m", store.StatusRunning), []string{"action-stop", "action-restart", "action-delete"}},
		{"admin, stopped", admin, ws("m", store.StatusStopped), []string{"action-start", "action-delete"}},
		{"admin, missing container", admin, ws("m", store.StatusMissing), []string{"action-start", "action-delete"}},
		{"admin, creating", admin, ws("m", store.StatusCreating), []string{"action-delete"}},
		{"owner member, running", member, ws("m", store.StatusRunning), []string{"action-stop", "action-restart", "action-delete"}},
		{"viewer", viewer, ws("m", store.StatusRunning), nil},
	}
	for _, tc := range cases {
		d := doc(t, Row(tc.user, tc.w, true))
		var got []string
		d.Find(`[data-testid^="action-"]`).Each(func(_ int, s *goquery.Selection) {
			got = append(got, s.AttrOr("data-testid", ""))
		})
		if len(got) != len(tc.want) {
			t.Errorf("%s: actions %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: actions %v, want %v", tc.name, got, tc.want)
			}
		}
		badge := d.Find(`[data-testid="status-badge"]`)
		if badge.AttrOr("data-status", "") != string(tc.w.Status) {
			t.Errorf("%s: badge status %q", tc.name, badge.AttrOr("data-status", ""))
		}
		// The row replaces itself on live events for its workspace.
		if d.Find("tr").AttrOr("sse-swap", "") != "ws-w1" {
			t.Errorf("%s: row does not listen for its events", tc.name)
		}
	}
}

// Empty lists explain themselves, differently for those who can create.
func TestListEmptyStates(t *testing.T) {
	page := workspace.Page{Page: 1, PerPage: 50}
	cases := []struct {
		name  string
		props ListProps
		want  string
	}{
		{"member, nothing yet", ListProps{User: member, Page: page}, "Create your first workspace"},
		{"viewer, nothing yet", ListProps{User: viewer, Page: page}, "as your team creates them"},
		{"filtered to nothing", ListProps{User: admin, Page: page, Query: "zzz"}, "No workspaces match"},
	}
	for _, tc := range cases {
		d := doc(t, List(tc.props))
		empty := d.Find(`[data-testid="empty-state"]`)
		if empty.Length() != 1 {
			t.Errorf("%s: no empty state", tc.name)
			continue
		}
		if !bytes.Contains([]byte(empty.Text()), []byte(tc.want)) {
			t.Errorf("%s: empty state says %q", tc.name, empty.Text())
		}
	}
	// A viewer gets no create form.
	if doc(t, ListPage(ListProps{User: viewer, Page: page})).Find(`[data-testid="create-form"]`).Length() != 0 {
		t.Error("viewer sees the create form")
	}
	if doc(t, ListPage(ListProps{User: member, Page: page})).Find(`[data-testid="create-form"]`).Length() != 1 {
		t.Error("member lacks the create form")
	}
}

// Pagination keeps the filters and says where the reader is.
func TestListPagination(t *testing.T) {
	items := make([]store.Workspace, 50)
	for i := range items {
		items[i] = ws("a", store.StatusRunning)
	}
	d := doc(t, List(ListProps{User: admin, Page: workspace.Page{Items: items, Total: 120, Page: 2, PerPage: 50}, Query: "de", Status: "running"}))
	if got := d.Find(`[data-testid="list-count"]`).Text(); !bytes.Contains([]byte(got), []byte("51–100 of 120")) {
		t.Errorf("count reads %q", got)
	}
	next := d.Find(`[data-testid="next-page"]`).AttrOr("hx-get", "")
	if next != "/workspaces?page=3&q=de&status=running" {
		t.Errorf("next page link %q", next)
	}
	if self := d.Find(`#workspace-list`).AttrOr("hx-get", ""); self != "/workspaces?page=2&q=de&status=running" {
		t.Errorf("live refresh URL %q loses the filters", self)
	}
}
