package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"aicode/migrations"
)

// migrationName is NNNN_name.sql; anything else in a dialect folder is a
// mistake (a typo'd extension would otherwise be silently skipped).
var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version string // file name without .sql, e.g. "0001_init"
	sql     string
}

// loadMigrations reads the dialect's migrations in apply order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var out []migration
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("read migrations %s: bad file name %q (want NNNN_name.sql)", dir, e.Name())
		}
		// Two files with the same number would apply in an order that
		// depends only on their names; refuse rather than guess.
		if other, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("read migrations %s: %q and %q share number %s", dir, other, e.Name(), m[1])
		}
		seen[m[1]] = e.Name()
		body, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", dir, e.Name(), err)
		}
		out = append(out, migration{version: strings.TrimSuffix(e.Name(), ".sql"), sql: string(body)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read migrations %s: %w", dir, errNoMigrations)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func asSQLStore(op string, s Store) (*sqlStore, error) {
	ss, ok := s.(*sqlStore)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported store type %T", op, s)
	}
	return ss, nil
}

// Migrate applies the store's pending migrations in order and returns the
// versions it applied (empty when the schema is current).
//
// Each migration runs in its own transaction together with its
// schema_migrations row, so a failure leaves the database at the last
// complete version. Concurrent Migrate calls from several processes are
// safe: on PostgreSQL each transaction takes an advisory lock and re-checks
// the version under it; on SQLite transactions begin IMMEDIATE, which
// serialises them the same way.
func Migrate(ctx context.Context, s Store) (applied []string, err error) {
	const op = "migrate"
	ss, err := asSQLStore(op, s)
	if err != nil {
		return nil, err
	}
	list, err := loadMigrations(migrations.FS, ss.d.name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ss.migrationTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, ss.d.migrationsDDL)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: create schema_migrations: %w", op, err)
	}
	applied = []string{}
	for _, m := range list {
		ran := false
		err := ss.migrationTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, ss.d.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return fmt.Errorf("check version: %w", err)
			}
			if n > 0 {
				return nil
			}
			// No arguments: both drivers then accept several statements in
			// one call (pgx switches to the simple protocol).
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, ss.d.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
				m.version, ss.ts(ss.now())); err != nil {
				return fmt.Errorf("record version: %w", err)
			}
			ran = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("%s: apply %s: %w", op, m.version, err)
		}
		if ran {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// migrationTx runs fn in a transaction on the pool (never a caller's
// transaction: DDL must commit on its own), holding the dialect's migration
// lock.
func (s *sqlStore) migrationTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// PendingMigrations lists the versions Migrate would apply, without changing
// anything (it does not even create schema_migrations).
func PendingMigrations(ctx context.Context, s Store) ([]string, error) {
	const op = "pending migrations"
	ss, err := asSQLStore(op, s)
	if err != nil {
		return nil, err
	}
	list, err := loadMigrations(migrations.FS, ss.d.name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	done, err := ss.appliedVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	pending := []string{}
	for _, m := range list {
		if !done[m.version] {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}

func (s *sqlStore) appliedVersions(ctx context.Context) (map[string]bool, error) {
	var exists int
	if err := s.db.QueryRowContext(ctx, s.d.migrationsTableExists).Scan(&exists); err != nil {
		return nil, fmt.Errorf("check schema_migrations: %w", err)
	}
	done := map[string]bool{}
	if exists == 0 {
		return done, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return done, nil
}

// errNoMigrations guards against an embed pattern that silently matched
// nothing for a dialect, which would make Migrate a no-op.
var errNoMigrations = errors.New("no migration files")
