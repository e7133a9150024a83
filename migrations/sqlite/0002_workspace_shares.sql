-- Workspaces shared with other users: they see the workspace and watch its
-- terminals; with can_write they may also type into them.
CREATE TABLE workspace_shares (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    can_write    INTEGER NOT NULL DEFAULT 0 CHECK (can_write IN (0, 1)),
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
-- Serves "workspaces shared with me".
CREATE INDEX workspace_shares_user ON workspace_shares (user_id);
