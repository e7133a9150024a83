// Package auth holds built-in accounts: first-run setup, login with rate
// limiting, server-side sessions, CSRF tokens, user administration and the
// authorization policy.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"aicode/services/audit"
	"aicode/services/store"
	"aicode/services/validation"
)

var (
	// ErrInvalidCredentials covers unknown users, wrong passwords and
	// disabled accounts alike, so a login form reveals nothing.
	ErrInvalidCredentials = errors.New("wrong username or password")
	// ErrUnauthenticated: no valid session.
	ErrUnauthenticated = errors.New("please sign in")
	// ErrSetupDone: the first admin exists already.
	ErrSetupDone = errors.New("setup has already been completed")
	// ErrUserNotFound: no such user.
	ErrUserNotFound = errors.New("user not found")
	// ErrLastAdmin protects the only remaining enabled admin.
	ErrLastAdmin = errors.New("this is the last active admin; make another user admin first")
	// ErrSelf: admins cannot disable or demote themselves.
	ErrSelf = errors.New("you cannot do that to your own account")
)

// RateLimitedError says how long to wait before trying again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many sign-in attempts; try again in %s", e.RetryAfter.Round(time.Second))
}

// Options configure the service.
type Options struct {
	// Secret keys the anonymous CSRF tokens (login and setup forms).
	Secret     []byte
	SessionTTL time.Duration
	// LoginLimit is the number of failed attempts allowed per username and
	// address per window; each address alone gets five times that.
	LoginLimit int
	Limiter    Limiter
}

// Service implements built-in accounts.
type Service struct {
	store    store.Store
	audit    *audit.Recorder
	log      *slog.Logger
	opts     Options
	now      func() time.Time
	sessions *sessionCache
	lookups  singleflight.Group
}

// NewService returns the accounts service.
func NewService(s store.Store, rec *audit.Recorder, log *slog.Logger, opts Options) *Service {
	return &Service{store: s, audit: rec, log: log, opts: opts, now: time.Now, sessions: newSessionCache()}
}

var usernameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,31}$`)

// NormalizeUsername lower-cases and trims a username.
func NormalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

func validateNewUser(username, password string, role store.Role) error {
	errs := validation.Errors{}
	if !usernameRe.MatchString(username) {
		errs.Add("username", "use 2–32 characters: letters, digits, dot, dash or underscore, starting with a letter or digit")
	}
	if err := ValidatePassword(password); err != nil {
		errs.Add("password", err.Error())
	}
	if !role.Valid() {
		errs.Add("role", "choose admin, member or viewer")
	}
	return errs.Err()
}

// NeedsSetup reports whether no user exists yet.
func (s *Service) NeedsSetup(ctx context.Context) (bool, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("count users: %w", err)
	}
	return n == 0, nil
}

// Login is a successful sign-in: the cookie token and the session it opens.
type Login struct {
	Token   string
	Session store.Session
	User    store.User
}

// Setup creates the first admin and signs them in.
func (s *Service) Setup(ctx context.Context, username, password string) (Login, error) {
	username = NormalizeUsername(username)
	if err := validateNewUser(username, password, store.RoleAdmin); err != nil {
		return Login{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return Login{}, err
	}
	u := &store.User{Username: username, PasswordHash: hash, Role: store.RoleAdmin}
	if err := s.store.CreateFirstAdmin(ctx, u); err != nil {
		if errors.Is(err, store.ErrSetupDone) {
			return Login{}, ErrSetupDone
		}
		return Login{}, fmt.Errorf("create first admin: %w", err)
	}
	s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: u.ID, Name: u.Username}, Action: "setup.complete", ResourceType: "user", ResourceID: u.ID})
	return s.openSession(ctx, *u)
}

// Login checks credentials, rate-limited per username+address and per
// address, and opens a session.
func (s *Service) Login(ctx context.Context, username, password string) (Login, error) {
	username = NormalizeUsername(username)
	ip := audit.MetaFrom(ctx).IP
	userKey, ipKey := "login:"+ip+":"+username, "login-ip:"+ip
	if blocked, wait := s.opts.Limiter.Blocked(userKey, s.opts.LoginLimit); blocked {
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: username}, Action: "auth.login", ResourceType: "user", Result: audit.ResultDenied, Detail: "rate limited"})
		return Login{}, &RateLimitedError{RetryAfter: wait}
	}
	if blocked, wait := s.opts.Limiter.Blocked(ipKey, 5*s.opts.LoginLimit); blocked {
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: username}, Action: "auth.login", ResourceType: "user", Result: audit.ResultDenied, Detail: "rate limited"})
		return Login{}, &RateLimitedError{RetryAfter: wait}
	}
	if len(password) > MaxPasswordLen {
		password = password[:MaxPasswordLen+1] // still wrong, but bounded work
	}
	u, err := s.store.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Login{}, fmt.Errorf("look up user: %w", err)
	}
	hash := dummyHash
	if err == nil {
		hash = u.PasswordHash
	}
	ok, cerr := CheckPassword(hash, password)
	if cerr != nil {
		s.log.Error("stored password hash unreadable", "user", u.ID, "err", cerr)
	}
	if err != nil || !ok || u.Disabled {
		s.opts.Limiter.Hit(userKey)
		s.opts.Limiter.Hit(ipKey)
		detail := "wrong username or password"
		if err == nil && ok && u.Disabled {
			detail = "account disabled"
		}
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: u.ID, Name: username}, Action: "auth.login", ResourceType: "user", ResourceID: u.ID, Result: audit.ResultDenied, Detail: detail})
		return Login{}, ErrInvalidCredentials
	}
	s.opts.Limiter.Reset(userKey)
	if err := s.store.TouchUserLogin(ctx, u.ID, s.now().UTC()); err != nil {
		s.log.Warn("record last login", "user", u.ID, "err", err)
	}
	s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: u.ID, Name: u.Username}, Action: "auth.login", ResourceType: "user", ResourceID: u.ID})
	return s.openSession(ctx, u)
}

func (s *Service) openSession(ctx context.Context, u store.User) (Login, error) {
	token, err := randomToken(32)
	if err != nil {
		return Login{}, err
	}
	csrf, err := randomToken(32)
	if err != nil {
		return Login{}, err
	}
	m := audit.MetaFrom(ctx)
	now := s.now().UTC()
	sess := store.Session{
		ID:        SessionID(token),
		UserID:    u.ID,
		CSRFToken: csrf,
		CreatedAt: now,
		ExpiresAt: now.Add(s.opts.SessionTTL),
		IP:        m.IP,
		UserAgent: truncate(m.UserAgent, 300),
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return Login{}, fmt.Errorf("create session: %w", err)
	}
	return Login{Token: token, Session: sess, User: u}, nil
}

// Authenticated is a valid session and its principal.
type Authenticated struct {
	Principal Principal
	Session   store.Session
	// Extended: the session's expiry moved; the cookie should follow.
	Extended bool
	// Bearer: authenticated by an access token in the Authorization
	// header (Supabase API clients), not a cookie; Session has no id or
	// CSRF token, and no CSRF check applies (a browser never adds the
	// header on its own).
	Bearer bool
}

// Authenticate resolves a session cookie token. Sessions of disabled users
// are refused. Sessions past half their lifetime are extended, so active
// users stay signed in.
func (s *Service) Authenticate(ctx context.Context, token string) (Authenticated, error) {
	if token == "" || len(token) > 128 {
		return Authenticated{}, ErrUnauthenticated
	}
	now := s.now().UTC()
	id := SessionID(token)
	su, cached := s.sessions.get(id, now)
	if !cached {
		// Concurrent requests of one browser share a single lookup.
		// The lookup must not fail because the first caller went away.
		lctx := context.WithoutCancel(ctx)
		v, err, _ := s.lookups.Do(id, func() (any, error) { return s.store.GetSession(lctx, id, now) })
		if errors.Is(err, store.ErrNotFound) {
			return Authenticated{}, ErrUnauthenticated
		}
		if err != nil {
			return Authenticated{}, fmt.Errorf("load session: %w", err)
		}
		su = v.(store.SessionUser)
	}
	if su.User.Disabled {
		return Authenticated{}, ErrUnauthenticated
	}
	extended := false
	if su.Session.ExpiresAt.Sub(now) < s.opts.SessionTTL/2 {
		exp := now.Add(s.opts.SessionTTL)
		if err := s.store.ExtendSession(ctx, su.Session.ID, exp); err == nil {
			su.Session.ExpiresAt, extended = exp, true
		}
	}
	if !cached || extended {
		s.sessions.put(su, now)
	}
	return Authenticated{
		Principal: Principal{UserID: su.User.ID, Username: su.User.Username, Role: su.User.Role},
		Session:   su.Session,
		Extended:  extended,
	}, nil
}

// Logout ends the session behind token.
func (s *Service) Logout(ctx context.Context, p Principal, token string) error {
	s.sessions.drop(SessionID(token))
	if err := s.store.DeleteSession(ctx, SessionID(token)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "auth.logout", ResourceType: "user", ResourceID: p.UserID})
	return nil
}

// PruneSessions deletes expired sessions.
func (s *Service) PruneSessions(ctx context.Context) (int64, error) {
	return s.store.DeleteExpiredSessions(ctx, s.now().UTC())
}

// SessionID is the stored form of a session token.
func SessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AnonCSRFToken derives the CSRF token for a visitor without a session from
// their random CSRF cookie.
func (s *Service) AnonCSRFToken(cookie string) string {
	mac := hmac.New(sha256.New, s.opts.Secret)
	mac.Write([]byte("anon-csrf:" + cookie))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TokensEqual compares two CSRF tokens in constant time.
func TokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// NewCookieValue returns a random value for a cookie.
func NewCookieValue() (string, error) { return randomToken(32) }

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func actor(p Principal) audit.Actor { return audit.Actor{ID: p.UserID, Name: p.Username} }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
