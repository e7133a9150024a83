package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// MaxPageSize bounds ListWorkspaces and ListAudit so no request can make the
// server materialise an unbounded result.
const MaxPageSize = 500

// queryer is what *sql.DB and *sql.Tx have in common, letting one set of
// methods run either standalone or inside Tx.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlStore implements Store for every dialect over database/sql.
type sqlStore struct {
	db *sql.DB
	tx *sql.Tx // non-nil when bound to a transaction
	q  queryer
	d  *dialect
	// now stamps the times the store sets itself (updated_at, defaults for
	// zero CreatedAt/At); one field rather than scattered time.Now calls.
	now func() time.Time
	// queries counts statements sent, shared with tx-bound copies.
	queries *atomic.Int64
	stmts   *stmtCache
}

// stmtCache keeps prepared statements by query text, so hot queries (the
// session lookup, the workspace list) are parsed once per connection rather
// than on every call. Dynamic queries have a bounded number of shapes; the
// cap is a safety net.
type stmtCache struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

const maxCachedStmts = 256

func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[query]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.m[query]; st != nil {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		// The unprepared call reports the error with its context.
		return nil
	}
	c.m[query] = st
	return st
}

// peek returns query's statement if it is prepared already.
func (c *stmtCache) peek(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

var _ Store = (*sqlStore)(nil)

func newSQLStore(db *sql.DB, d *dialect) *sqlStore {
	return &sqlStore{db: db, q: db, d: d, now: time.Now, queries: new(atomic.Int64), stmts: &stmtCache{m: map[string]*sql.Stmt{}}}
}

// QueryCounter is implemented by stores that count the statements they
// send; tests use it to prove that pages cost a bounded number of queries.
type QueryCounter interface {
	QueryCount() int64
}

func (s *sqlStore) QueryCount() int64 { return s.queries.Load() }

// stmt returns a cached prepared statement for query outside transactions
// (statements inside one are rare and short-lived), or nil.
func (s *sqlStore) stmt(ctx context.Context, query string) *sql.Stmt {
	if s.tx != nil {
		// Inside a transaction only statements prepared before it are
		// used: preparing now could wait for the connection the
		// transaction holds (a one-connection pool would deadlock).
		if st := s.stmts.peek(query); st != nil {
			return s.tx.StmtContext(ctx, st)
		}
		return nil
	}
	return s.stmts.get(ctx, s.db, query)
}

// prepare caches query's statement ahead of a transaction that uses it.
func (s *sqlStore) prepare(ctx context.Context, query string) {
	if s.tx == nil {
		s.stmts.get(ctx, s.db, s.d.rebind(query))
	}
}

func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.queries.Add(1)
	q := s.d.rebind(query)
	if st := s.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.q.ExecContext(ctx, q, args...)
}

func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s.queries.Add(1)
	q := s.d.rebind(query)
	if st := s.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.q.QueryContext(ctx, q, args...)
}

func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s.queries.Add(1)
	q := s.d.rebind(query)
	if st := s.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.q.QueryRowContext(ctx, q, args...)
}

// ts converts a time into the bound value for the dialect, at stored precision.
func (s *sqlStore) ts(t time.Time) any {
	return s.d.timeArg(normTime(t))
}

func (s *sqlStore) nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.ts(*t)
}

// fail wraps err with the operation name, translating driver errors into the
// package sentinels while keeping the driver error in the chain for logs.
func (s *sqlStore) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case s.d.isUnique(err):
		return fmt.Errorf("%s: %w: %w", op, ErrConflict, err)
	case s.d.isForeignKey(err):
		// The only foreign keys point at users, so a violation means the
		// referenced user does not exist.
		return fmt.Errorf("%s: user %w: %w", op, ErrNotFound, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// one turns "no row matched" of an UPDATE/DELETE into ErrNotFound.
func (s *sqlStore) one(op string, res sql.Result, err error) error {
	if err != nil {
		return s.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: rows affected: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns 16 lowercase base32 characters (80 random bits): enough to
// never collide in practice, short enough for URLs and container names.
func newID() string {
	var b [10]byte
	// crypto/rand.Read never returns an error on supported platforms.
	_, _ = rand.Read(b[:])
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// usernameKey is the folded form that uniqueness and lookups use, computed
// here rather than in SQL because SQLite's lower() ignores non-ASCII.
func usernameKey(username string) string {
	return strings.ToLower(username)
}

// escapeLike escapes LIKE metacharacters for use with ESCAPE '\'.
func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// ---------------------------------------------------------------------------
// Lifecycle

func (s *sqlStore) Dialect() string { return s.d.name }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.d.name, err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	if s.tx != nil {
		// Closing the pool from inside a transaction would strand it.
		return errors.New("close store: store is bound to a transaction")
	}
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.d.name, err)
	}
	return nil
}

// Tx runs fn in a transaction. fn's error is returned unchanged (it is the
// caller's own error); only begin/commit failures are wrapped here.
func (s *sqlStore) Tx(ctx context.Context, fn func(Store) error) (err error) {
	if s.tx != nil {
		// Nested calls join the outer transaction: database/sql has no
		// savepoints, and a second transaction on SQLite would deadlock
		// against the first.
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		// Runs on error and on panic alike, so a panicking fn never leaves
		// a connection holding locks.
		if !committed {
			_ = tx.Rollback()
		}
	}()
	bound := &sqlStore{db: s.db, tx: tx, q: tx, d: s.d, now: s.now, queries: s.queries, stmts: s.stmts}
	if err := fn(bound); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		committed = true // Commit already ended the transaction either way.
		return fmt.Errorf("commit transaction: %w", err)
	}
	committed = true
	return nil
}

// ---------------------------------------------------------------------------
// Users

const userCols = `u.id, u.username, u.password_hash, u.role, u.disabled, u.created_at, u.updated_at, u.last_login_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(r rowScanner, u *User) error {
	return r.Scan(&u.ID, &u.Username, &u.PasswordHash, (*string)(&u.Role), &u.Disabled,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, nullTimeCol{&u.LastLoginAt})
}

// prepareUser fills defaults and normalises u in place so that the caller's
// struct equals what a later read returns.
func (s *sqlStore) prepareUser(u *User) error {
	if u.Username == "" {
		return errors.New("username is empty")
	}
	if !u.Role.Valid() {
		return fmt.Errorf("invalid role %q", u.Role)
	}
	if u.ID == "" {
		u.ID = newID()
	}
	now := s.now()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.CreatedAt = normTime(u.CreatedAt)
	u.UpdatedAt = normTime(u.UpdatedAt)
	if u.LastLoginAt != nil {
		t := normTime(*u.LastLoginAt)
		u.LastLoginAt = &t
	}
	return nil
}

func (s *sqlStore) insertUser(ctx context.Context, u *User) error {
	_, err := s.exec(ctx, `INSERT INTO users
		(id, username, username_key, password_hash, role, disabled, created_at, updated_at, last_login_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, usernameKey(u.Username), u.PasswordHash, string(u.Role), u.Disabled,
		s.ts(u.CreatedAt), s.ts(u.UpdatedAt), s.nullTS(u.LastLoginAt))
	return err
}

// CreateFirstAdmin creates u as an enabled admin (whatever Role/Disabled it
// carried) only if no user exists yet.
func (s *sqlStore) CreateFirstAdmin(ctx context.Context, u *User) error {
	const op = "create first admin"
	u.Role = RoleAdmin
	u.Disabled = false
	if err := s.prepareUser(u); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.Tx(ctx, func(st Store) error {
		ts := st.(*sqlStore)
		var n int
		if err := ts.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
			return ts.fail(op, err)
		}
		if n > 0 {
			return fmt.Errorf("%s: %w", op, ErrSetupDone)
		}
		// The count alone is racy under PostgreSQL's read committed: two
		// transactions can both see zero users. The single-row app_setup
		// table turns that race into a unique violation for the loser.
		if _, err := ts.exec(ctx, `INSERT INTO app_setup (id, completed_at) VALUES (1, ?)`, ts.ts(u.CreatedAt)); err != nil {
			if ts.d.isUnique(err) {
				return fmt.Errorf("%s: %w", op, ErrSetupDone)
			}
			return ts.fail(op, err)
		}
		if err := ts.insertUser(ctx, u); err != nil {
			return ts.fail(op, err)
		}
		return nil
	})
}

func (s *sqlStore) CreateUser(ctx context.Context, u *User) error {
	const op = "create user"
	if err := s.prepareUser(u); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.fail(op, s.insertUser(ctx, u))
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	var u User
	err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.id = ?`, id), &u)
	if err != nil {
		return User{}, s.fail("get user", err)
	}
	return u, nil
}

func (s *sqlStore) GetUserByUsername(ctx context.Context, username string) (User, error) {
	var u User
	err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.username_key = ?`, usernameKey(username)), &u)
	if err != nil {
		return User{}, s.fail("get user by username", err)
	}
	return u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) {
	const op = "list users"
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users u ORDER BY u.username_key, u.id`)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		if err := scanUser(rows, &u); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

func (s *sqlStore) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, s.fail("count users", err)
	}
	return n, nil
}

func (s *sqlStore) CountActiveAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE role = ? AND disabled = ?`, string(RoleAdmin), false).Scan(&n)
	if err != nil {
		return 0, s.fail("count active admins", err)
	}
	return n, nil
}

func (s *sqlStore) UpdateUserRole(ctx context.Context, id string, role Role) error {
	const op = "update user role"
	if !role.Valid() {
		return fmt.Errorf("%s: invalid role %q", op, role)
	}
	res, err := s.exec(ctx, `UPDATE users SET role = ?, updated_at = ? WHERE id = ?`, string(role), s.ts(s.now()), id)
	return s.one(op, res, err)
}

func (s *sqlStore) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	res, err := s.exec(ctx, `UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`, disabled, s.ts(s.now()), id)
	return s.one("set user disabled", res, err)
}

func (s *sqlStore) SetUserPassword(ctx context.Context, id, hash string) error {
	res, err := s.exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, hash, s.ts(s.now()), id)
	return s.one("set user password", res, err)
}

// TouchUserLogin records a login without bumping updated_at, which tracks
// changes to the account rather than its use.
func (s *sqlStore) TouchUserLogin(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, s.ts(at), id)
	return s.one("touch user login", res, err)
}

// ---------------------------------------------------------------------------
// Sessions

const sessionCols = `s.id, s.user_id, s.csrf_token, s.created_at, s.expires_at, s.ip, s.user_agent`

func (s *sqlStore) CreateSession(ctx context.Context, sess Session) error {
	const op = "create session"
	if sess.ID == "" {
		return fmt.Errorf("%s: id is empty", op)
	}
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, `INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at, ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, sess.UserID, sess.CSRFToken, s.ts(sess.CreatedAt), s.ts(sess.ExpiresAt), sess.IP, sess.UserAgent)
	return s.fail(op, err)
}

// GetSession treats a session as expired from ExpiresAt on (inclusive), the
// same boundary DeleteExpiredSessions uses, so a session is never both
// rejected and kept.
func (s *sqlStore) GetSession(ctx context.Context, id string, now time.Time) (SessionUser, error) {
	var su SessionUser
	ss, u := &su.Session, &su.User
	err := s.queryRow(ctx, `SELECT `+sessionCols+`, `+userCols+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = ? AND s.expires_at > ?`, id, s.ts(now)).Scan(
		&ss.ID, &ss.UserID, &ss.CSRFToken, timeCol{&ss.CreatedAt}, timeCol{&ss.ExpiresAt}, &ss.IP, &ss.UserAgent,
		&u.ID, &u.Username, &u.PasswordHash, (*string)(&u.Role), &u.Disabled,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, nullTimeCol{&u.LastLoginAt})
	if err != nil {
		return SessionUser{}, s.fail("get session", err)
	}
	return su, nil
}

func (s *sqlStore) ExtendSession(ctx context.Context, id string, expiresAt time.Time) error {
	res, err := s.exec(ctx, `UPDATE sessions SET expires_at = ? WHERE id = ?`, s.ts(expiresAt), id)
	return s.one("extend session", res, err)
}

// DeleteSession is idempotent: logging out twice, or with a session that
// already expired and was swept, is not an error.
func (s *sqlStore) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return s.fail("delete session", err)
}

func (s *sqlStore) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	return s.fail("delete user sessions", err)
}

func (s *sqlStore) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	const op = "delete expired sessions"
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, s.ts(now))
	if err != nil {
		return 0, s.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: rows affected: %w", op, err)
	}
	return n, nil
}

// ---------------------------------------------------------------------------
// Workspaces

const workspaceSelect = `SELECT w.id, w.name, w.owner_id, u.username, w.project_path, w.created_dir, w.image,
	w.memory_mb, w.cpus, w.pids_limit, w.desired_state, w.status, w.status_detail, w.container_id,
	w.created_at, w.updated_at, w.observed_at
	FROM workspaces w JOIN users u ON u.id = w.owner_id`

func scanWorkspace(r rowScanner, w *Workspace) error {
	return r.Scan(&w.ID, &w.Name, &w.OwnerID, &w.OwnerName, &w.ProjectPath, &w.CreatedDir, &w.Image,
		&w.Limits.MemoryMB, &w.Limits.CPUs, &w.Limits.PidsLimit, (*string)(&w.Desired), (*string)(&w.Status),
		&w.StatusDetail, &w.ContainerID, timeCol{&w.CreatedAt}, timeCol{&w.UpdatedAt}, nullTimeCol{&w.ObservedAt})
}

func validDesired(d DesiredState) bool {
	return d == DesiredRunning || d == DesiredStopped
}

// CreateWorkspace inserts w, filling ID and timestamps when zero and
// OwnerName from the owner's record, so w matches a later read.
func (s *sqlStore) CreateWorkspace(ctx context.Context, w *Workspace) error {
	const op = "create workspace"
	if w.Name == "" || w.ProjectPath == "" || w.OwnerID == "" {
		return fmt.Errorf("%s: name, project path and owner are required", op)
	}
	if !validDesired(w.Desired) {
		return fmt.Errorf("%s: invalid desired state %q", op, w.Desired)
	}
	if w.ID == "" {
		w.ID = newID()
	}
	now := s.now()
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now
	}
	if w.UpdatedAt.IsZero() {
		w.UpdatedAt = w.CreatedAt
	}
	w.CreatedAt = normTime(w.CreatedAt)
	w.UpdatedAt = normTime(w.UpdatedAt)
	if w.ObservedAt != nil {
		t := normTime(*w.ObservedAt)
		w.ObservedAt = &t
	}
	_, err := s.exec(ctx, `INSERT INTO workspaces
		(id, name, owner_id, project_path, created_dir, image, memory_mb, cpus, pids_limit,
		 desired_state, status, status_detail, container_id, created_at, updated_at, observed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Name, w.OwnerID, w.ProjectPath, w.CreatedDir, w.Image,
		w.Limits.MemoryMB, w.Limits.CPUs, w.Limits.PidsLimit,
		string(w.Desired), string(w.Status), w.StatusDetail, w.ContainerID,
		s.ts(w.CreatedAt), s.ts(w.UpdatedAt), s.nullTS(w.ObservedAt))
	if err != nil {
		return s.fail(op, err)
	}
	if err := s.queryRow(ctx, `SELECT username FROM users WHERE id = ?`, w.OwnerID).Scan(&w.OwnerName); err != nil {
		return s.fail(op+": owner name", err)
	}
	return nil
}

func (s *sqlStore) getWorkspace(ctx context.Context, op, where string, arg any) (Workspace, error) {
	var w Workspace
	if err := scanWorkspace(s.queryRow(ctx, workspaceSelect+` WHERE `+where, arg), &w); err != nil {
		return Workspace{}, s.fail(op, err)
	}
	return w, nil
}

func (s *sqlStore) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	return s.getWorkspace(ctx, "get workspace", `w.id = ?`, id)
}

func (s *sqlStore) GetWorkspaceByName(ctx context.Context, name string) (Workspace, error) {
	return s.getWorkspace(ctx, "get workspace by name", `w.name = ?`, name)
}

func (s *sqlStore) WorkspaceByPath(ctx context.Context, path string) (Workspace, error) {
	return s.getWorkspace(ctx, "workspace by path", `w.project_path = ?`, path)
}

func (s *sqlStore) scanWorkspaces(rows *sql.Rows, op string) ([]Workspace, error) {
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		var w Workspace
		if err := scanWorkspace(rows, &w); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// ListWorkspaces runs exactly two bounded queries: the page and its count.
// They are not in one transaction; a concurrent change can make the total
// disagree with the page by one, which paging UIs tolerate.
func (s *sqlStore) ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, int, error) {
	const op = "list workspaces"
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return nil, 0, fmt.Errorf("%s: limit %d out of range 1..%d", op, f.Limit, MaxPageSize)
	}
	if f.Offset < 0 {
		return nil, 0, fmt.Errorf("%s: negative offset %d", op, f.Offset)
	}
	var where []string
	var args []any
	switch {
	case f.VisibleTo != "":
		where = append(where, `(w.owner_id = ? OR EXISTS (SELECT 1 FROM workspace_shares sh WHERE sh.workspace_id = w.id AND sh.user_id = ?))`)
		args = append(args, f.VisibleTo, f.VisibleTo)
	case f.OwnerID != "":
		where = append(where, `w.owner_id = ?`)
		args = append(args, f.OwnerID)
	}
	if f.Query != "" {
		// Fold in Go and in SQL alike; names are expected to be ASCII, where
		// SQLite's lower() agrees with strings.ToLower.
		where = append(where, `lower(w.name) LIKE ? ESCAPE '\'`)
		args = append(args, "%"+escapeLike(strings.ToLower(f.Query))+"%")
	}
	if f.Status != "" {
		where = append(where, `w.status = ?`)
		args = append(args, string(f.Status))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}

	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM workspaces w`+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.fail(op+": count", err)
	}
	pageArgs := append(append([]any(nil), args...), f.Limit, f.Offset)
	rows, err := s.query(ctx, workspaceSelect+cond+` ORDER BY w.name, w.id LIMIT ? OFFSET ?`, pageArgs...)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	list, err := s.scanWorkspaces(rows, op)
	if err != nil {
		return nil, 0, err
	}
	return list, total, nil
}

func (s *sqlStore) AllWorkspaces(ctx context.Context) ([]Workspace, error) {
	const op = "all workspaces"
	rows, err := s.query(ctx, workspaceSelect+` ORDER BY w.name, w.id`)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return s.scanWorkspaces(rows, op)
}

func (s *sqlStore) SetWorkspaceDesired(ctx context.Context, id string, d DesiredState) error {
	const op = "set workspace desired state"
	if !validDesired(d) {
		return fmt.Errorf("%s: invalid desired state %q", op, d)
	}
	res, err := s.exec(ctx, `UPDATE workspaces SET desired_state = ?, updated_at = ? WHERE id = ?`,
		string(d), s.ts(s.now()), id)
	return s.one(op, res, err)
}

// SetWorkspaceStatus records an observation. It leaves updated_at alone:
// the reconciler observes constantly, and updated_at should reflect what
// users changed, not what the engine reported. A zero ObservedAt means now.
func (s *sqlStore) SetWorkspaceStatus(ctx context.Context, id string, u StatusUpdate) error {
	observed := u.ObservedAt
	if observed.IsZero() {
		observed = s.now()
	}
	var res sql.Result
	var err error
	if u.ContainerID == nil {
		res, err = s.exec(ctx, `UPDATE workspaces SET status = ?, status_detail = ?, observed_at = ? WHERE id = ?`,
			string(u.Status), u.Detail, s.ts(observed), id)
	} else {
		res, err = s.exec(ctx, `UPDATE workspaces SET status = ?, status_detail = ?, observed_at = ?, container_id = ? WHERE id = ?`,
			string(u.Status), u.Detail, s.ts(observed), *u.ContainerID, id)
	}
	return s.one("set workspace status", res, err)
}

func (s *sqlStore) DeleteWorkspace(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM workspaces WHERE id = ?`, id)
	return s.one("delete workspace", res, err)
}

// ---------------------------------------------------------------------------
// Shares

func (s *sqlStore) SetShare(ctx context.Context, sh Share) error {
	if sh.CreatedAt.IsZero() {
		sh.CreatedAt = s.now()
	}
	// An upsert in the syntax SQLite and PostgreSQL share.
	_, err := s.exec(ctx, `INSERT INTO workspace_shares (workspace_id, user_id, can_write, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET can_write = excluded.can_write`,
		sh.WorkspaceID, sh.UserID, sh.CanWrite, s.ts(sh.CreatedAt))
	return s.fail("set share", err)
}

const shareSelect = `SELECT sh.workspace_id, sh.user_id, u.username, sh.can_write, sh.created_at
	FROM workspace_shares sh JOIN users u ON u.id = sh.user_id`

func scanShare(r rowScanner, sh *Share) error {
	return r.Scan(&sh.WorkspaceID, &sh.UserID, &sh.Username, &sh.CanWrite, timeCol{&sh.CreatedAt})
}

func (s *sqlStore) GetShare(ctx context.Context, workspaceID, userID string) (Share, error) {
	var sh Share
	err := scanShare(s.queryRow(ctx, shareSelect+` WHERE sh.workspace_id = ? AND sh.user_id = ?`, workspaceID, userID), &sh)
	return sh, s.fail("get share", err)
}

func (s *sqlStore) ListShares(ctx context.Context, workspaceID string) ([]Share, error) {
	const op = "list shares"
	rows, err := s.query(ctx, shareSelect+` WHERE sh.workspace_id = ? ORDER BY u.username_key`, workspaceID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []Share
	for rows.Next() {
		var sh Share
		if err := scanShare(rows, &sh); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, sh)
	}
	return out, s.fail(op, rows.Err())
}

func (s *sqlStore) DeleteShare(ctx context.Context, workspaceID, userID string) error {
	res, err := s.exec(ctx, `DELETE FROM workspace_shares WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID)
	return s.one("delete share", res, err)
}

// ---------------------------------------------------------------------------
// Audit

// AppendAudit inserts e and sets its ID (and At, when zero, to now).
func (s *sqlStore) AppendAudit(ctx context.Context, e *AuditEvent) error {
	const op = "append audit event"
	if e.Action == "" {
		return fmt.Errorf("%s: action is empty", op)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = normTime(e.At)
	// RETURNING works on both dialects, unlike LastInsertId which pgx's
	// database/sql driver does not implement.
	err := s.queryRow(ctx, `INSERT INTO audit_events
		(at, actor_id, actor_name, action, resource_type, resource_id, result, detail, ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		s.ts(e.At), e.ActorID, e.ActorName, e.Action, e.ResourceType, e.ResourceID,
		e.Result, e.Detail, e.IP, e.UserAgent).Scan(&e.ID)
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	const op = "list audit events"
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return nil, fmt.Errorf("%s: limit %d out of range 1..%d", op, f.Limit, MaxPageSize)
	}
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+` = ?`)
			args = append(args, v)
		}
	}
	eq("actor_id", f.ActorID)
	eq("resource_type", f.ResourceType)
	eq("resource_id", f.ResourceID)
	eq("result", f.Result)
	if f.Action != "" {
		// substr rather than LIKE: SQLite's LIKE is case-insensitive, and
		// this keeps prefix matching exact and identical on both dialects.
		where = append(where, `substr(action, 1, ?) = ?`)
		args = append(args, utf8.RuneCountInString(f.Action), f.Action)
	}
	if f.BeforeID > 0 {
		where = append(where, `id < ?`)
		args = append(args, f.BeforeID)
	}
	q := `SELECT id, at, actor_id, actor_name, action, resource_type, resource_id, result, detail, ip, user_agent
		FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)

	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		if err := rows.Scan(&e.ID, timeCol{&e.At}, &e.ActorID, &e.ActorName, &e.Action, &e.ResourceType,
			&e.ResourceID, &e.Result, &e.Detail, &e.IP, &e.UserAgent); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}
