package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"aicode/migrations"
	"aicode/services/store"
	"aicode/services/store/storetest"
	"aicode/testutil/pgtest"
)

// ---------------------------------------------------------------------------
// SQLite

func openSQLiteRaw(t *testing.T) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "store.db")
	s, err := store.Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func migrated(t *testing.T, s store.Store) store.Store {
	t.Helper()
	if _, err := store.Migrate(t.Context(), s); err != nil {
		t.Fatalf("migrate %s: %v", s.Dialect(), err)
	}
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openSQLiteRaw(t)
		return migrated(t, s)
	})
}

func TestSQLiteMigrate(t *testing.T) {
	testMigrate(t, func(t *testing.T) store.Store {
		s, _ := openSQLiteRaw(t)
		return s
	})
}

func TestSQLiteConcurrentMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	testConcurrentMigrate(t, "sqlite", func(t *testing.T) store.Store {
		s, err := store.Open(t.Context(), "sqlite:"+path)
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestOpenSQLiteForms(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, url, file string }{
		{"scheme", "sqlite:" + filepath.Join(dir, "a", "one.db"), filepath.Join(dir, "a", "one.db")},
		{"scheme slashes", "sqlite://" + filepath.Join(dir, "b", "two.db"), filepath.Join(dir, "b", "two.db")},
		{"file uri", "file:" + filepath.Join(dir, "c", "three.db"), filepath.Join(dir, "c", "three.db")},
		{"file uri with query", "file:" + filepath.Join(dir, "c", "four.db") + "?_pragma=busy_timeout(500)", filepath.Join(dir, "c", "four.db")},
		{"bare path", filepath.Join(dir, "d", "e", "five.db"), filepath.Join(dir, "d", "e", "five.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer s.Close()
			if s.Dialect() != "sqlite" {
				t.Fatalf("Dialect() = %q, want sqlite", s.Dialect())
			}
			if _, err := store.Migrate(t.Context(), s); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if _, err := os.Stat(tc.file); err != nil {
				t.Fatalf("database file not where expected: %v", err)
			}
			// A WAL file next to the database shows the journal_mode pragma
			// took effect.
			if _, err := os.Stat(tc.file + "-wal"); err != nil {
				t.Fatalf("no WAL file after a write: %v", err)
			}
		})
	}
}

func TestOpenSQLiteMemory(t *testing.T) {
	s, err := store.Open(t.Context(), "sqlite::memory:")
	if err != nil {
		t.Fatalf("open in-memory: %v", err)
	}
	defer s.Close()
	migrated(t, s)
	// The schema must still be there on the next query: one pooled
	// connection holds the whole database.
	if _, err := s.CountUsers(t.Context()); err != nil {
		t.Fatalf("count users on in-memory store: %v", err)
	}
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	for _, u := range []string{"mysql://user@host/db", "redis://localhost", ""} {
		s, err := store.Open(t.Context(), u)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded, want error", u)
		}
		if u != "" && !strings.Contains(err.Error(), strings.SplitN(u, ":", 2)[0]) {
			t.Fatalf("Open(%q) error %q does not name the scheme", u, err)
		}
	}
}

// ---------------------------------------------------------------------------
// PostgreSQL

// pgSchemas hands out isolated schemas on one server (see pgtest).
type pgSchemas struct{}

func newPGSchemas(t *testing.T) *pgSchemas {
	pgtest.BaseURL(t)
	return &pgSchemas{}
}

func (p *pgSchemas) url(t *testing.T) string { return pgtest.URL(t) }

func (p *pgSchemas) open(t *testing.T, dbURL string) store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	// Registered after the schema's cleanup, so it runs first: connections
	// close before the schema is dropped.
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	p := newPGSchemas(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := p.open(t, p.url(t))
		if s.Dialect() != "postgres" {
			t.Fatalf("Dialect() = %q, want postgres", s.Dialect())
		}
		return migrated(t, s)
	})
}

func TestPostgresMigrate(t *testing.T) {
	p := newPGSchemas(t)
	testMigrate(t, func(t *testing.T) store.Store {
		return p.open(t, p.url(t))
	})
}

func TestPostgresConcurrentMigrate(t *testing.T) {
	p := newPGSchemas(t)
	shared := p.url(t)
	testConcurrentMigrate(t, "postgres", func(t *testing.T) store.Store {
		return p.open(t, shared)
	})
}

// ---------------------------------------------------------------------------
// migrations, shared by both dialects

func wantVersions(t *testing.T, dialect string) []string {
	t.Helper()
	files, err := fs.Glob(migrations.FS, dialect+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no embedded migrations for %s (err %v)", dialect, err)
	}
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".sql"))
	}
	sort.Strings(out)
	return out
}

func testMigrate(t *testing.T, openRaw func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := openRaw(t)
	want := wantVersions(t, s.Dialect())

	pending, err := store.PendingMigrations(ctx, s)
	if err != nil {
		t.Fatalf("pending before migrate: %v", err)
	}
	if !reflect.DeepEqual(pending, want) {
		t.Fatalf("pending before migrate = %v, want %v", pending, want)
	}
	// Unmigrated means no tables: a read must fail rather than look empty.
	if _, err := s.CountUsers(ctx); err == nil {
		t.Fatal("CountUsers succeeded before migrating")
	}

	applied, err := store.Migrate(ctx, s)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if !reflect.DeepEqual(applied, want) {
		t.Fatalf("first migrate applied %v, want %v", applied, want)
	}

	applied, err = store.Migrate(ctx, s)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	pending, err = store.PendingMigrations(ctx, s)
	if err != nil {
		t.Fatalf("pending after migrate: %v", err)
	}
	if len(pending) != 0 {
		t.Fatalf("pending after migrate = %v, want none", pending)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers after migrate = %d, %v; want 0, nil", n, err)
	}

	// Migrate reaches under the interface for the connection pool and
	// dialect, so a Store it did not create must be refused, not guessed at.
	if _, err := store.Migrate(ctx, foreignStore{s}); err == nil {
		t.Fatal("Migrate accepted a Store implementation it did not create")
	}
}

// foreignStore is a Store implementation other than the package's own.
type foreignStore struct{ store.Store }

// testConcurrentMigrate simulates several processes starting at once
// against one fresh database: every version must be applied exactly once
// and no process may fail.
func testConcurrentMigrate(t *testing.T, dialect string, openShared func(t *testing.T) store.Store) {
	const procs = 4
	stores := make([]store.Store, procs)
	for i := range stores {
		stores[i] = openShared(t)
	}
	var (
		mu    sync.Mutex
		all   []string
		errs  []error
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			applied, err := store.Migrate(t.Context(), s)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, applied...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent migrate: %v", err)
	}
	sort.Strings(all)
	if want := wantVersions(t, dialect); !reflect.DeepEqual(all, want) {
		t.Fatalf("versions applied across processes = %v, want each of %v exactly once", all, want)
	}
}
