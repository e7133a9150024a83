-- Claude Code tasks: a prompt run by the CLI in a workspace's container.
-- The row is the summary; the transcript (every line the CLI printed) is
-- kept in the blob store, and task_events indexes it.
CREATE TABLE tasks (
    id               TEXT    PRIMARY KEY,
    workspace_id     TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_by       TEXT    NOT NULL REFERENCES users (id),
    -- A follow-up continues its parent's Claude session.
    parent_id        TEXT    REFERENCES tasks (id) ON DELETE SET NULL,
    prompt           TEXT    NOT NULL,
    options          TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL,
    detail           TEXT    NOT NULL DEFAULT '',
    error_kind       TEXT    NOT NULL DEFAULT '',
    session_id       TEXT    NOT NULL DEFAULT '',
    model            TEXT    NOT NULL DEFAULT '',
    branch           TEXT    NOT NULL DEFAULT '',
    base_sha         TEXT    NOT NULL DEFAULT '',
    commit_sha       TEXT    NOT NULL DEFAULT '',
    files            TEXT    NOT NULL DEFAULT '',
    diff_key         TEXT    NOT NULL DEFAULT '',
    transcript_key   TEXT    NOT NULL DEFAULT '',
    events           BIGINT  NOT NULL DEFAULT 0,
    turns            BIGINT  NOT NULL DEFAULT 0,
    cost_usd         DOUBLE PRECISION NOT NULL DEFAULT 0,
    input_tokens     BIGINT  NOT NULL DEFAULT 0,
    output_tokens    BIGINT  NOT NULL DEFAULT 0,
    cache_read       BIGINT  NOT NULL DEFAULT 0,
    cache_write      BIGINT  NOT NULL DEFAULT 0,
    duration_ms      BIGINT  NOT NULL DEFAULT 0,
    exit_code        INTEGER,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    runner           TEXT    NOT NULL DEFAULT '',
    heartbeat_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_workspace ON tasks (workspace_id, created_at);
CREATE INDEX tasks_user ON tasks (created_by, created_at);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE INDEX tasks_status ON tasks (status, created_at);

-- One row per line of a task's transcript: what it was and where it is.
CREATE TABLE task_events (
    task_id  TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq      BIGINT  NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    type     TEXT    NOT NULL,
    subtype  TEXT    NOT NULL DEFAULT '',
    tool     TEXT    NOT NULL DEFAULT '',
    summary  TEXT    NOT NULL DEFAULT '',
    is_error BOOLEAN NOT NULL DEFAULT FALSE,
    pos      BIGINT  NOT NULL,
    size     BIGINT  NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Claude credentials set by a user for themselves or by an owner for a
-- workspace, sealed with the deployment's key (never stored in clear).
CREATE TABLE credentials (
    scope      TEXT NOT NULL CHECK (scope IN ('user', 'workspace')),
    owner_id   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('api_key', 'oauth_token')),
    sealed     TEXT NOT NULL,
    hint       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, owner_id)
);
