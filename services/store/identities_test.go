package store_test

import (
	"errors"
	"testing"
	"time"

	"aicode/services/store"
)

func TestSQLiteIdentities(t *testing.T) {
	s, _ := openSQLiteRaw(t)
	testIdentities(t, migrated(t, s))
}

func TestPostgresIdentities(t *testing.T) {
	p := newPGSchemas(t)
	testIdentities(t, migrated(t, p.open(t, p.url(t))))
}

func testIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := &store.User{Username: "ada", PasswordHash: "!", Role: store.RoleMember}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	other := &store.User{Username: "bob", PasswordHash: "!", Role: store.RoleMember}
	if err := s.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}

	if _, _, err := s.GetIdentity(ctx, "supabase", "sub-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing identity: %v", err)
	}
	id := &store.Identity{Provider: "supabase", Subject: "sub-1", UserID: u.ID, Email: "ada@example.com"}
	if err := s.LinkIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	gotID, gotU, err := s.GetIdentity(ctx, "supabase", "sub-1")
	if err != nil {
		t.Fatal(err)
	}
	if gotID != *id || gotU.ID != u.ID || gotU.Username != "ada" || gotU.Role != store.RoleMember {
		t.Fatalf("identity %+v user %+v, want %+v", gotID, gotU, *id)
	}
	// One link per provider user, and one per local user and provider.
	if err := s.LinkIdentity(ctx, &store.Identity{Provider: "supabase", Subject: "sub-1", UserID: other.ID}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second link of a subject: %v", err)
	}
	if err := s.LinkIdentity(ctx, &store.Identity{Provider: "supabase", Subject: "sub-2", UserID: u.ID}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second subject for a user: %v", err)
	}
	if err := s.LinkIdentity(ctx, &store.Identity{Provider: "supabase", Subject: "sub-3", UserID: "no-such-user"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("link to a missing user: %v", err)
	}
	if err := s.SetIdentityEmail(ctx, "supabase", "sub-1", "ada@new.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetIdentityEmail(ctx, "supabase", "nobody", "x@y"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("email of a missing link: %v", err)
	}
	all, err := s.ListIdentities(ctx, "supabase")
	if err != nil || len(all) != 1 || all[u.ID].Email != "ada@new.example" {
		t.Fatalf("list: %v %+v", err, all)
	}

	// Session tokens live and die with their session.
	now := time.Now().UTC()
	sess := store.Session{ID: "sess-1", UserID: u.ID, CSRFToken: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSessionTokens(ctx, sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no tokens yet: %v", err)
	}
	exp := now.Add(time.Hour).Truncate(time.Second)
	tok := store.SessionTokens{SessionID: sess.ID, Subject: "sub-1", AccessToken: "sealed-a", RefreshToken: "sealed-r", ExpiresAt: exp}
	if err := s.SaveSessionTokens(ctx, tok); err != nil {
		t.Fatal(err)
	}
	tok.AccessToken, tok.RefreshToken, tok.ExpiresAt = "sealed-a2", "sealed-r2", exp.Add(time.Hour)
	if err := s.SaveSessionTokens(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSessionTokens(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "sealed-a2" || got.RefreshToken != "sealed-r2" || !got.ExpiresAt.Equal(exp.Add(time.Hour)) || got.Subject != "sub-1" {
		t.Fatalf("tokens %+v", got)
	}
	if err := s.SaveSessionTokens(ctx, store.SessionTokens{SessionID: "no-session", Subject: "x", AccessToken: "a", RefreshToken: "r", ExpiresAt: exp}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tokens for a missing session: %v", err)
	}
	if err := s.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSessionTokens(ctx, sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tokens outlived their session: %v", err)
	}
}
