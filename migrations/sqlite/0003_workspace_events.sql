-- What happened to each workspace's container (start, stop, die with its
-- exit code, OOM kill, restart...), as the engine reported it. Rows go with
-- their workspace; the app keeps the newest few hundred per workspace.
CREATE TABLE workspace_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    container_id TEXT    NOT NULL DEFAULT '',
    kind         TEXT    NOT NULL,
    at           TEXT    NOT NULL,
    exit_code    INTEGER,
    detail       TEXT    NOT NULL DEFAULT ''
);
-- The engine replays recent events when its stream reconnects; one event
-- is one row however often it is delivered.
CREATE UNIQUE INDEX workspace_events_once ON workspace_events (workspace_id, container_id, kind, at);
-- Serves a workspace's feed, newest first, and trimming it.
CREATE INDEX workspace_events_feed ON workspace_events (workspace_id, id);
-- Serves "recent OOM kills across the fleet".
CREATE INDEX workspace_events_kind_at ON workspace_events (kind, at);
