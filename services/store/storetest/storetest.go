// Package storetest is the conformance suite every store.Store backend must
// pass. It pins down behaviour the interface comments only sketch (error
// sentinels, boundaries, ordering, precision) so the backends cannot drift.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"

	"aicode/services/store"
)

// Run executes the suite. open must return a new, migrated, empty store for
// each call, isolated from every other call, and must be safe to call from
// parallel subtests; it should register its own cleanup on t.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Basics", testBasics},
		{"UserCreateGet", testUserCreateGet},
		{"UserNotFound", testUserNotFound},
		{"UserConflict", testUserConflict},
		{"UserInvalidRole", testUserInvalidRole},
		{"ListAndCountUsers", testListAndCountUsers},
		{"UserUpdates", testUserUpdates},
		{"CountActiveAdmins", testCountActiveAdmins},
		{"CreateFirstAdmin", testCreateFirstAdmin},
		{"CreateFirstAdminAfterCreateUser", testCreateFirstAdminAfterCreateUser},
		{"CreateFirstAdminConcurrent", testCreateFirstAdminConcurrent},
		{"TxCommit", testTxCommit},
		{"TxRollback", testTxRollback},
		{"TxNested", testTxNested},
		{"Sessions", testSessions},
		{"SessionExpiryBoundary", testSessionExpiryBoundary},
		{"SessionDisabledUser", testSessionDisabledUser},
		{"SessionErrors", testSessionErrors},
		{"DeleteSessions", testDeleteSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"WorkspaceCreateGet", testWorkspaceCreateGet},
		{"WorkspaceNotFound", testWorkspaceNotFound},
		{"WorkspaceConflict", testWorkspaceConflict},
		{"WorkspaceInvalid", testWorkspaceInvalid},
		{"ListWorkspaces", testListWorkspaces},
		{"ListWorkspacesPaging", testListWorkspacesPaging},
		{"ListWorkspacesLimits", testListWorkspacesLimits},
		{"AllWorkspaces", testAllWorkspaces},
		{"SetWorkspaceDesired", testSetWorkspaceDesired},
		{"SetWorkspaceStatus", testSetWorkspaceStatus},
		{"DeleteWorkspace", testDeleteWorkspace},
		{"TimestampPrecision", testTimestampPrecision},
		{"Shares", testShares},
		{"ListWorkspacesVisibleTo", testListWorkspacesVisibleTo},
		{"AppendAudit", testAppendAudit},
		{"ListAuditFilters", testListAuditFilters},
		{"ListAuditPaging", testListAuditPaging},
		{"ListAuditLimits", testListAuditLimits},
		{"WorkspaceEvents", testWorkspaceEvents},
		{"WorkspaceEventsFilters", testWorkspaceEventsFilters},
		{"TrimWorkspaceEvents", testTrimWorkspaceEvents},
		{"StatsPoints", testStatsPoints},
		{"Tasks", testTasks},
		{"TaskClaimRace", testTaskClaimRace},
		{"TaskEvents", testTaskEvents},
		{"Credentials", testCredentials},
		{"Snapshots", testSnapshots},
		{"SnapshotSchedules", testSnapshotSchedules},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// ---------------------------------------------------------------------------
// helpers

var idPattern = regexp.MustCompile(`^[a-z2-7]{16}$`)

// base is a fixed reference instant, deliberately not "now", so expiry tests
// are deterministic.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantEqual(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func wantUTC(t *testing.T, tm time.Time, what string) {
	t.Helper()
	if tm.Location() != time.UTC {
		t.Fatalf("%s: location %v, want UTC", what, tm.Location())
	}
}

func newUser(t *testing.T, s store.Store, username string, role store.Role) store.User {
	t.Helper()
	u := store.User{Username: username, PasswordHash: "hash-" + username, Role: role}
	noErr(t, s.CreateUser(t.Context(), &u), "create user "+username)
	return u
}

func newWorkspace(t *testing.T, s store.Store, owner store.User, name string, status store.Status) store.Workspace {
	t.Helper()
	w := store.Workspace{
		Name:        name,
		OwnerID:     owner.ID,
		ProjectPath: "/srv/workspaces/" + name,
		Image:       "aicode/dev:latest",
		Limits:      store.Limits{MemoryMB: 2048, CPUs: 1.5, PidsLimit: 512},
		Desired:     store.DesiredRunning,
		Status:      status,
	}
	noErr(t, s.CreateWorkspace(t.Context(), &w), "create workspace "+name)
	return w
}

func names(ws []store.Workspace) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// basics and users

func testBasics(t *testing.T, s store.Store) {
	if d := s.Dialect(); d != "sqlite" && d != "postgres" {
		t.Fatalf("Dialect() = %q, want sqlite or postgres", d)
	}
	noErr(t, s.Ping(t.Context()), "ping")
	n, err := s.CountUsers(t.Context())
	noErr(t, err, "count users")
	if n != 0 {
		t.Fatalf("fresh store has %d users, want 0", n)
	}
}

func testUserCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{Username: "Alice", PasswordHash: "h1", Role: store.RoleMember}
	noErr(t, s.CreateUser(ctx, &u), "create user")
	if !idPattern.MatchString(u.ID) {
		t.Fatalf("generated id %q is not 16 lowercase base32 characters", u.ID)
	}
	if u.CreatedAt.IsZero() || u.UpdatedAt.IsZero() {
		t.Fatalf("CreateUser left zero timestamps: %+v", u)
	}

	got, err := s.GetUser(ctx, u.ID)
	noErr(t, err, "get user")
	wantEqual(t, got, u, "GetUser after CreateUser")
	wantUTC(t, got.CreatedAt, "CreatedAt")
	if got.LastLoginAt != nil {
		t.Fatalf("LastLoginAt = %v, want nil", got.LastLoginAt)
	}

	// Usernames keep their spelling but match case-insensitively.
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		got, err := s.GetUserByUsername(ctx, name)
		noErr(t, err, "get user by username "+name)
		wantEqual(t, got, u, "GetUserByUsername("+name+")")
	}

	// A caller-supplied id and timestamps are kept.
	created := base.Add(-time.Hour)
	v := store.User{ID: "caller-chosen-id", Username: "bob", PasswordHash: "h2", Role: store.RoleViewer,
		Disabled: true, CreatedAt: created, UpdatedAt: created.Add(time.Minute), LastLoginAt: ptr(created.Add(2 * time.Minute))}
	noErr(t, s.CreateUser(ctx, &v), "create user with id")
	if v.ID != "caller-chosen-id" {
		t.Fatalf("CreateUser replaced caller id with %q", v.ID)
	}
	got, err = s.GetUser(ctx, v.ID)
	noErr(t, err, "get user bob")
	wantEqual(t, got, v, "GetUser(bob)")
	if !got.CreatedAt.Equal(created) {
		t.Fatalf("CreatedAt = %v, want %v", got.CreatedAt, created)
	}
}

func testUserNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetUser(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "GetUser")
	_, err = s.GetUserByUsername(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "GetUserByUsername")
	wantErr(t, s.UpdateUserRole(ctx, "nope", store.RoleAdmin), store.ErrNotFound, "UpdateUserRole")
	wantErr(t, s.SetUserDisabled(ctx, "nope", true), store.ErrNotFound, "SetUserDisabled")
	wantErr(t, s.SetUserPassword(ctx, "nope", "x"), store.ErrNotFound, "SetUserPassword")
	wantErr(t, s.TouchUserLogin(ctx, "nope", base), store.ErrNotFound, "TouchUserLogin")
}

func testUserConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, s, "carol", store.RoleMember)

	dup := store.User{Username: "CAROL", PasswordHash: "x", Role: store.RoleMember}
	err := s.CreateUser(ctx, &dup)
	wantErr(t, err, store.ErrConflict, "duplicate username differing in case")

	sameID := store.User{ID: a.ID, Username: "dave", PasswordHash: "x", Role: store.RoleMember}
	wantErr(t, s.CreateUser(ctx, &sameID), store.ErrConflict, "duplicate id")

	n, err := s.CountUsers(ctx)
	noErr(t, err, "count users")
	if n != 1 {
		t.Fatalf("CountUsers = %d after rejected duplicates, want 1", n)
	}
}

func testUserInvalidRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{Username: "eve", PasswordHash: "x", Role: "root"}
	if err := s.CreateUser(ctx, &u); err == nil {
		t.Fatal("CreateUser accepted role \"root\"")
	}
	v := newUser(t, s, "frank", store.RoleMember)
	if err := s.UpdateUserRole(ctx, v.ID, "root"); err == nil {
		t.Fatal("UpdateUserRole accepted role \"root\"")
	}
	got, err := s.GetUser(ctx, v.ID)
	noErr(t, err, "get user")
	if got.Role != store.RoleMember {
		t.Fatalf("role changed to %q by a rejected update", got.Role)
	}
}

func testListAndCountUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListUsers(ctx)
	noErr(t, err, "list users on empty store")
	if len(list) != 0 {
		t.Fatalf("ListUsers on empty store returned %d users", len(list))
	}
	want := map[string]store.User{}
	for _, n := range []string{"zed", "amy", "Mike"} {
		u := newUser(t, s, n, store.RoleViewer)
		want[u.ID] = u
	}
	list, err = s.ListUsers(ctx)
	noErr(t, err, "list users")
	var got []string
	for _, u := range list {
		got = append(got, u.Username)
		wantEqual(t, u, want[u.ID], "listed user "+u.Username)
	}
	// Ordered by username, case-insensitively.
	wantEqual(t, got, []string{"amy", "Mike", "zed"}, "ListUsers order")
	n, err := s.CountUsers(ctx)
	noErr(t, err, "count users")
	if n != 3 {
		t.Fatalf("CountUsers = %d, want 3", n)
	}
}

func testUserUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{Username: "gina", PasswordHash: "old", Role: store.RoleViewer,
		CreatedAt: base.Add(-24 * time.Hour)}
	noErr(t, s.CreateUser(ctx, &u), "create user")

	noErr(t, s.UpdateUserRole(ctx, u.ID, store.RoleAdmin), "update role")
	noErr(t, s.SetUserDisabled(ctx, u.ID, true), "disable")
	noErr(t, s.SetUserPassword(ctx, u.ID, "new"), "set password")
	login := base.Add(90 * time.Minute)
	noErr(t, s.TouchUserLogin(ctx, u.ID, login), "touch login")

	got, err := s.GetUser(ctx, u.ID)
	noErr(t, err, "get user")
	if got.Role != store.RoleAdmin || !got.Disabled || got.PasswordHash != "new" {
		t.Fatalf("updates not applied: %+v", got)
	}
	if got.LastLoginAt == nil || !got.LastLoginAt.Equal(login) {
		t.Fatalf("LastLoginAt = %v, want %v", got.LastLoginAt, login)
	}
	wantUTC(t, *got.LastLoginAt, "LastLoginAt")
	if !got.UpdatedAt.After(u.UpdatedAt) {
		t.Fatalf("UpdatedAt %v not advanced past %v by updates", got.UpdatedAt, u.UpdatedAt)
	}
	if !got.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("CreatedAt changed from %v to %v", u.CreatedAt, got.CreatedAt)
	}

	noErr(t, s.SetUserDisabled(ctx, u.ID, false), "enable")
	got, err = s.GetUser(ctx, u.ID)
	noErr(t, err, "get user")
	if got.Disabled {
		t.Fatal("user still disabled after SetUserDisabled(false)")
	}
}

func testCountActiveAdmins(t *testing.T, s store.Store) {
	ctx := t.Context()
	count := func(want int, what string) {
		t.Helper()
		n, err := s.CountActiveAdmins(ctx)
		noErr(t, err, "count active admins")
		if n != want {
			t.Fatalf("%s: CountActiveAdmins = %d, want %d", what, n, want)
		}
	}
	count(0, "empty")
	a1 := newUser(t, s, "admin1", store.RoleAdmin)
	newUser(t, s, "admin2", store.RoleAdmin)
	newUser(t, s, "member", store.RoleMember)
	newUser(t, s, "viewer", store.RoleViewer)
	count(2, "two admins")
	noErr(t, s.SetUserDisabled(ctx, a1.ID, true), "disable admin1")
	count(1, "one admin disabled")
	noErr(t, s.UpdateUserRole(ctx, a1.ID, store.RoleMember), "demote admin1")
	noErr(t, s.SetUserDisabled(ctx, a1.ID, false), "enable admin1")
	count(1, "admin1 demoted")
}

func testCreateFirstAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.User{Username: "root", PasswordHash: "h", Role: store.RoleViewer}
	noErr(t, s.CreateFirstAdmin(ctx, &u), "first admin")
	if !idPattern.MatchString(u.ID) {
		t.Fatalf("generated id %q is not 16 lowercase base32 characters", u.ID)
	}
	got, err := s.GetUser(ctx, u.ID)
	noErr(t, err, "get first admin")
	if got.Role != store.RoleAdmin || got.Disabled {
		t.Fatalf("first admin stored as role %q disabled=%v, want enabled admin", got.Role, got.Disabled)
	}
	wantEqual(t, got, u, "first admin")

	again := store.User{Username: "root2", PasswordHash: "h", Role: store.RoleAdmin}
	wantErr(t, s.CreateFirstAdmin(ctx, &again), store.ErrSetupDone, "second CreateFirstAdmin")
	_, err = s.GetUserByUsername(ctx, "root2")
	wantErr(t, err, store.ErrNotFound, "user from rejected setup")
}

func testCreateFirstAdminAfterCreateUser(t *testing.T, s store.Store) {
	newUser(t, s, "existing", store.RoleMember)
	u := store.User{Username: "late", PasswordHash: "h", Role: store.RoleAdmin}
	wantErr(t, s.CreateFirstAdmin(t.Context(), &u), store.ErrSetupDone, "CreateFirstAdmin with a user present")
}

func testCreateFirstAdminConcurrent(t *testing.T, s store.Store) {
	raceFirstAdmin(t, s)
}

// raceFirstAdmin releases n goroutines at once at CreateFirstAdmin on an
// empty store; exactly one may win and all others must see ErrSetupDone.
func raceFirstAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 10
	// Open the pool's connections first so that connection setup does not
	// stagger the racers into running one after another.
	var warm sync.WaitGroup
	for range n {
		warm.Go(func() {
			for range 5 {
				_, _ = s.CountUsers(ctx)
			}
		})
	}
	warm.Wait()

	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			u := store.User{Username: fmt.Sprintf("racer%d", i), PasswordHash: "h", Role: store.RoleAdmin}
			errs[i] = s.CreateFirstAdmin(ctx, &u)
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrSetupDone):
		default:
			t.Errorf("racer %d: unexpected error %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racers won CreateFirstAdmin, want exactly 1", wins)
	}
	count, err := s.CountUsers(ctx)
	noErr(t, err, "count users")
	if count != 1 {
		t.Fatalf("CountUsers = %d after race, want 1", count)
	}
}

// ---------------------------------------------------------------------------
// transactions

func testTxCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	var id string
	err := s.Tx(ctx, func(tx store.Store) error {
		u := store.User{Username: "txuser", PasswordHash: "h", Role: store.RoleMember}
		if err := tx.CreateUser(ctx, &u); err != nil {
			return err
		}
		id = u.ID
		// Reads inside the transaction see its own writes.
		if _, err := tx.GetUser(ctx, id); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		w := store.Workspace{Name: "txws", OwnerID: id, ProjectPath: "/p/txws", Image: "img",
			Desired: store.DesiredStopped, Status: store.StatusCreating}
		return tx.CreateWorkspace(ctx, &w)
	})
	noErr(t, err, "tx")
	_, err = s.GetUser(ctx, id)
	noErr(t, err, "user committed by tx")
	_, err = s.GetWorkspaceByName(ctx, "txws")
	noErr(t, err, "workspace committed by tx")
}

func testTxRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	var id string
	err := s.Tx(ctx, func(tx store.Store) error {
		u := store.User{Username: "ghost", PasswordHash: "h", Role: store.RoleMember}
		if err := tx.CreateUser(ctx, &u); err != nil {
			return err
		}
		id = u.ID
		return fmt.Errorf("wrapped: %w", boom)
	})
	wantErr(t, err, boom, "Tx returns fn's error")
	_, err = s.GetUser(ctx, id)
	wantErr(t, err, store.ErrNotFound, "user after rollback")

	// A store error inside fn also rolls back everything before it.
	existing := newUser(t, s, "solid", store.RoleMember)
	err = s.Tx(ctx, func(tx store.Store) error {
		if err := tx.SetUserPassword(ctx, existing.ID, "changed"); err != nil {
			return err
		}
		dup := store.User{Username: "SOLID", PasswordHash: "h", Role: store.RoleMember}
		return tx.CreateUser(ctx, &dup)
	})
	wantErr(t, err, store.ErrConflict, "conflict inside tx")
	got, err := s.GetUser(ctx, existing.ID)
	noErr(t, err, "get user")
	if got.PasswordHash != existing.PasswordHash {
		t.Fatalf("password %q survived rollback", got.PasswordHash)
	}

	// The store stays usable after a rollback (no leaked locks).
	newUser(t, s, "after", store.RoleMember)
}

func testTxNested(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("outer fails")
	var innerID string
	err := s.Tx(ctx, func(tx store.Store) error {
		if err := tx.Tx(ctx, func(inner store.Store) error {
			u := store.User{Username: "nested", PasswordHash: "h", Role: store.RoleMember}
			if err := inner.CreateUser(ctx, &u); err != nil {
				return err
			}
			innerID = u.ID
			return nil
		}); err != nil {
			return err
		}
		// The inner Tx joined ours, so its write is visible here...
		if _, err := tx.GetUser(ctx, innerID); err != nil {
			return fmt.Errorf("inner write not visible: %w", err)
		}
		return boom
	})
	wantErr(t, err, boom, "outer error")
	// ...and is rolled back with the outer transaction.
	_, err = s.GetUser(ctx, innerID)
	wantErr(t, err, store.ErrNotFound, "nested write after outer rollback")
}

// ---------------------------------------------------------------------------
// sessions

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "sess", store.RoleMember)
	sess := store.Session{ID: "hash-1", UserID: u.ID, CSRFToken: "csrf", CreatedAt: base,
		ExpiresAt: base.Add(time.Hour), IP: "192.0.2.1", UserAgent: "test-agent/1.0"}
	noErr(t, s.CreateSession(ctx, sess), "create session")

	got, err := s.GetSession(ctx, sess.ID, base.Add(time.Minute))
	noErr(t, err, "get session")
	wantEqual(t, got.Session, sess, "session")
	wantEqual(t, got.User, u, "session user")
	wantUTC(t, got.Session.ExpiresAt, "ExpiresAt")

	_, err = s.GetSession(ctx, sess.ID, base.Add(2*time.Hour))
	wantErr(t, err, store.ErrNotFound, "GetSession after expiry")

	newExp := base.Add(3 * time.Hour)
	noErr(t, s.ExtendSession(ctx, sess.ID, newExp), "extend")
	got, err = s.GetSession(ctx, sess.ID, base.Add(2*time.Hour))
	noErr(t, err, "get extended session")
	if !got.Session.ExpiresAt.Equal(newExp) {
		t.Fatalf("ExpiresAt = %v, want %v", got.Session.ExpiresAt, newExp)
	}

	// A zero CreatedAt is stamped by the store.
	noErr(t, s.CreateSession(ctx, store.Session{ID: "hash-2", UserID: u.ID, CSRFToken: "c2",
		ExpiresAt: time.Now().Add(time.Hour)}), "create session without CreatedAt")
	got, err = s.GetSession(ctx, "hash-2", time.Now())
	noErr(t, err, "get session 2")
	if got.Session.CreatedAt.IsZero() {
		t.Fatal("CreatedAt not stamped")
	}
}

func testSessionExpiryBoundary(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "edge", store.RoleMember)
	exp := base
	noErr(t, s.CreateSession(ctx, store.Session{ID: "edge", UserID: u.ID, CreatedAt: base.Add(-time.Hour), ExpiresAt: exp}), "create")

	_, err := s.GetSession(ctx, "edge", exp.Add(-time.Millisecond))
	noErr(t, err, "1ms before expiry")
	_, err = s.GetSession(ctx, "edge", exp)
	wantErr(t, err, store.ErrNotFound, "exactly at expiry")
	_, err = s.GetSession(ctx, "edge", exp.Add(time.Millisecond))
	wantErr(t, err, store.ErrNotFound, "1ms after expiry")

	// The comparison is on instants, not on wall-clock text in some zone.
	tokyo := time.FixedZone("JST", 9*3600)
	newYork := time.FixedZone("EST", -5*3600)
	_, err = s.GetSession(ctx, "edge", exp.Add(-time.Second).In(tokyo))
	noErr(t, err, "before expiry, expressed in UTC+9")
	_, err = s.GetSession(ctx, "edge", exp.Add(time.Second).In(newYork))
	wantErr(t, err, store.ErrNotFound, "after expiry, expressed in UTC-5")
}

func testSessionDisabledUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "blocked", store.RoleMember)
	noErr(t, s.CreateSession(ctx, store.Session{ID: "s", UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}), "create")
	noErr(t, s.SetUserDisabled(ctx, u.ID, true), "disable")
	// The store reports the session; refusing disabled users is the
	// caller's policy, and it needs the user to explain the refusal.
	got, err := s.GetSession(ctx, "s", base)
	noErr(t, err, "get session of disabled user")
	if !got.User.Disabled {
		t.Fatal("GetSession returned the user as enabled")
	}
}

func testSessionErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetSession(ctx, "missing", base)
	wantErr(t, err, store.ErrNotFound, "GetSession missing")
	wantErr(t, s.ExtendSession(ctx, "missing", base), store.ErrNotFound, "ExtendSession missing")

	err = s.CreateSession(ctx, store.Session{ID: "orphan", UserID: "no-such-user", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
	wantErr(t, err, store.ErrNotFound, "CreateSession for unknown user")

	u := newUser(t, s, "dupsess", store.RoleMember)
	sess := store.Session{ID: "same", UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	noErr(t, s.CreateSession(ctx, sess), "create")
	wantErr(t, s.CreateSession(ctx, sess), store.ErrConflict, "duplicate session id")
}

func testDeleteSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, s, "a", store.RoleMember)
	b := newUser(t, s, "b", store.RoleMember)
	for _, sess := range []store.Session{
		{ID: "a1", UserID: a.ID}, {ID: "a2", UserID: a.ID}, {ID: "b1", UserID: b.ID},
	} {
		sess.CreatedAt, sess.ExpiresAt = base, base.Add(time.Hour)
		noErr(t, s.CreateSession(ctx, sess), "create "+sess.ID)
	}

	noErr(t, s.DeleteSession(ctx, "a1"), "delete a1")
	_, err := s.GetSession(ctx, "a1", base)
	wantErr(t, err, store.ErrNotFound, "deleted session")
	// Logging out twice is not an error.
	noErr(t, s.DeleteSession(ctx, "a1"), "delete a1 again")

	noErr(t, s.DeleteUserSessions(ctx, a.ID), "delete a's sessions")
	_, err = s.GetSession(ctx, "a2", base)
	wantErr(t, err, store.ErrNotFound, "a2 after DeleteUserSessions")
	_, err = s.GetSession(ctx, "b1", base)
	noErr(t, err, "b1 survives DeleteUserSessions(a)")
	noErr(t, s.DeleteUserSessions(ctx, a.ID), "delete a's sessions when none left")
}

func testDeleteExpiredSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, s, "sweep", store.RoleMember)
	now := base
	offsets := map[string]time.Duration{
		"old":      -48 * time.Hour,
		"ms-ago":   -time.Millisecond,
		"boundary": 0,
		"ms-ahead": time.Millisecond,
		"later":    time.Hour,
		// Crosses a second boundary, where a variable-width text encoding
		// would sort wrongly.
		"next-sec": 465 * time.Millisecond,
	}
	for id, off := range offsets {
		noErr(t, s.CreateSession(ctx, store.Session{ID: id, UserID: u.ID, CreatedAt: now.Add(-72 * time.Hour),
			ExpiresAt: now.Add(off)}), "create "+id)
	}
	n, err := s.DeleteExpiredSessions(ctx, now.In(time.FixedZone("X", 3*3600+1800)))
	noErr(t, err, "delete expired")
	if n != 3 {
		t.Fatalf("DeleteExpiredSessions removed %d, want 3 (old, ms-ago, boundary)", n)
	}
	for _, id := range []string{"ms-ahead", "later", "next-sec"} {
		_, err := s.GetSession(ctx, id, now)
		noErr(t, err, "surviving session "+id)
	}
	n, err = s.DeleteExpiredSessions(ctx, now)
	noErr(t, err, "delete expired again")
	if n != 0 {
		t.Fatalf("second sweep removed %d, want 0", n)
	}
}

// ---------------------------------------------------------------------------
// workspaces

func testWorkspaceCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "Owner", store.RoleMember)
	w := store.Workspace{
		Name:        "alpha",
		OwnerID:     owner.ID,
		ProjectPath: "/srv/ws/alpha",
		CreatedDir:  true,
		Image:       "img:1",
		Limits:      store.Limits{MemoryMB: 3072, CPUs: 0.25, PidsLimit: 256},
		Desired:     store.DesiredStopped,
		Status:      store.StatusCreating,
	}
	noErr(t, s.CreateWorkspace(ctx, &w), "create workspace")
	if !idPattern.MatchString(w.ID) {
		t.Fatalf("generated id %q is not 16 lowercase base32 characters", w.ID)
	}
	if w.OwnerName != "Owner" {
		t.Fatalf("OwnerName after create = %q, want %q", w.OwnerName, "Owner")
	}
	if w.CreatedAt.IsZero() || w.UpdatedAt.IsZero() {
		t.Fatal("CreateWorkspace left zero timestamps")
	}
	if w.ObservedAt != nil {
		t.Fatalf("ObservedAt = %v, want nil", w.ObservedAt)
	}

	for what, get := range map[string]func() (store.Workspace, error){
		"GetWorkspace":       func() (store.Workspace, error) { return s.GetWorkspace(ctx, w.ID) },
		"GetWorkspaceByName": func() (store.Workspace, error) { return s.GetWorkspaceByName(ctx, "alpha") },
		"WorkspaceByPath":    func() (store.Workspace, error) { return s.WorkspaceByPath(ctx, "/srv/ws/alpha") },
	} {
		got, err := get()
		noErr(t, err, what)
		wantEqual(t, got, w, what)
	}

	// Fractional CPUs survive exactly.
	for _, cpus := range []float64{1.5, 0.1, 2.75, 16} {
		name := fmt.Sprintf("cpu-%v", cpus)
		v := store.Workspace{Name: name, OwnerID: owner.ID, ProjectPath: "/srv/ws/" + name, Image: "i",
			Limits: store.Limits{CPUs: cpus, MemoryMB: 1 << 40, PidsLimit: 1}, Desired: store.DesiredRunning, Status: store.StatusRunning,
			ContainerID: "c-" + name, StatusDetail: "ok", ObservedAt: ptr(base)}
		noErr(t, s.CreateWorkspace(ctx, &v), "create "+name)
		got, err := s.GetWorkspace(ctx, v.ID)
		noErr(t, err, "get "+name)
		wantEqual(t, got, v, "workspace "+name)
		if got.Limits.CPUs != cpus {
			t.Fatalf("CPUs = %v, want %v", got.Limits.CPUs, cpus)
		}
	}
}

func testWorkspaceNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetWorkspace(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "GetWorkspace")
	_, err = s.GetWorkspaceByName(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "GetWorkspaceByName")
	_, err = s.WorkspaceByPath(ctx, "/nope")
	wantErr(t, err, store.ErrNotFound, "WorkspaceByPath")
	wantErr(t, s.SetWorkspaceDesired(ctx, "nope", store.DesiredRunning), store.ErrNotFound, "SetWorkspaceDesired")
	wantErr(t, s.SetWorkspaceStatus(ctx, "nope", store.StatusUpdate{Status: store.StatusRunning, ObservedAt: base}),
		store.ErrNotFound, "SetWorkspaceStatus")
	wantErr(t, s.DeleteWorkspace(ctx, "nope"), store.ErrNotFound, "DeleteWorkspace")
}

func testWorkspaceConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "o", store.RoleMember)
	w := newWorkspace(t, s, owner, "taken", store.StatusRunning)

	sameName := store.Workspace{Name: "taken", OwnerID: owner.ID, ProjectPath: "/elsewhere", Image: "i",
		Desired: store.DesiredRunning, Status: store.StatusCreating}
	wantErr(t, s.CreateWorkspace(ctx, &sameName), store.ErrConflict, "duplicate name")

	samePath := store.Workspace{Name: "other", OwnerID: owner.ID, ProjectPath: w.ProjectPath, Image: "i",
		Desired: store.DesiredRunning, Status: store.StatusCreating}
	wantErr(t, s.CreateWorkspace(ctx, &samePath), store.ErrConflict, "duplicate project path")

	all, err := s.AllWorkspaces(ctx)
	noErr(t, err, "all workspaces")
	if len(all) != 1 {
		t.Fatalf("%d workspaces after rejected duplicates, want 1", len(all))
	}
}

func testWorkspaceInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	orphan := store.Workspace{Name: "orphan", OwnerID: "no-such-user", ProjectPath: "/o", Image: "i",
		Desired: store.DesiredRunning, Status: store.StatusCreating}
	wantErr(t, s.CreateWorkspace(ctx, &orphan), store.ErrNotFound, "unknown owner")

	owner := newUser(t, s, "o", store.RoleMember)
	bad := store.Workspace{Name: "bad", OwnerID: owner.ID, ProjectPath: "/b", Image: "i",
		Desired: "sideways", Status: store.StatusCreating}
	if err := s.CreateWorkspace(ctx, &bad); err == nil {
		t.Fatal("CreateWorkspace accepted desired state \"sideways\"")
	}
	w := newWorkspace(t, s, owner, "good", store.StatusRunning)
	if err := s.SetWorkspaceDesired(ctx, w.ID, "sideways"); err == nil {
		t.Fatal("SetWorkspaceDesired accepted \"sideways\"")
	}
}

// listFixture creates two owners and a spread of names and statuses.
func listFixture(t *testing.T, s store.Store) (alice, bob store.User) {
	alice = newUser(t, s, "alice", store.RoleMember)
	bob = newUser(t, s, "bob", store.RoleMember)
	newWorkspace(t, s, alice, "web-frontend", store.StatusRunning)
	newWorkspace(t, s, alice, "Web-API", store.StatusStopped)
	newWorkspace(t, s, alice, "data_pipeline", store.StatusRunning)
	newWorkspace(t, s, bob, "dataXpipeline", store.StatusError)
	newWorkspace(t, s, bob, "ml-100%", store.StatusRunning)
	newWorkspace(t, s, bob, "ml-1000", store.StatusStopped)
	return alice, bob
}

func testListWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := listFixture(t, s)
	cases := []struct {
		name string
		f    store.WorkspaceFilter
		want []string
	}{
		// Bytewise name order: uppercase sorts before lowercase.
		{"all", store.WorkspaceFilter{}, []string{"Web-API", "dataXpipeline", "data_pipeline", "ml-100%", "ml-1000", "web-frontend"}},
		{"owner", store.WorkspaceFilter{OwnerID: alice.ID}, []string{"Web-API", "data_pipeline", "web-frontend"}},
		{"owner bob", store.WorkspaceFilter{OwnerID: bob.ID}, []string{"dataXpipeline", "ml-100%", "ml-1000"}},
		{"query case-insensitive", store.WorkspaceFilter{Query: "WEB"}, []string{"Web-API", "web-frontend"}},
		{"query substring", store.WorkspaceFilter{Query: "api"}, []string{"Web-API"}},
		// _ and % are literal, not wildcards.
		{"query underscore literal", store.WorkspaceFilter{Query: "a_p"}, []string{"data_pipeline"}},
		{"query percent literal", store.WorkspaceFilter{Query: "100%"}, []string{"ml-100%"}},
		{"query no match", store.WorkspaceFilter{Query: "zzz"}, nil},
		{"status", store.WorkspaceFilter{Status: store.StatusRunning}, []string{"data_pipeline", "ml-100%", "web-frontend"}},
		{"owner+status", store.WorkspaceFilter{OwnerID: alice.ID, Status: store.StatusStopped}, []string{"Web-API"}},
		{"owner+query+status", store.WorkspaceFilter{OwnerID: bob.ID, Query: "ML", Status: store.StatusStopped}, []string{"ml-1000"}},
		{"unknown owner", store.WorkspaceFilter{OwnerID: "nobody"}, nil},
	}
	for _, tc := range cases {
		tc.f.Limit = 100
		got, total, err := s.ListWorkspaces(ctx, tc.f)
		noErr(t, err, tc.name)
		gotNames := names(got)
		if len(gotNames) == 0 {
			gotNames = nil
		}
		wantEqual(t, gotNames, tc.want, tc.name)
		if total != len(tc.want) {
			t.Fatalf("%s: total = %d, want %d", tc.name, total, len(tc.want))
		}
		for _, w := range got {
			wantOwner := map[string]string{alice.ID: "alice", bob.ID: "bob"}[w.OwnerID]
			if w.OwnerName != wantOwner {
				t.Fatalf("%s: %s OwnerName = %q, want %q", tc.name, w.Name, w.OwnerName, wantOwner)
			}
		}
	}

	// Listed rows are complete, identical to single reads.
	got, _, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{Limit: 500})
	noErr(t, err, "list all")
	for _, w := range got {
		one, err := s.GetWorkspace(ctx, w.ID)
		noErr(t, err, "get "+w.Name)
		wantEqual(t, w, one, "listed vs single read of "+w.Name)
	}
}

func testListWorkspacesPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "pager", store.RoleMember)
	other := newUser(t, s, "other", store.RoleMember)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("ws-%02d", i)
		newWorkspace(t, s, owner, name, store.StatusRunning)
		want = append(want, name)
		newWorkspace(t, s, other, fmt.Sprintf("zz-%02d", i), store.StatusRunning)
	}
	var seen []string
	for offset := 0; ; offset += 3 {
		page, total, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{OwnerID: owner.ID, Limit: 3, Offset: offset})
		noErr(t, err, fmt.Sprintf("page at offset %d", offset))
		if total != 7 {
			t.Fatalf("offset %d: total = %d, want 7", offset, total)
		}
		if len(page) > 3 {
			t.Fatalf("offset %d: page of %d exceeds limit 3", offset, len(page))
		}
		if len(page) == 0 {
			break
		}
		seen = append(seen, names(page)...)
	}
	wantEqual(t, seen, want, "pages concatenated")

	page, total, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{Limit: 5, Offset: 100})
	noErr(t, err, "offset past the end")
	if len(page) != 0 || total != 14 {
		t.Fatalf("offset past the end: %d rows, total %d; want 0 rows, total 14", len(page), total)
	}
}

func testListWorkspacesLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, limit := range []int{0, -1, 501} {
		if _, _, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{Limit: limit}); err == nil {
			t.Fatalf("ListWorkspaces accepted limit %d", limit)
		}
	}
	for _, limit := range []int{1, 500} {
		_, _, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{Limit: limit})
		noErr(t, err, fmt.Sprintf("limit %d", limit))
	}
	if _, _, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{Limit: 10, Offset: -1}); err == nil {
		t.Fatal("ListWorkspaces accepted a negative offset")
	}
}

func testAllWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	all, err := s.AllWorkspaces(ctx)
	noErr(t, err, "all workspaces on empty store")
	if len(all) != 0 {
		t.Fatalf("AllWorkspaces on empty store returned %d", len(all))
	}
	a := newUser(t, s, "a", store.RoleMember)
	b := newUser(t, s, "b", store.RoleMember)
	created := map[string]store.Workspace{}
	for i := range 12 {
		owner := a
		if i%2 == 1 {
			owner = b
		}
		w := newWorkspace(t, s, owner, fmt.Sprintf("w%02d", 11-i), store.StatusStopped)
		created[w.ID] = w
	}
	all, err = s.AllWorkspaces(ctx)
	noErr(t, err, "all workspaces")
	if len(all) != 12 {
		t.Fatalf("AllWorkspaces returned %d, want 12", len(all))
	}
	for i, w := range all {
		if want := fmt.Sprintf("w%02d", i); w.Name != want {
			t.Fatalf("AllWorkspaces[%d] = %s, want %s (ordered by name)", i, w.Name, want)
		}
		wantEqual(t, w, created[w.ID], "AllWorkspaces row "+w.Name)
	}
}

func testSetWorkspaceDesired(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "o", store.RoleMember)
	w := store.Workspace{Name: "d", OwnerID: owner.ID, ProjectPath: "/d", Image: "i",
		Desired: store.DesiredRunning, Status: store.StatusRunning, CreatedAt: base}
	noErr(t, s.CreateWorkspace(ctx, &w), "create")
	noErr(t, s.SetWorkspaceDesired(ctx, w.ID, store.DesiredStopped), "set desired")
	got, err := s.GetWorkspace(ctx, w.ID)
	noErr(t, err, "get")
	if got.Desired != store.DesiredStopped {
		t.Fatalf("Desired = %q, want stopped", got.Desired)
	}
	if !got.UpdatedAt.After(w.UpdatedAt) {
		t.Fatalf("UpdatedAt %v not advanced past %v", got.UpdatedAt, w.UpdatedAt)
	}
}

func testSetWorkspaceStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "o", store.RoleMember)
	w := newWorkspace(t, s, owner, "st", store.StatusCreating)

	obs1 := base.Add(time.Minute).In(time.FixedZone("X", -3*3600))
	noErr(t, s.SetWorkspaceStatus(ctx, w.ID, store.StatusUpdate{Status: store.StatusRunning, Detail: "up",
		ContainerID: ptr("abc123"), ObservedAt: obs1}), "status with container id")
	got, err := s.GetWorkspace(ctx, w.ID)
	noErr(t, err, "get")
	if got.Status != store.StatusRunning || got.StatusDetail != "up" || got.ContainerID != "abc123" {
		t.Fatalf("after first update: %+v", got)
	}
	if got.ObservedAt == nil || !got.ObservedAt.Equal(obs1) {
		t.Fatalf("ObservedAt = %v, want %v", got.ObservedAt, obs1)
	}
	wantUTC(t, *got.ObservedAt, "ObservedAt")

	// nil ContainerID leaves the stored id alone.
	obs2 := base.Add(2 * time.Minute)
	noErr(t, s.SetWorkspaceStatus(ctx, w.ID, store.StatusUpdate{Status: store.StatusError, Detail: "oom",
		ObservedAt: obs2}), "status without container id")
	got, err = s.GetWorkspace(ctx, w.ID)
	noErr(t, err, "get")
	if got.Status != store.StatusError || got.StatusDetail != "oom" || got.ContainerID != "abc123" {
		t.Fatalf("after nil-container update: %+v", got)
	}
	if got.ObservedAt == nil || !got.ObservedAt.Equal(obs2) {
		t.Fatalf("ObservedAt = %v, want %v", got.ObservedAt, obs2)
	}

	// A non-nil empty id clears it (container removed).
	noErr(t, s.SetWorkspaceStatus(ctx, w.ID, store.StatusUpdate{Status: store.StatusMissing,
		ContainerID: ptr(""), ObservedAt: obs2}), "clear container id")
	got, err = s.GetWorkspace(ctx, w.ID)
	noErr(t, err, "get")
	if got.Status != store.StatusMissing || got.ContainerID != "" || got.StatusDetail != "" {
		t.Fatalf("after clearing: %+v", got)
	}
	// Desired state is the user's, untouched by observations.
	if got.Desired != w.Desired {
		t.Fatalf("Desired changed to %q by a status update", got.Desired)
	}
}

func testDeleteWorkspace(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "o", store.RoleMember)
	w := newWorkspace(t, s, owner, "gone", store.StatusStopped)
	keep := newWorkspace(t, s, owner, "kept", store.StatusStopped)
	noErr(t, s.DeleteWorkspace(ctx, w.ID), "delete")
	_, err := s.GetWorkspace(ctx, w.ID)
	wantErr(t, err, store.ErrNotFound, "GetWorkspace after delete")
	_, err = s.WorkspaceByPath(ctx, w.ProjectPath)
	wantErr(t, err, store.ErrNotFound, "WorkspaceByPath after delete")
	wantErr(t, s.DeleteWorkspace(ctx, w.ID), store.ErrNotFound, "second delete")
	_, err = s.GetWorkspace(ctx, keep.ID)
	noErr(t, err, "other workspace survives")

	// The name and path are free again.
	again := newWorkspace(t, s, owner, "gone", store.StatusCreating)
	if again.ID == w.ID {
		t.Fatal("recreated workspace reused the deleted id")
	}
}

// ---------------------------------------------------------------------------
// timestamps

func testTimestampPrecision(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("odd", -(3*3600 + 30*60))
	in := time.Date(2024, 2, 29, 23, 59, 59, 987_654_321, zone)
	u := store.User{Username: "tp", PasswordHash: "h", Role: store.RoleMember,
		CreatedAt: in, UpdatedAt: in, LastLoginAt: ptr(in)}
	noErr(t, s.CreateUser(ctx, &u), "create user")
	got, err := s.GetUser(ctx, u.ID)
	noErr(t, err, "get user")
	for what, tm := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt, "LastLoginAt": *got.LastLoginAt} {
		wantUTC(t, tm, what)
		if d := in.Sub(tm); d < 0 || d >= time.Millisecond {
			// Stores may truncate below a millisecond, never round up or
			// lose the millisecond itself.
			t.Fatalf("%s = %v, want %v truncated by less than 1ms", what, tm, in)
		}
	}
	// The struct passed to Create is normalised to what reads return.
	wantEqual(t, got, u, "user as stored")

	// Millisecond-distinct times must stay distinct and ordered.
	owner := newUser(t, s, "tp-owner", store.RoleMember)
	for i, ms := range []int{999, 1000, 1001} {
		e := store.AuditEvent{At: base.Add(time.Duration(ms) * time.Millisecond), Action: "tick",
			ActorID: owner.ID, Detail: fmt.Sprint(i)}
		noErr(t, s.AppendAudit(ctx, &e), "append")
	}
	events, err := s.ListAudit(ctx, store.AuditFilter{Action: "tick", Limit: 10})
	noErr(t, err, "list audit")
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	for i := 0; i+1 < len(events); i++ {
		if !events[i].At.After(events[i+1].At) {
			t.Fatalf("event times not strictly decreasing: %v then %v", events[i].At, events[i+1].At)
		}
	}
}

// ---------------------------------------------------------------------------
// audit

func testAppendAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	e1 := store.AuditEvent{ActorID: "u1", ActorName: "alice", Action: "user.login", Result: "ok",
		IP: "198.51.100.7", UserAgent: "ua"}
	noErr(t, s.AppendAudit(ctx, &e1), "append e1")
	if e1.ID <= 0 {
		t.Fatalf("AppendAudit set ID %d, want > 0", e1.ID)
	}
	if e1.At.Before(before) || e1.At.After(time.Now().Add(time.Second)) {
		t.Fatalf("AppendAudit stamped At = %v, want about now", e1.At)
	}
	wantUTC(t, e1.At, "stamped At")

	e2 := store.AuditEvent{At: base, Action: "workspace.create", ResourceType: "workspace", ResourceID: "w1",
		Result: "error", Detail: "disk full"}
	noErr(t, s.AppendAudit(ctx, &e2), "append e2")
	if e2.ID <= e1.ID {
		t.Fatalf("IDs not increasing: %d then %d", e1.ID, e2.ID)
	}
	if !e2.At.Equal(base) {
		t.Fatalf("explicit At replaced: %v", e2.At)
	}

	got, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10})
	noErr(t, err, "list audit")
	wantEqual(t, got, []store.AuditEvent{e2, e1}, "ListAudit (newest first, full rows)")
}

func auditIDs(es []store.AuditEvent) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testListAuditFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	add := func(actor, action, rtype, rid, result string) int64 {
		t.Helper()
		e := store.AuditEvent{ActorID: actor, ActorName: actor, Action: action, ResourceType: rtype,
			ResourceID: rid, Result: result}
		noErr(t, s.AppendAudit(ctx, &e), "append "+action)
		return e.ID
	}
	e1 := add("u1", "user.login", "user", "u1", "ok")
	e2 := add("u1", "workspace.create", "workspace", "w1", "ok")
	e3 := add("u2", "workspace.delete", "workspace", "w1", "denied")
	e4 := add("u2", "workspaces.export", "workspace", "w2", "ok")
	e5 := add("", "user.login", "user", "", "denied")
	e6 := add("u1", "workspace.start", "workspace", "w2", "error")
	e7 := add("u3", "Workspace.create", "workspace", "w3", "ok")
	e8 := add("u3", "a_b", "", "", "ok")
	e9 := add("u3", "axb", "", "", "ok")

	cases := []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"none", store.AuditFilter{}, []int64{e9, e8, e7, e6, e5, e4, e3, e2, e1}},
		{"actor", store.AuditFilter{ActorID: "u1"}, []int64{e6, e2, e1}},
		{"action prefix", store.AuditFilter{Action: "workspace."}, []int64{e6, e3, e2}},
		{"action exact", store.AuditFilter{Action: "user.login"}, []int64{e5, e1}},
		{"action prefix without dot", store.AuditFilter{Action: "workspace"}, []int64{e6, e4, e3, e2}},
		{"action prefix wildcard literal", store.AuditFilter{Action: "a_"}, []int64{e8}},
		{"resource type", store.AuditFilter{ResourceType: "user"}, []int64{e5, e1}},
		{"resource", store.AuditFilter{ResourceType: "workspace", ResourceID: "w1"}, []int64{e3, e2}},
		{"result", store.AuditFilter{Result: "denied"}, []int64{e5, e3}},
		{"before id", store.AuditFilter{BeforeID: e3}, []int64{e2, e1}},
		{"combined", store.AuditFilter{ActorID: "u1", Action: "workspace.", Result: "ok"}, []int64{e2}},
		{"combined before", store.AuditFilter{ActorID: "u1", BeforeID: e6}, []int64{e2, e1}},
		{"no match", store.AuditFilter{ActorID: "nobody"}, []int64{}},
	}
	for _, tc := range cases {
		tc.f.Limit = 50
		got, err := s.ListAudit(ctx, tc.f)
		noErr(t, err, tc.name)
		wantEqual(t, auditIDs(got), tc.want, tc.name)
	}
}

func testListAuditPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []int64
	for i := range 11 {
		e := store.AuditEvent{Action: "page.test", Detail: fmt.Sprint(i), At: base.Add(time.Duration(i) * time.Second)}
		noErr(t, s.AppendAudit(ctx, &e), "append")
		want = append([]int64{e.ID}, want...)
	}
	var got []int64
	var before int64
	for pages := 0; ; pages++ {
		if pages > 11 {
			t.Fatal("paging does not terminate")
		}
		page, err := s.ListAudit(ctx, store.AuditFilter{Action: "page.", BeforeID: before, Limit: 4})
		noErr(t, err, "page")
		if len(page) > 4 {
			t.Fatalf("page of %d exceeds limit 4", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, auditIDs(page)...)
		before = page[len(page)-1].ID
	}
	wantEqual(t, got, want, "all pages, newest first")
}

func testListAuditLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, limit := range []int{0, -5, 501} {
		if _, err := s.ListAudit(ctx, store.AuditFilter{Limit: limit}); err == nil {
			t.Fatalf("ListAudit accepted limit %d", limit)
		}
	}
	for i := range 3 {
		e := store.AuditEvent{Action: "x", Detail: fmt.Sprint(i)}
		noErr(t, s.AppendAudit(ctx, &e), "append")
	}
	got, err := s.ListAudit(ctx, store.AuditFilter{Limit: 2})
	noErr(t, err, "limit 2")
	if len(got) != 2 {
		t.Fatalf("ListAudit with limit 2 returned %d", len(got))
	}
	_, err = s.ListAudit(ctx, store.AuditFilter{Limit: 500})
	noErr(t, err, "limit 500")
}

func testShares(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := newUser(t, s, "owner", store.RoleMember)
	bob := newUser(t, s, "Bob", store.RoleMember)
	amy := newUser(t, s, "amy", store.RoleViewer)
	w := newWorkspace(t, s, owner, "shared", store.StatusRunning)

	_, err := s.GetShare(ctx, w.ID, bob.ID)
	wantErr(t, err, store.ErrNotFound, "get missing share")
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: w.ID, UserID: bob.ID}), "share with bob")
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: w.ID, UserID: amy.ID, CanWrite: true}), "share with amy")
	sh, err := s.GetShare(ctx, w.ID, bob.ID)
	noErr(t, err, "get share")
	if sh.CanWrite || sh.Username != "Bob" || sh.CreatedAt.IsZero() {
		t.Fatalf("share read back as %+v", sh)
	}
	// Setting again updates write access in place.
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: w.ID, UserID: bob.ID, CanWrite: true}), "grant write")
	sh, _ = s.GetShare(ctx, w.ID, bob.ID)
	if !sh.CanWrite {
		t.Fatal("write not granted")
	}
	list, err := s.ListShares(ctx, w.ID)
	noErr(t, err, "list shares")
	if len(list) != 2 || list[0].Username != "amy" || list[1].Username != "Bob" {
		t.Fatalf("shares listed as %+v (want amy, Bob)", list)
	}
	wantErr(t, s.SetShare(ctx, store.Share{WorkspaceID: w.ID, UserID: "nosuchuser"}), store.ErrNotFound, "share with unknown user")
	noErr(t, s.DeleteShare(ctx, w.ID, amy.ID), "unshare amy")
	wantErr(t, s.DeleteShare(ctx, w.ID, amy.ID), store.ErrNotFound, "unshare twice")
	// Deleting the workspace takes its shares with it.
	noErr(t, s.DeleteWorkspace(ctx, w.ID), "delete workspace")
	_, err = s.GetShare(ctx, w.ID, bob.ID)
	wantErr(t, err, store.ErrNotFound, "share after workspace deletion")
}

func testListWorkspacesVisibleTo(t *testing.T, s store.Store) {
	ctx := t.Context()
	ann := newUser(t, s, "ann", store.RoleMember)
	ben := newUser(t, s, "ben", store.RoleMember)
	newWorkspace(t, s, ann, "ann-1", store.StatusRunning)
	shared := newWorkspace(t, s, ann, "ann-2", store.StatusRunning)
	newWorkspace(t, s, ben, "ben-1", store.StatusStopped)
	noErr(t, s.SetShare(ctx, store.Share{WorkspaceID: shared.ID, UserID: ben.ID}), "share")
	got, total, err := s.ListWorkspaces(ctx, store.WorkspaceFilter{VisibleTo: ben.ID, Limit: 10})
	noErr(t, err, "list visible to ben")
	wantEqual(t, names(got), []string{"ann-2", "ben-1"}, "ben sees his own and the shared one")
	wantEqual(t, total, 2, "total")
	got, _, _ = s.ListWorkspaces(ctx, store.WorkspaceFilter{VisibleTo: ben.ID, Status: store.StatusStopped, Limit: 10})
	wantEqual(t, names(got), []string{"ben-1"}, "with a status filter")
	got, _, _ = s.ListWorkspaces(ctx, store.WorkspaceFilter{VisibleTo: ann.ID, Limit: 10})
	wantEqual(t, names(got), []string{"ann-1", "ann-2"}, "ann sees only her own")
}
