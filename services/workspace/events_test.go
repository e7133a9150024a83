package workspace

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"aicode/services/auth"
	"aicode/services/bus"
	"aicode/services/engine"
	"aicode/services/store"
)

// eventsFixture is a service over a real (SQLite) store with two members'
// workspaces, one of them shared.
type eventsFixture struct {
	svc           *Service
	st            store.Store
	bus           *bus.Bus
	ann, ben, adm auth.Principal
	annWS, benWS  store.Workspace
}

func newEventsFixture(t *testing.T) *eventsFixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := store.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	f := &eventsFixture{st: st, bus: bus.New()}
	f.svc = NewService(st, nil, f.bus, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), Root{}, vtDefaults)
	user := func(name string, role store.Role) auth.Principal {
		u := store.User{Username: name, PasswordHash: "x", Role: role}
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
		return auth.Principal{UserID: u.ID, Username: name, Role: role}
	}
	f.ann, f.ben, f.adm = user("ann", store.RoleMember), user("ben", store.RoleMember), user("adm", store.RoleAdmin)
	ws := func(owner auth.Principal, name string) store.Workspace {
		w := store.Workspace{Name: name, OwnerID: owner.UserID, ProjectPath: "/srv/" + name, Image: "img",
			Desired: store.DesiredRunning, Status: store.StatusRunning, ContainerID: "c-" + name}
		if err := st.CreateWorkspace(ctx, &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	f.annWS, f.benWS = ws(f.ann, "ann-ws"), ws(f.ben, "ben-ws")
	return f
}

func engineEvent(w store.Workspace, action, exitCode string, at time.Time) engine.Event {
	return engine.Event{ContainerID: w.ContainerID, Action: action, ExitCode: exitCode, Time: at,
		Labels: map[string]string{engine.LabelWorkspaceID: w.ID, "exitCode": exitCode}}
}

func TestRecordEvents(t *testing.T) {
	f := newEventsFixture(t)
	ctx := t.Context()
	sub := f.bus.Subscribe(TopicEvents, 16)
	defer sub.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	f.svc.recordEvent(ctx, engineEvent(f.annWS, "start", "", at))
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "kill", "", at.Add(time.Second))) // noise: not kept
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "oom", "", at.Add(2*time.Second)))
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "die", "137", at.Add(2*time.Second)))
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "start", "", at)) // replayed after a reconnect
	f.svc.recordEvent(ctx, engine.Event{ContainerID: "stranger", Action: "start", Time: at,
		Labels: map[string]string{engine.LabelWorkspaceID: "not-ours"}})

	list, err := f.svc.Events(ctx, f.ann, f.annWS.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range list {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) != 3 || kinds[0] != "die" || kinds[1] != "oom" || kinds[2] != "start" {
		t.Fatalf("recorded %v, want die, oom, start", kinds)
	}
	if list[0].ExitCode == nil || *list[0].ExitCode != 137 || list[0].Detail != "exit code 137" {
		t.Errorf("die event: %+v", list[0])
	}
	// Each new event was published once, named, for live viewers.
	var published []string
	for len(published) < 3 {
		select {
		case m := <-sub.C():
			e := m.(store.WorkspaceEvent)
			if e.WorkspaceName != "ann-ws" || e.ID == 0 {
				t.Errorf("published %+v", e)
			}
			published = append(published, e.Kind)
		case <-time.After(time.Second):
			t.Fatalf("published only %v", published)
		}
	}
	select {
	case m := <-sub.C():
		t.Fatalf("published more than the new events: %+v", m)
	default:
	}

	// Who may read the feed.
	if _, err := f.svc.Events(ctx, f.ben, f.annWS.ID, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("another member read the feed: %v", err)
	}
	if _, err := f.svc.Events(ctx, f.adm, f.annWS.ID, 10); err != nil {
		t.Errorf("admin: %v", err)
	}
	if err := f.st.SetShare(ctx, store.Share{WorkspaceID: f.annWS.ID, UserID: f.ben.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Events(ctx, f.ben, f.annWS.ID, 10); err != nil {
		t.Errorf("member it is shared with: %v", err)
	}
}

func TestRecordEventsBounded(t *testing.T) {
	f := newEventsFixture(t)
	ctx := t.Context()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range MaxEventsPerWorkspace + 20 {
		f.svc.recordEvent(ctx, engineEvent(f.annWS, "start", "", at.Add(time.Duration(i)*time.Second)))
	}
	all, err := f.st.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: f.annWS.ID, Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	older, err := f.st.ListWorkspaceEvents(ctx, store.WorkspaceEventFilter{WorkspaceID: f.annWS.ID, BeforeID: all[len(all)-1].ID, Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(all) + len(older); n != MaxEventsPerWorkspace {
		t.Fatalf("%d events kept, want %d", n, MaxEventsPerWorkspace)
	}
	if !all[0].At.Equal(at.Add(time.Duration(MaxEventsPerWorkspace+19) * time.Second)) {
		t.Errorf("newest kept event is from %v", all[0].At)
	}
}

func TestRecentOOMs(t *testing.T) {
	f := newEventsFixture(t)
	ctx := t.Context()
	now := time.Now().UTC()
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "oom", "", now.Add(-48*time.Hour)))
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "oom", "", now.Add(-time.Hour)))
	f.svc.recordEvent(ctx, engineEvent(f.annWS, "die", "137", now.Add(-time.Hour)))
	f.svc.recordEvent(ctx, engineEvent(f.benWS, "oom", "", now.Add(-time.Minute)))

	since := now.Add(-24 * time.Hour)
	got, err := f.svc.RecentOOMs(ctx, f.adm, since, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].WorkspaceName != "ben-ws" || got[1].WorkspaceName != "ann-ws" {
		t.Fatalf("admin sees %+v, want ben-ws then ann-ws", got)
	}
	got, _ = f.svc.RecentOOMs(ctx, f.ann, since, 10)
	if len(got) != 1 || got[0].WorkspaceID != f.annWS.ID {
		t.Fatalf("ann sees %+v, want only her own", got)
	}
	got, _ = f.svc.RecentOOMs(ctx, f.adm, time.Time{}, 10)
	if len(got) != 3 {
		t.Fatalf("all OOMs ever: %d, want 3", len(got))
	}

	counts, err := f.svc.OOMKillsSince(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[f.annWS.ID] != 1 || counts[f.benWS.ID] != 1 {
		t.Fatalf("OOM counts since a day: %v", counts)
	}
	if _, err := f.svc.RecentOOMs(ctx, auth.Principal{UserID: "x", Role: "nobody"}, since, 10); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("an unknown role listed OOMs: %v", err)
	}
}
