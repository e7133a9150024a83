// Package pgtest gives each test its own empty PostgreSQL schema on the
// server named by AICODE_TEST_POSTGRES_URL, so tests run in parallel against
// one database and leave nothing behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Env names the variable holding the server URL.
const Env = "AICODE_TEST_POSTGRES_URL"

// BaseURL returns the configured server URL. It is required: CI always sets
// it, so a missing value fails the test rather than skipping it.
func BaseURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(Env)
	if raw == "" {
		t.Fatalf("%s is not set; the PostgreSQL tests need a server, e.g.\n"+
			"  export %s='postgres://aicode:aicode@127.0.0.1:5432/aicode_test?sslmode=disable'\n"+
			"(the role needs CREATE on the database; each test uses its own schema; scripts/test-env.sh sets this up)", Env, Env)
	}
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		t.Fatalf("%s must be a postgres:// URL, got %q", Env, raw)
	}
	return raw
}

var (
	adminMu sync.Mutex
	admins  = map[string]*sql.DB{}
)

func admin(t testing.TB, base string) *sql.DB {
	t.Helper()
	adminMu.Lock()
	defer adminMu.Unlock()
	if db := admins[base]; db != nil {
		return db
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", Env, err)
	}
	db.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("connect to %s: %v", Env, err)
	}
	admins[base] = db
	return db
}

// URL creates a fresh schema and returns a URL that selects it through the
// search_path runtime parameter. The schema is dropped when the test ends;
// close every connection to it before then (cleanups registered later run
// first).
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	db := admin(t, base)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", Env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
