-- Initial schema (SQLite).
--
-- Timestamps are TEXT in a fixed-width UTC format with microseconds
-- (2006-01-02T15:04:05.000000Z), written by the store itself, so that string
-- comparison is chronological comparison and values round-trip exactly.
-- Booleans are INTEGER 0/1.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL,
    -- username_key is the case-folded username, computed by the application
    -- so that uniqueness and lookups fold case identically on every dialect
    -- (SQLite's lower() only folds ASCII).
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    last_login_at TEXT
);

-- At most one row ever exists; inserting it in the same transaction as the
-- first admin makes initial setup a one-shot operation even under races.
CREATE TABLE app_setup (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    completed_at TEXT    NOT NULL
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE workspaces (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    owner_id      TEXT    NOT NULL REFERENCES users (id),
    project_path  TEXT    NOT NULL UNIQUE,
    created_dir   INTEGER NOT NULL DEFAULT 0 CHECK (created_dir IN (0, 1)),
    image         TEXT    NOT NULL,
    memory_mb     INTEGER NOT NULL DEFAULT 0,
    cpus          REAL    NOT NULL DEFAULT 0,
    pids_limit    INTEGER NOT NULL DEFAULT 0,
    desired_state TEXT    NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    status        TEXT    NOT NULL,
    status_detail TEXT    NOT NULL DEFAULT '',
    container_id  TEXT    NOT NULL DEFAULT '',
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    observed_at   TEXT
);
-- Serves "my workspaces, ordered by name" without a sort.
CREATE INDEX workspaces_owner_name ON workspaces (owner_id, name);

-- No foreign key to users: the audit trail must outlive the accounts it
-- mentions. AUTOINCREMENT guarantees ids are never reused, which keyset
-- paging (BeforeID) relies on.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT    NOT NULL,
    actor_id      TEXT    NOT NULL DEFAULT '',
    actor_name    TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL DEFAULT '',
    resource_id   TEXT    NOT NULL DEFAULT '',
    result        TEXT    NOT NULL DEFAULT '',
    detail        TEXT    NOT NULL DEFAULT '',
    ip            TEXT    NOT NULL DEFAULT '',
    user_agent    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id);
