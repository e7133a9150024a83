package store

import (
	"context"
	"fmt"
	"time"
)

// Identity links an external sign-in provider's user (Supabase: its user
// id, the token's sub) to a local user.
type Identity struct {
	Provider  string
	Subject   string
	UserID    string
	Email     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SessionTokens are a provider's tokens behind a local session. The token
// fields hold sealed values; the store never sees them in clear.
type SessionTokens struct {
	SessionID string
	// Subject is the provider's user the tokens belong to.
	Subject      string
	AccessToken  string
	RefreshToken string
	// ExpiresAt is the access token's expiry.
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// LinkIdentity stores a new link; ErrConflict when the provider's user is
// linked already (or the local user has another link with the provider).
func (s *sqlStore) LinkIdentity(ctx context.Context, id *Identity) error {
	const op = "link identity"
	if id.Provider == "" || id.Subject == "" || id.UserID == "" {
		return fmt.Errorf("%s: provider, subject and user are required", op)
	}
	now := normTime(s.now())
	if id.CreatedAt.IsZero() {
		id.CreatedAt = now
	}
	id.CreatedAt = normTime(id.CreatedAt)
	id.UpdatedAt = id.CreatedAt
	_, err := s.exec(ctx, `INSERT INTO user_identities (provider, subject, user_id, email, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)`, id.Provider, id.Subject, id.UserID, id.Email, s.ts(id.CreatedAt), s.ts(id.UpdatedAt))
	return s.fail(op, err)
}

// GetIdentity returns a provider user's link and the local user.
func (s *sqlStore) GetIdentity(ctx context.Context, provider, subject string) (Identity, User, error) {
	var (
		id Identity
		u  User
	)
	err := s.queryRow(ctx, `SELECT i.provider, i.subject, i.user_id, i.email, i.created_at, i.updated_at, `+userCols+`
		FROM user_identities i JOIN users u ON u.id = i.user_id
		WHERE i.provider = ? AND i.subject = ?`, provider, subject).Scan(
		&id.Provider, &id.Subject, &id.UserID, &id.Email, timeCol{&id.CreatedAt}, timeCol{&id.UpdatedAt},
		&u.ID, &u.Username, &u.PasswordHash, (*string)(&u.Role), &u.Disabled,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, nullTimeCol{&u.LastLoginAt})
	if err != nil {
		return Identity{}, User{}, s.fail("get identity", err)
	}
	return id, u, nil
}

// ListIdentities returns every link of a provider, by local user id.
func (s *sqlStore) ListIdentities(ctx context.Context, provider string) (map[string]Identity, error) {
	const op = "list identities"
	rows, err := s.query(ctx, `SELECT provider, subject, user_id, email, created_at, updated_at FROM user_identities WHERE provider = ?`, provider)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := map[string]Identity{}
	for rows.Next() {
		var id Identity
		if err := rows.Scan(&id.Provider, &id.Subject, &id.UserID, &id.Email, timeCol{&id.CreatedAt}, timeCol{&id.UpdatedAt}); err != nil {
			return nil, s.fail(op, err)
		}
		out[id.UserID] = id
	}
	return out, s.fail(op, rows.Err())
}

// SetIdentityEmail records the provider's current email for a link.
func (s *sqlStore) SetIdentityEmail(ctx context.Context, provider, subject, email string) error {
	res, err := s.exec(ctx, `UPDATE user_identities SET email = ?, updated_at = ? WHERE provider = ? AND subject = ?`,
		email, s.ts(s.now()), provider, subject)
	return s.one("set identity email", res, err)
}

// SaveSessionTokens stores or replaces a session's provider tokens. The
// session must exist (ErrNotFound otherwise).
func (s *sqlStore) SaveSessionTokens(ctx context.Context, t SessionTokens) error {
	const op = "save session tokens"
	if t.SessionID == "" || t.Subject == "" || t.AccessToken == "" || t.RefreshToken == "" {
		return fmt.Errorf("%s: session, subject and tokens are required", op)
	}
	_, err := s.exec(ctx, `INSERT INTO session_tokens (session_id, subject, access_token, refresh_token, expires_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (session_id) DO UPDATE SET subject = excluded.subject, access_token = excluded.access_token,
			refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		t.SessionID, t.Subject, t.AccessToken, t.RefreshToken, s.ts(t.ExpiresAt), s.ts(s.now()))
	if err != nil && s.d.isForeignKey(err) {
		return fmt.Errorf("%s: session %w", op, ErrNotFound)
	}
	return s.fail(op, err)
}

// GetSessionTokens returns a session's provider tokens (ErrNotFound if none).
func (s *sqlStore) GetSessionTokens(ctx context.Context, sessionID string) (SessionTokens, error) {
	var t SessionTokens
	err := s.queryRow(ctx, `SELECT session_id, subject, access_token, refresh_token, expires_at, updated_at
		FROM session_tokens WHERE session_id = ?`, sessionID).Scan(
		&t.SessionID, &t.Subject, &t.AccessToken, &t.RefreshToken, timeCol{&t.ExpiresAt}, timeCol{&t.UpdatedAt})
	if err != nil {
		return SessionTokens{}, s.fail("get session tokens", err)
	}
	return t, nil
}
