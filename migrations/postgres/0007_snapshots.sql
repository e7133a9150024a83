-- Workspace snapshots: a tar archive of the project directory kept in the
-- blob store. Rows outlive nothing: no foreign key on the workspace, so the
-- snapshot service can remove the archives of a deleted workspace before
-- their rows (a sweep finds any left behind).
CREATE TABLE snapshots (
    id           TEXT    PRIMARY KEY,
    workspace_id TEXT    NOT NULL,
    created_by   TEXT    NOT NULL REFERENCES users (id),
    label        TEXT    NOT NULL DEFAULT '',
    -- Taken by the workspace's schedule (pruned by its keep-last count).
    scheduled    BOOLEAN NOT NULL DEFAULT FALSE,
    status       TEXT    NOT NULL CHECK (status IN ('creating', 'ready', 'failed')),
    error        TEXT    NOT NULL DEFAULT '',
    size_bytes   BIGINT  NOT NULL DEFAULT 0,
    file_count   BIGINT  NOT NULL DEFAULT 0,
    blob_key     TEXT    NOT NULL,
    created_at   TIMESTAMPTZ    NOT NULL,
    updated_at   TIMESTAMPTZ    NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX snapshots_workspace ON snapshots (workspace_id, created_at);
CREATE INDEX snapshots_status ON snapshots (status, updated_at);

-- One optional schedule per workspace: a snapshot every interval_hours,
-- keeping the newest keep_last scheduled ones.
CREATE TABLE snapshot_schedules (
    workspace_id   TEXT    PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    interval_hours INTEGER NOT NULL CHECK (interval_hours > 0),
    keep_last      INTEGER NOT NULL CHECK (keep_last > 0),
    next_run_at    TIMESTAMPTZ    NOT NULL,
    updated_by     TEXT    NOT NULL REFERENCES users (id),
    updated_at     TIMESTAMPTZ    NOT NULL
);
CREATE INDEX snapshot_schedules_due ON snapshot_schedules (next_run_at);
