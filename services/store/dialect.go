package store

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect captures everything that differs between the backends, so the
// queries themselves are written once (with ? placeholders) in sql.go.
type dialect struct {
	name string
	// numbered: the driver wants $1, $2... instead of ?.
	numbered bool
	// timeArg converts an already-normalised UTC time into the value bound
	// for a timestamp column.
	timeArg      func(time.Time) any
	isUnique     func(error) bool
	isForeignKey func(error) bool

	// Migration bookkeeping.
	migrationsDDL string
	// migrationLock runs first in every migration transaction; empty when
	// the transaction itself already serialises writers.
	migrationLock string
	// migrationsTableExists returns one row with a count > 0 when the
	// schema_migrations table exists, without creating it.
	migrationsTableExists string
}

// sqliteTimeLayout is fixed-width (always six fractional digits, always Z) so
// that lexical order of the stored TEXT equals chronological order; the
// standard RFC3339Nano layout trims trailing zeros and would not sort.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

var sqliteDialect = &dialect{
	name:     "sqlite",
	numbered: false,
	timeArg: func(t time.Time) any {
		return t.UTC().Format(sqliteTimeLayout)
	},
	isUnique: func(err error) bool {
		code, ok := sqliteCode(err)
		return ok && (code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	isForeignKey: func(err error) bool {
		code, ok := sqliteCode(err)
		return ok && code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
	migrationsDDL: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    TEXT PRIMARY KEY,
	applied_at TEXT NOT NULL
)`,
	// Migration transactions begin IMMEDIATE (see Open), which already takes
	// the database write lock before anything is read.
	migrationLock:         "",
	migrationsTableExists: `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`,
}

// pgMigrationLockKey is an arbitrary constant shared by every process that
// migrates this application's schema ("aicode" in ASCII).
const pgMigrationLockKey = 0x6169636f6465

var postgresDialect = &dialect{
	name:     "postgres",
	numbered: true,
	timeArg: func(t time.Time) any {
		return t.UTC()
	},
	isUnique: func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "23505"
	},
	isForeignKey: func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "23503"
	},
	migrationsDDL: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    TEXT PRIMARY KEY,
	applied_at TIMESTAMPTZ NOT NULL
)`,
	// Read committed transactions do not serialise two processes running the
	// same migration, and even CREATE TABLE IF NOT EXISTS can fail when
	// raced, so every migration transaction takes a transaction-scoped
	// advisory lock first.
	migrationLock:         "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(pgMigrationLockKey, 10) + ")",
	migrationsTableExists: `SELECT COUNT(*) FROM (SELECT to_regclass('schema_migrations') AS t) r WHERE r.t IS NOT NULL`,
}

func sqliteCode(err error) (int, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	return e.Code(), true
}

// rebind rewrites ? placeholders for dialects with numbered parameters. It
// skips quoted literals and identifiers so a '?' inside a string survives.
func (d *dialect) rebind(query string) string {
	if !d.numbered || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
			b.WriteByte(c)
		case c == '\'' || c == '"':
			quote = c
			b.WriteByte(c)
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// normTime is the one place that decides stored precision: UTC, truncated to
// the microsecond that both SQLite's text format and PostgreSQL's
// timestamptz hold, so a value written reads back Equal and DeepEqual.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// timeCol scans a NOT NULL timestamp from either dialect: PostgreSQL yields
// time.Time, SQLite yields the TEXT written by sqliteDialect.timeArg.
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(src any) error {
	if src == nil {
		return errors.New("scan time: unexpected NULL")
	}
	t, err := parseTimeValue(src)
	if err != nil {
		return err
	}
	*c.dst = t
	return nil
}

// nullTimeCol is timeCol for nullable columns, mapping NULL to a nil pointer.
type nullTimeCol struct{ dst **time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.dst = nil
		return nil
	}
	t, err := parseTimeValue(src)
	if err != nil {
		return err
	}
	*c.dst = &t
	return nil
}

func parseTimeValue(src driver.Value) (time.Time, error) {
	switch v := src.(type) {
	case time.Time:
		return normTime(v), nil
	case string:
		return parseTimeText(v)
	case []byte:
		return parseTimeText(string(v))
	default:
		return time.Time{}, fmt.Errorf("scan time: unsupported type %T", src)
	}
}

func parseTimeText(s string) (time.Time, error) {
	// RFC3339Nano parsing accepts any number of fractional digits, so this
	// also reads values written by hand or by older layouts.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("scan time %q: %w", s, err)
	}
	return normTime(t), nil
}
