package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"aicode/services/auth"
	"aicode/services/store"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "aicli ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "reset-password") {
		t.Errorf("help: %d", code)
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Errorf("unknown command: %d %q", code, errb.String())
	}
	t.Setenv("AICODE_LOG_LEVEL", "loud")
	errb.Reset()
	if code := run([]string{"migrate"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "AICODE_LOG_LEVEL") {
		t.Errorf("bad configuration: %d %q", code, errb.String())
	}
}

// An operator locked out of every admin account gets back in, and the
// disabled account is enabled again.
func TestMigrateAndResetPassword(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "a.db")
	t.Setenv("AICODE_DATA_DIR", dir)
	t.Setenv("DATABASE_URL", dbURL)

	var out, errb bytes.Buffer
	if code := run([]string{"migrate"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "applied 0001") {
		t.Fatalf("migrate: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"migrate"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("second migrate: %d %q", code, out.String())
	}

	ctx := context.Background()
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword("forgotten-password")
	u := &store.User{Username: "boss", PasswordHash: hash, Role: store.RoleAdmin}
	if err := st.CreateFirstAdmin(ctx, u); err != nil {
		t.Fatal(err)
	}
	st.SetUserDisabled(ctx, u.ID, true)
	st.Close()

	errb.Reset()
	if code := run([]string{"reset-password", "boss"}, strings.NewReader("short\n"), &out, &errb); code != 1 || !strings.Contains(errb.String(), "at least 10") {
		t.Errorf("short password: %d %q", code, errb.String())
	}
	if code := run([]string{"reset-password", "nobody"}, strings.NewReader("long-enough-password\n"), &out, &errb); code != 1 {
		t.Errorf("unknown user: %d", code)
	}
	out.Reset()
	if code := run([]string{"reset-password", "boss"}, strings.NewReader("brand-new-password\n"), &out, &errb); code != 0 {
		t.Fatalf("reset: %d %q", code, errb.String())
	}
	st, _ = store.Open(ctx, dbURL)
	defer st.Close()
	got, _ := st.GetUser(ctx, u.ID)
	if ok, _ := auth.CheckPassword(got.PasswordHash, "brand-new-password"); !ok || got.Disabled {
		t.Errorf("after reset: password ok=%v disabled=%v", ok, got.Disabled)
	}
	ev, _ := st.ListAudit(ctx, store.AuditFilter{Action: "user.password", Limit: 5})
	if len(ev) != 1 || !strings.Contains(ev[0].ActorName, "operator") {
		t.Errorf("reset not audited: %+v", ev)
	}
}
