package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/supabase-community/gotrue-go/types"
	"golang.org/x/sync/singleflight"

	"aicode/services/audit"
	"aicode/services/secrets"
	"aicode/services/store"
	"aicode/services/validation"
)

// SupabaseProvider names Supabase links in the store.
const SupabaseProvider = "supabase"

var (
	// ErrProviderUnavailable: GoTrue could not be asked (down, timing out,
	// failing); nothing is wrong with the user's credentials.
	ErrProviderUnavailable = errors.New("the sign-in service (Supabase) cannot be reached right now; try again in a moment")
	// ErrEmailNotConfirmed: GoTrue knows the account but the address was
	// never confirmed.
	ErrEmailNotConfirmed = errors.New("confirm your email address first (follow the link in the message Supabase sent you), then sign in")
	// ErrConfirmationSent: sign-up worked, and the project wants the
	// address confirmed before the first sign-in.
	ErrConfirmationSent = errors.New("check your email: confirm your address with the link we sent, then sign in")
)

// SupabaseOptions configure sign-in through a Supabase project.
type SupabaseOptions struct {
	// GoTrueURL is <project URL>/auth/v1.
	GoTrueURL string
	AnonKey   string
	// AdminEmails (lower-cased) become admins at their first sign-in.
	AdminEmails []string
	Verifier    *Verifier
	// Box seals the GoTrue tokens kept with each session.
	Box *secrets.Box
	// HTTPClient talks to GoTrue (its Transport and Timeout are used).
	HTTPClient *http.Client
}

// Supabase signs people in through a Supabase project's GoTrue (sign-up,
// password sign-in, refresh, sign-out) and otherwise behaves like the
// built-in accounts it wraps: a Supabase user is linked to a local user at
// their first sign-in, and the app's own session cookie, CSRF token,
// roles and policy apply unchanged. GoTrue's access and refresh tokens are
// kept server-side with the session, sealed; every request checks that
// the session's access token is still valid (verified locally, the result
// cached until it expires) and refreshes it through GoTrue shortly before
// it does. A refresh GoTrue refuses (user deleted, signed out elsewhere)
// ends the session.
type Supabase struct {
	*Service
	gotrue   *goTrue
	verifier *Verifier
	box      *secrets.Box
	admins   map[string]bool

	tokens    *tokenCache
	refreshes singleflight.Group
}

// NewSupabase wraps the built-in service s.
func NewSupabase(s *Service, o SupabaseOptions) (*Supabase, error) {
	if o.GoTrueURL == "" || o.AnonKey == "" {
		return nil, errors.New("supabase: the GoTrue URL and anon key are required")
	}
	if o.Verifier == nil || o.Box == nil {
		return nil, errors.New("supabase: a token verifier and a secrets box are required")
	}
	sb := &Supabase{
		Service:  s,
		gotrue:   newGoTrue(o.GoTrueURL, o.AnonKey, o.HTTPClient),
		verifier: o.Verifier,
		box:      o.Box,
		admins:   map[string]bool{},
		tokens:   newTokenCache(),
	}
	for _, e := range o.AdminEmails {
		sb.admins[normalizeEmail(e)] = true
	}
	return sb, nil
}

// Verifier returns the access-token verifier.
func (s *Supabase) Verifier() *Verifier { return s.verifier }

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1 && len(e) <= 254 && !strings.ContainsAny(e, " \t\r\n<>\"")
}

// NeedsSetup is always false: admins come from the admin email list.
func (s *Supabase) NeedsSetup(context.Context) (bool, error) { return false, nil }

// Setup does not apply with Supabase.
func (s *Supabase) Setup(context.Context, string, string) (Login, error) {
	return Login{}, ErrSetupDone
}

// CreateUser is refused: people sign up themselves, through Supabase.
func (s *Supabase) CreateUser(context.Context, Principal, string, string, store.Role) (store.User, error) {
	return store.User{}, validation.Field("username", "accounts are managed in Supabase: people sign up on the sign-in page")
}

// ResetPassword is refused: passwords live in Supabase.
func (s *Supabase) ResetPassword(context.Context, Principal, string, string) error {
	return validation.Field("password", "passwords are managed in Supabase; reset them there")
}

// ChangeOwnPassword is refused: passwords live in Supabase.
func (s *Supabase) ChangeOwnPassword(context.Context, Principal, string, string) error {
	return validation.Field("password", "your password is managed in Supabase")
}

// Login signs in with email and password through GoTrue, rate-limited
// like built-in sign-ins, and opens an app session holding GoTrue's tokens.
func (s *Supabase) Login(ctx context.Context, email, password string) (Login, error) {
	email = normalizeEmail(email)
	ip := audit.MetaFrom(ctx).IP
	userKey, ipKey := "login:"+ip+":"+email, "login-ip:"+ip
	if err := s.rateLimited(ctx, email, "auth.login", userKey, s.opts.LoginLimit, ipKey, 5*s.opts.LoginLimit); err != nil {
		return Login{}, err
	}
	fail := func(detail string) (Login, error) {
		s.opts.Limiter.Hit(userKey)
		s.opts.Limiter.Hit(ipKey)
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: email}, Action: "auth.login", ResourceType: "user", Result: audit.ResultDenied, Detail: detail})
		return Login{}, ErrInvalidCredentials
	}
	if !validEmail(email) || password == "" || len(password) > MaxPasswordLen {
		return fail("wrong email or password")
	}
	resp, err := s.gotrue.client(ctx, "").SignInWithEmailPassword(email, password)
	if err != nil {
		ge := asGoTrueError(err)
		switch {
		case ge.Code == "email_not_confirmed" || strings.Contains(strings.ToLower(ge.Msg), "not confirmed"):
			s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: email}, Action: "auth.login", ResourceType: "user", Result: audit.ResultDenied, Detail: "email not confirmed"})
			return Login{}, ErrEmailNotConfirmed
		case ge.Status == http.StatusTooManyRequests:
			return Login{}, &RateLimitedError{RetryAfter: time.Minute}
		case ge.rejected():
			return fail("wrong email or password")
		}
		s.log.Warn("supabase sign-in failed", "err", ge)
		return Login{}, ErrProviderUnavailable
	}
	l, err := s.openSupabaseSession(ctx, resp.Session, "auth.login")
	if err == nil {
		s.opts.Limiter.Reset(userKey)
	}
	return l, err
}

// SignUp registers an account with GoTrue. With email confirmations off
// (autoconfirm) the new user is signed in at once; otherwise the result is
// ErrConfirmationSent.
func (s *Supabase) SignUp(ctx context.Context, email, password string) (Login, error) {
	email = normalizeEmail(email)
	ipKey := "signup-ip:" + audit.MetaFrom(ctx).IP
	if err := s.rateLimited(ctx, email, "auth.signup", ipKey, s.opts.LoginLimit, "", 0); err != nil {
		return Login{}, err
	}
	errs := validation.Errors{}
	if !validEmail(email) {
		errs.Add("email", "enter a valid email address")
	}
	if err := ValidatePassword(password); err != nil {
		errs.Add("password", err.Error())
	}
	if err := errs.Err(); err != nil {
		return Login{}, err
	}
	// Every attempt counts, successful or not: sign-ups create accounts.
	s.opts.Limiter.Hit(ipKey)
	resp, err := s.gotrue.client(ctx, "").Signup(types.SignupRequest{Email: email, Password: password})
	if err != nil {
		ge := asGoTrueError(err)
		switch {
		case ge.Code == "user_already_exists" || ge.Code == "email_exists" || strings.Contains(strings.ToLower(ge.Msg), "already registered"):
			return Login{}, validation.Field("email", "an account with this email exists already; sign in instead")
		case ge.Code == "weak_password":
			return Login{}, validation.Field("password", firstOf(ge.Msg, "choose a stronger password"))
		case ge.Status == http.StatusTooManyRequests:
			return Login{}, &RateLimitedError{RetryAfter: time.Minute}
		case ge.rejected():
			return Login{}, validation.Field("email", firstOf(ge.Msg, "Supabase refused this sign-up"))
		}
		s.log.Warn("supabase sign-up failed", "err", ge)
		return Login{}, ErrProviderUnavailable
	}
	if resp.Session.AccessToken == "" {
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: email}, Action: "auth.signup", ResourceType: "user", Detail: "confirmation sent"})
		return Login{}, ErrConfirmationSent
	}
	return s.openSupabaseSession(ctx, resp.Session, "auth.signup")
}

func (s *Supabase) rateLimited(ctx context.Context, name, action, key1 string, limit1 int, key2 string, limit2 int) error {
	for _, k := range []struct {
		key   string
		limit int
	}{{key1, limit1}, {key2, limit2}} {
		if k.key == "" {
			continue
		}
		if blocked, wait := s.opts.Limiter.Blocked(k.key, k.limit); blocked {
			s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: name}, Action: action, ResourceType: "user", Result: audit.ResultDenied, Detail: "rate limited"})
			return &RateLimitedError{RetryAfter: wait}
		}
	}
	return nil
}

// openSupabaseSession verifies GoTrue's fresh tokens, maps the Supabase
// user to a local one and opens an app session holding the tokens.
func (s *Supabase) openSupabaseSession(ctx context.Context, gs types.Session, action string) (Login, error) {
	claims, err := s.verifier.Verify(ctx, gs.AccessToken)
	if err != nil {
		// GoTrue signed a token this configuration does not accept: the
		// secret, JWKS, issuer or audience settings are wrong.
		s.log.Error("supabase issued an access token that does not verify; check AICODE_SUPABASE_* settings", "err", err)
		return Login{}, ErrProviderUnavailable
	}
	if gs.RefreshToken == "" {
		s.log.Error("supabase answered a sign-in without a refresh token")
		return Login{}, ErrProviderUnavailable
	}
	email := normalizeEmail(firstOf(claims.Email, gs.User.Email))
	u, err := s.localUser(ctx, claims.Subject, email)
	if err != nil {
		return Login{}, err
	}
	if u.Disabled {
		// GoTrue accepted the password; the app does not. End the GoTrue
		// session just made, so it does not linger.
		s.revoke(ctx, gs.AccessToken)
		s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: u.ID, Name: u.Username}, Action: action, ResourceType: "user", ResourceID: u.ID, Result: audit.ResultDenied, Detail: "account disabled"})
		return Login{}, ErrInvalidCredentials
	}
	if err := s.store.TouchUserLogin(ctx, u.ID, s.now().UTC()); err != nil {
		s.log.Warn("record last login", "user", u.ID, "err", err)
	}
	l, err := s.openSession(ctx, u)
	if err != nil {
		return Login{}, err
	}
	st := &tokenState{subject: claims.Subject, access: gs.AccessToken, refresh: gs.RefreshToken, exp: claims.ExpiresAt.Time, iat: issuedAt(claims)}
	if err := s.saveTokens(ctx, l.Session.ID, st); err != nil {
		_ = s.store.DeleteSession(ctx, l.Session.ID)
		return Login{}, err
	}
	s.tokens.put(l.Session.ID, st)
	s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: u.ID, Name: u.Username}, Action: action, ResourceType: "user", ResourceID: u.ID, Detail: "supabase"})
	return l, nil
}

func issuedAt(c TokenClaims) time.Time {
	if c.IssuedAt != nil {
		return c.IssuedAt.Time
	}
	return time.Time{}
}

// localUser returns the local user linked to a Supabase user, creating it
// at the first sign-in: admin if the email is listed, member otherwise.
func (s *Supabase) localUser(ctx context.Context, subject, email string) (store.User, error) {
	id, u, err := s.store.GetIdentity(ctx, SupabaseProvider, subject)
	if err == nil {
		if email != "" && id.Email != email {
			if err := s.store.SetIdentityEmail(ctx, SupabaseProvider, subject, email); err != nil {
				s.log.Warn("record supabase email", "user", u.ID, "err", err)
			}
		}
		return u, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("look up supabase identity: %w", err)
	}
	role := store.RoleMember
	if s.admins[email] {
		role = store.RoleAdmin
	}
	// Nobody knows this password: the account signs in through Supabase
	// only (an operator can still set one with aicli reset-password).
	unusable, err := randomToken(32)
	if err != nil {
		return store.User{}, err
	}
	hash, err := HashPassword(unusable)
	if err != nil {
		return store.User{}, err
	}
	base := usernameFromEmail(email)
	for attempt := 0; attempt < 8; attempt++ {
		name := base
		if attempt > 0 {
			suffix := "-" + strconv.Itoa(attempt+1)
			if attempt > 3 {
				r, _ := randomToken(4)
				suffix = "-" + strings.ToLower(strings.NewReplacer("_", "0", "-", "1").Replace(r[:5]))
			}
			name = trimUsername(base, 32-len(suffix)) + suffix
		}
		nu := &store.User{Username: name, PasswordHash: hash, Role: role}
		err = s.store.Tx(ctx, func(tx store.Store) error {
			if err := tx.CreateUser(ctx, nu); err != nil {
				return err
			}
			return tx.LinkIdentity(ctx, &store.Identity{Provider: SupabaseProvider, Subject: subject, UserID: nu.ID, Email: email})
		})
		if err == nil {
			s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{ID: nu.ID, Name: nu.Username}, Action: "user.create", ResourceType: "user", ResourceID: nu.ID,
				Detail: "first supabase sign-in; role=" + string(role)})
			return *nu, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("create user for supabase identity: %w", err)
		}
		// Either the username is taken, or a concurrent first sign-in of
		// the same person linked it a moment ago.
		if _, u, gerr := s.store.GetIdentity(ctx, SupabaseProvider, subject); gerr == nil {
			return u, nil
		}
	}
	return store.User{}, fmt.Errorf("create user for supabase identity: no free username near %q", base)
}

var notUsername = regexp.MustCompile(`[^a-z0-9._-]+`)

// usernameFromEmail derives a valid username from an email's local part.
func usernameFromEmail(email string) string {
	local, _, _ := strings.Cut(email, "@")
	name := notUsername.ReplaceAllString(strings.ToLower(local), "-")
	name = strings.TrimLeft(name, "._-")
	name = trimUsername(name, 32)
	if len(name) < 2 {
		name = "user"
	}
	return name
}

func trimUsername(name string, n int) string {
	if len(name) > n {
		name = name[:n]
	}
	return strings.TrimRight(name, "._-")
}

// Authenticate resolves the session cookie as the built-in service does,
// then makes sure the session's GoTrue access token is valid, refreshing
// it when it is about to expire.
func (s *Supabase) Authenticate(ctx context.Context, token string) (Authenticated, error) {
	a, err := s.Service.Authenticate(ctx, token)
	if err != nil {
		return a, err
	}
	if err := s.ensureFresh(ctx, a.Session.ID); err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			s.endSession(ctx, a.Session.ID)
		}
		return Authenticated{}, err
	}
	return a, nil
}

// AuthenticateBearer accepts a Supabase access token from an API client:
// verified locally, mapped to (or, at first use, linked to) a local user.
func (s *Supabase) AuthenticateBearer(ctx context.Context, token string) (Authenticated, error) {
	claims, err := s.verifier.Verify(ctx, token)
	if err != nil {
		s.log.Debug("bearer token refused", "err", err)
		return Authenticated{}, ErrUnauthenticated
	}
	u, err := s.localUser(ctx, claims.Subject, normalizeEmail(claims.Email))
	if err != nil {
		return Authenticated{}, err
	}
	if u.Disabled {
		return Authenticated{}, ErrUnauthenticated
	}
	return Authenticated{
		Principal: Principal{UserID: u.ID, Username: u.Username, Role: u.Role},
		Session:   store.Session{UserID: u.ID, ExpiresAt: claims.ExpiresAt.Time},
		Bearer:    true,
	}, nil
}

// Logout revokes the GoTrue session (POST /logout) and ends the app
// session. The app session ends even when GoTrue cannot be told.
func (s *Supabase) Logout(ctx context.Context, p Principal, token string) error {
	id := SessionID(token)
	if st, err := s.current(ctx, id); err == nil {
		access := st.access
		if !s.now().Before(st.exp) {
			// GoTrue wants a valid token to sign out with.
			if fresh, err := s.refresh(ctx, id, st); err == nil {
				access = fresh.access
			}
		}
		s.revoke(ctx, access)
	}
	s.tokens.drop(id)
	return s.Service.Logout(ctx, p, token)
}

func (s *Supabase) revoke(ctx context.Context, access string) {
	if err := s.gotrue.client(ctx, access).Logout(); err != nil {
		s.log.Warn("supabase sign-out failed; the refresh token stays valid until it expires", "err", asGoTrueError(err))
	}
}

func (s *Supabase) endSession(ctx context.Context, id string) {
	s.tokens.drop(id)
	s.sessions.drop(id)
	if err := s.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("end session", "err", err)
	}
}

// refreshMargin is how long before expiry a token is refreshed: a quarter
// of its lifetime, at most a minute.
func refreshMargin(st *tokenState) time.Duration {
	m := time.Minute
	if !st.iat.IsZero() {
		if q := st.exp.Sub(st.iat) / 4; q < m {
			m = q
		}
	}
	if m < 0 {
		m = 0
	}
	return m
}

func (s *Supabase) ensureFresh(ctx context.Context, id string) error {
	st, err := s.current(ctx, id)
	if err != nil {
		return err
	}
	now := s.now()
	if now.Before(st.exp.Add(-refreshMargin(st))) {
		return nil
	}
	// Concurrent requests of one session share one refresh, which must
	// not fail because the first of them went away.
	rctx := context.WithoutCancel(ctx)
	_, err, _ = s.refreshes.Do(id, func() (any, error) { return s.refresh(rctx, id, st) })
	if errors.Is(err, ErrProviderUnavailable) && now.Before(st.exp) {
		// Not expired yet: carry on, and try again on the next request.
		return nil
	}
	return err
}

// current returns the session's tokens from memory or the store. A token
// that no longer verifies (expired, or keys changed) is marked for refresh.
func (s *Supabase) current(ctx context.Context, id string) (*tokenState, error) {
	if st := s.tokens.get(id); st != nil {
		return st, nil
	}
	st, err := s.loadTokens(ctx, id)
	if err != nil {
		return nil, err
	}
	s.tokens.put(id, st)
	return st, nil
}

func (s *Supabase) loadTokens(ctx context.Context, id string) (*tokenState, error) {
	row, err := s.store.GetSessionTokens(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// A session without GoTrue tokens (made before the switch to
		// Supabase) does not count.
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("load session tokens: %w", err)
	}
	access, err1 := s.box.Open(row.AccessToken, tokenContext(id, "access"))
	refresh, err2 := s.box.Open(row.RefreshToken, tokenContext(id, "refresh"))
	if err1 != nil || err2 != nil {
		s.log.Warn("session tokens do not open (secret key changed?); ending the session", "err", errors.Join(err1, err2))
		return nil, ErrUnauthenticated
	}
	st := &tokenState{subject: row.Subject, access: string(access), refresh: string(refresh)}
	if c, err := s.verifier.Verify(ctx, st.access); err == nil && c.Subject == row.Subject {
		st.exp, st.iat = c.ExpiresAt.Time, issuedAt(c)
	}
	return st, nil
}

// refresh trades the refresh token for new tokens through GoTrue. A
// refusal means the Supabase session is gone: ErrUnauthenticated.
func (s *Supabase) refresh(ctx context.Context, id string, old *tokenState) (*tokenState, error) {
	// Another replica, or an earlier request, may have refreshed already.
	cur, err := s.loadTokens(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.refresh != old.refresh && s.now().Before(cur.exp.Add(-refreshMargin(cur))) {
		s.tokens.put(id, cur)
		return cur, nil
	}
	resp, err := s.gotrue.client(ctx, "").RefreshToken(cur.refresh)
	if err != nil {
		ge := asGoTrueError(err)
		if !ge.rejected() {
			s.log.Warn("supabase token refresh failed", "err", ge)
			return nil, ErrProviderUnavailable
		}
		// Spent by a concurrent refresh elsewhere? Then the store has
		// its successor.
		if again, lerr := s.loadTokens(ctx, id); lerr == nil && again.refresh != cur.refresh && s.now().Before(again.exp) {
			s.tokens.put(id, again)
			return again, nil
		}
		s.log.Info("supabase refused the session's refresh token; signing the session out", "err", ge)
		return nil, ErrUnauthenticated
	}
	claims, err := s.verifier.Verify(ctx, resp.AccessToken)
	if err != nil || claims.Subject != cur.subject || resp.RefreshToken == "" {
		s.log.Error("supabase refreshed to a token that does not verify or names another user", "err", err)
		return nil, ErrUnauthenticated
	}
	st := &tokenState{subject: cur.subject, access: resp.AccessToken, refresh: resp.RefreshToken, exp: claims.ExpiresAt.Time, iat: issuedAt(claims)}
	if err := s.saveTokens(ctx, id, st); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrUnauthenticated
		}
		return nil, err
	}
	s.tokens.put(id, st)
	return st, nil
}

func tokenContext(sessionID, kind string) string { return "session:" + sessionID + ":supabase-" + kind }

func (s *Supabase) saveTokens(ctx context.Context, id string, st *tokenState) error {
	access, err := s.box.Seal([]byte(st.access), tokenContext(id, "access"))
	if err != nil {
		return err
	}
	refresh, err := s.box.Seal([]byte(st.refresh), tokenContext(id, "refresh"))
	if err != nil {
		return err
	}
	if err := s.store.SaveSessionTokens(ctx, store.SessionTokens{SessionID: id, Subject: st.subject, AccessToken: access, RefreshToken: refresh, ExpiresAt: st.exp}); err != nil {
		return fmt.Errorf("save session tokens: %w", err)
	}
	return nil
}
