package logs

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"aicode/services/auth"
	"aicode/services/store"
)

func doc(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	d, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func TestTabShowsOptionsOutputAndFeed(t *testing.T) {
	code := 1
	p := Props{
		User:      auth.Principal{UserID: "u", Role: store.RoleMember},
		Workspace: store.Workspace{ID: "w1", Name: "demo", OwnerID: "u", Status: store.StatusRunning},
		Access:    auth.Access{OwnerID: "u"},
		Options:   Options{Tail: 50, Follow: true, Timestamps: false, Query: `<b>"x"`},
		MaxTail:   5000,
		Events: []store.WorkspaceEvent{
			{ID: 3, Kind: store.EventOOM, At: at},
			{ID: 2, Kind: store.EventDie, ExitCode: &code, At: at},
			{ID: 1, Kind: store.EventStart, At: at},
		},
	}
	d := doc(t, Tab(p))
	for _, id := range []string{"logs", "logs-options", "logs-tail", "logs-follow", "logs-timestamps", "logs-filter", "logs-pause", "logs-clear", "logs-status", "log-output", "logs-empty", "events-feed"} {
		if d.Find(`[data-testid="`+id+`"]`).Length() != 1 {
			t.Errorf("no single %s", id)
		}
	}
	if d.Find(`[data-testid="tab-logs"][aria-current="page"]`).Length() != 1 {
		t.Error("the Logs tab is not marked current")
	}
	if v, _ := d.Find(`[data-testid="logs"]`).Attr("data-stream"); v != "/workspaces/w1/logs/stream" {
		t.Errorf("stream URL %q", v)
	}
	if v, _ := d.Find(`[data-testid="logs-tail"]`).Attr("value"); v != "50" {
		t.Errorf("tail shown as %q", v)
	}
	if v, _ := d.Find(`[data-testid="logs-filter"]`).Attr("value"); v != `<b>"x"` {
		t.Errorf("filter shown as %q", v)
	}
	if _, ok := d.Find(`[data-testid="logs-follow"]`).Attr("checked"); !ok {
		t.Error("follow not checked")
	}
	if _, ok := d.Find(`[data-testid="logs-timestamps"]`).Attr("checked"); ok {
		t.Error("timestamps checked though off")
	}
	if v, _ := d.Find(`[data-testid="log-output"]`).Attr("data-ts"); v != "off" {
		t.Errorf("output data-ts %q, want off", v)
	}
	items := d.Find(`[data-testid="event"]`)
	if items.Length() != 3 || items.First().AttrOr("data-kind", "") != "oom" {
		t.Fatalf("feed: %d items, first %q", items.Length(), items.First().AttrOr("data-kind", ""))
	}
	if items.First().Find(`[data-testid="event-oom"]`).Length() != 1 || !strings.Contains(items.First().AttrOr("class", ""), "bg-rose") {
		t.Error("the OOM kill does not stand out")
	}
	if txt := items.Eq(1).Text(); !strings.Contains(txt, "Exited with code 1") || !strings.Contains(txt, "2026-03-04 05:06:07 UTC") {
		t.Errorf("die event reads %q", txt)
	}
	if d.Find(`[data-testid="events-empty"]`).Length() != 0 {
		t.Error("empty state shown with events")
	}
}

func TestEventItemsEmptyAndWording(t *testing.T) {
	d := doc(t, EventItems(nil))
	if e := d.Find(`[data-testid="events-empty"]`); e.Length() != 1 || !strings.Contains(e.Text(), "No events yet") {
		t.Fatal("no empty state")
	}
	zero := 0
	for _, tc := range []struct {
		e    store.WorkspaceEvent
		want string
	}{
		{store.WorkspaceEvent{Kind: store.EventDie, ExitCode: &zero}, "Exited normally (code 0)"},
		{store.WorkspaceEvent{Kind: store.EventDie}, "Exited"},
		{store.WorkspaceEvent{Kind: store.EventOOM}, "Killed: out of memory"},
		{store.WorkspaceEvent{Kind: store.EventRestart}, "Restarted"},
		{store.WorkspaceEvent{Kind: store.EventDestroy}, "Container removed"},
		{store.WorkspaceEvent{Kind: "<odd>"}, "<odd>"},
	} {
		if got := Describe(tc.e); got != tc.want {
			t.Errorf("Describe(%s) = %q, want %q", tc.e.Kind, got, tc.want)
		}
	}
	// Whatever an event says is text.
	var buf bytes.Buffer
	_ = EventItem(store.WorkspaceEvent{Kind: "<script>x</script>", At: at}).Render(context.Background(), &buf)
	if strings.Contains(buf.String(), "<script>") {
		t.Errorf("event kind rendered as markup: %s", buf.String())
	}
}
