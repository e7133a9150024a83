-- Accounts of an external sign-in provider (Supabase) linked to local
-- users: the provider's stable user id (subject) maps to one local user,
-- created at their first sign-in. Local users keep their rows, roles and
-- workspaces whichever provider signs them in.
CREATE TABLE user_identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE UNIQUE INDEX user_identities_user ON user_identities (provider, user_id);

-- The provider's tokens behind a local session (access and refresh token,
-- sealed with the deployment's key), so the session can be refreshed and
-- revoked through the provider. They end with the session.
CREATE TABLE session_tokens (
    session_id    TEXT NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    access_token  TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
