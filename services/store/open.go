package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// sqlitePragmas are applied, in order, on every new connection (modernc
// runs _pragma parameters per connection), so pool churn cannot lose them:
//   - busy_timeout makes contending writers wait instead of failing with
//     SQLITE_BUSY. It comes first because switching to WAL itself needs a
//     lock that a concurrently opening process may hold.
//   - WAL lets readers proceed while one writer commits.
//   - foreign_keys is off by default in SQLite and the schema relies on it
//     (session cascade, workspace owner).
//   - synchronous=NORMAL is durable enough under WAL and much faster.
var sqlitePragmas = []struct{ name, value string }{
	{"busy_timeout", "10000"},
	{"journal_mode", "WAL"},
	{"foreign_keys", "1"},
	{"synchronous", "NORMAL"},
}

// Open connects to the database named by databaseURL without migrating it:
//
//	sqlite:<path>, sqlite://<path>, file:<path>[?...], or a bare path -> SQLite
//	postgres://... or postgresql://...                                  -> PostgreSQL
//
// The connection is verified with a ping so configuration errors surface at
// startup rather than on the first request.
func Open(ctx context.Context, databaseURL string) (Store, error) {
	if databaseURL == "" {
		return nil, fmt.Errorf("open store: empty database URL")
	}
	scheme := urlScheme(databaseURL)
	var (
		s   *sqlStore
		err error
	)
	switch scheme {
	case "postgres", "postgresql":
		s, err = openPostgres(databaseURL)
	case "sqlite":
		path := strings.TrimPrefix(databaseURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		s, err = openSQLite(path)
	case "file", "":
		s, err = openSQLite(databaseURL)
	default:
		return nil, fmt.Errorf("open store: unsupported database URL scheme %q (want sqlite: or postgres://)", scheme)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// urlScheme returns the lower-cased scheme, or "" for a plain path. A
// one-letter scheme is treated as a Windows drive letter, i.e. a path.
func urlScheme(raw string) string {
	i := strings.IndexByte(raw, ':')
	if i < 2 {
		return ""
	}
	scheme := raw[:i]
	for j, c := range scheme {
		isAlpha := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !isAlpha && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return ""
		}
	}
	return strings.ToLower(scheme)
}

func openPostgres(databaseURL string) (*sqlStore, error) {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Keep the whole pool when idle: a burst that needs every connection
	// would otherwise pay for new server backends each time.
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	// Recycle connections so server-side restarts, failovers and pooler
	// rebalancing are picked up without manual intervention.
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return newSQLStore(db, postgresDialect), nil
}

// openSQLite accepts a path or a file: URI, optionally with query
// parameters; the caller's own parameters win over our defaults.
func openSQLite(target string) (*sqlStore, error) {
	// Only file: names are parsed as URIs by SQLite; a plain path is opened
	// literally, so characters like % or # in it keep their meaning.
	rest, isURI := strings.CutPrefix(target, "file:")
	path, rawQuery, _ := strings.Cut(rest, "?")
	if path == "" {
		return nil, fmt.Errorf("open sqlite: empty path in %q", target)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: bad query in %q: %w", target, err)
	}

	memory := path == ":memory:" || q.Get("mode") == "memory"
	if !memory {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("open sqlite: create directory %s: %w", dir, err)
			}
		}
	}

	have := map[string]bool{}
	for _, p := range q["_pragma"] {
		name, _, _ := strings.Cut(p, "(")
		have[strings.ToLower(strings.TrimSpace(name))] = true
	}
	for _, p := range sqlitePragmas {
		if memory && p.name == "journal_mode" {
			continue // WAL does not apply to in-memory databases
		}
		if !have[p.name] {
			q.Add("_pragma", p.name+"("+p.value+")")
		}
	}
	// A deferred transaction that reads and then writes must upgrade its
	// lock, and two such transactions deadlock (SQLITE_BUSY regardless of
	// busy_timeout). Taking the write lock at BEGIN avoids that.
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}

	dsn := path + "?" + q.Encode()
	if isURI {
		dsn = "file:" + dsn
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if memory {
		// Each connection to :memory: is a separate database; keep exactly
		// one alive forever so the data does too.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		// SQLite allows one writer at a time but many WAL readers; a few
		// connections let reads proceed while a write is in progress.
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	return newSQLStore(db, sqliteDialect), nil
}
