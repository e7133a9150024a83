// Package fakegotrue is a stand-in for Supabase Auth (GoTrue) in tests:
// Supabase's server cannot run here. It answers the endpoints the app uses
// through gotrue-go, under <URL>/auth/v1 as a Supabase project does, with
// GoTrue's request and response shapes:
//
//	POST /signup                          {email, password, data} -> session (autoconfirm) or user
//	POST /token?grant_type=password       {email, password}       -> session
//	POST /token?grant_type=refresh_token  {refresh_token}         -> session (the refresh token rotates)
//	POST /logout                          Bearer access token     -> 204, revokes the user's refresh tokens
//	GET  /user                            Bearer access token     -> user
//	GET  /.well-known/jwks.json                                   -> public signing keys
//
// Access tokens are real JWTs: HS256 with a shared secret, or ES256 with a
// generated key published in the JWKS. Errors use GoTrue's body
// {"code", "error_code", "msg"}. Every request must carry the anon key in
// the apikey header, as Supabase's gateway requires.
package fakegotrue

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signing chooses how access tokens are signed.
type Signing int

const (
	// HS256 signs with Options.Secret (Supabase's legacy JWT secret).
	HS256 Signing = iota
	// ES256 signs with a generated P-256 key published in the JWKS.
	ES256
)

// Options configure a fake.
type Options struct {
	Signing Signing
	// Secret for HS256 (default: a fixed 40-character test secret).
	Secret string
	// AnonKey the apikey header must carry (default "test-anon-key").
	AnonKey string
	// AccessTTL is the access tokens' lifetime (default 1h).
	AccessTTL time.Duration
	// NoAutoConfirm: sign-up returns a user that must confirm their email
	// (Confirm) before signing in, as with email confirmations on.
	NoAutoConfirm bool
}

// DefaultSecret is the HS256 secret when Options.Secret is empty.
const DefaultSecret = "fake-gotrue-jwt-secret-0123456789abcdef"

// Audience is what GoTrue puts in aud.
const Audience = "authenticated"

type user struct {
	ID        string
	Email     string
	Password  string
	Confirmed bool
	CreatedAt time.Time
	Data      map[string]any
}

type refresh struct {
	userID    string
	sessionID string
	revoked   bool
}

// Server is a running fake GoTrue.
type Server struct {
	URL  string
	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	users    map[string]*user // by email
	refresh  map[string]*refresh
	keys     []signingKey // current key last
	down     bool
	requests []string

	signUps, signIns, refreshes, logouts, userGets, jwksGets atomic.Int64
}

type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

// Start runs a fake until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Secret == "" {
		o.Secret = DefaultSecret
	}
	if o.AnonKey == "" {
		o.AnonKey = "test-anon-key"
	}
	if o.AccessTTL <= 0 {
		o.AccessTTL = time.Hour
	}
	s := &Server{opts: o, users: map[string]*user{}, refresh: map[string]*refresh{}}
	if o.Signing == ES256 {
		s.RotateKey(false)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server: from now on connections are refused.
func (s *Server) Close() { s.srv.Close() }

// GoTrueURL is where the endpoints answer.
func (s *Server) GoTrueURL() string { return s.URL + "/auth/v1" }

// Issuer is the iss of the tokens the fake signs.
func (s *Server) Issuer() string { return s.GoTrueURL() }

// Secret is the HS256 secret.
func (s *Server) Secret() string { return s.opts.Secret }

// AnonKey is the key clients must send.
func (s *Server) AnonKey() string { return s.opts.AnonKey }

// AppEnv is the app configuration that points at this fake.
func (s *Server) AppEnv(adminEmails ...string) map[string]string {
	env := map[string]string{
		"AICODE_AUTH_PROVIDER":         "supabase",
		"AICODE_SUPABASE_URL":          s.URL,
		"AICODE_SUPABASE_ANON_KEY":     s.opts.AnonKey,
		"AICODE_SUPABASE_ADMIN_EMAILS": strings.Join(adminEmails, ","),
	}
	if s.opts.Signing == HS256 {
		env["AICODE_SUPABASE_JWT_SECRET"] = s.opts.Secret
	}
	return env
}

// SetDown makes every endpoint answer 503 (true) or work again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Counters of successful calls.
func (s *Server) SignUps() int64   { return s.signUps.Load() }
func (s *Server) SignIns() int64   { return s.signIns.Load() }
func (s *Server) Refreshes() int64 { return s.refreshes.Load() }
func (s *Server) Logouts() int64   { return s.logouts.Load() }
func (s *Server) UserGets() int64  { return s.userGets.Load() }
func (s *Server) JWKSGets() int64  { return s.jwksGets.Load() }

// Requests lists "METHOD /path?query" of every request received.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// AddUser creates a confirmed user directly (as the Supabase dashboard
// would) and returns its id.
func (s *Server) AddUser(email, password string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &user{ID: newUUID(), Email: strings.ToLower(email), Password: password, Confirmed: true, CreatedAt: time.Now().UTC()}
	s.users[u.Email] = u
	return u.ID
}

// UserID returns the id of the user with email, or "".
func (s *Server) UserID(email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[strings.ToLower(email)]; u != nil {
		return u.ID
	}
	return ""
}

// Confirm marks a user's email confirmed.
func (s *Server) Confirm(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[strings.ToLower(email)]; u != nil {
		u.Confirmed = true
	}
}

// RevokeAll revokes every refresh token of the user (as deleting or
// banning them in Supabase does).
func (s *Server) RevokeAll(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[strings.ToLower(email)]; u != nil {
		s.revokeUserLocked(u.ID)
	}
}

// RotateKey (ES256) makes a new signing key current; keepOld leaves the
// previous ones in the JWKS.
func (s *Server) RotateKey(keepOld bool) string {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	k := signingKey{kid: "kid-" + randomString(8), priv: priv}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !keepOld {
		s.keys = nil
	}
	s.keys = append(s.keys, k)
	return k.kid
}

// CurrentKID is the key id of the current ES256 key.
func (s *Server) CurrentKID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) == 0 {
		return ""
	}
	return s.keys[len(s.keys)-1].kid
}

// Claims are the claims GoTrue puts in an access token for a user.
func (s *Server) Claims(userID, email, sessionID string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":          s.Issuer(),
		"aud":          Audience,
		"sub":          userID,
		"email":        email,
		"phone":        "",
		"role":         "authenticated",
		"aal":          "aal1",
		"session_id":   sessionID,
		"is_anonymous": false,
		"iat":          now.Unix(),
		"exp":          now.Add(ttl).Unix(),
		"app_metadata": map[string]any{"provider": "email", "providers": []string{"email"}},
	}
}

// Sign signs claims the way the fake signs its access tokens.
func (s *Server) Sign(claims jwt.MapClaims) string {
	if s.opts.Signing == HS256 {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(s.opts.Secret))
		if err != nil {
			panic(err)
		}
		return tok
	}
	s.mu.Lock()
	k := s.keys[len(s.keys)-1]
	s.mu.Unlock()
	return SignES256(claims, k.kid, k.priv)
}

// SignES256 signs claims with key under kid.
func SignES256(claims jwt.MapClaims, kid string, key *ecdsa.PrivateKey) string {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = kid
	tok, err := t.SignedString(key)
	if err != nil {
		panic(err)
	}
	return tok
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	down := s.down
	s.mu.Unlock()
	if down {
		writeErr(w, http.StatusServiceUnavailable, "unexpected_failure", "service unavailable")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/auth/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if path == "/.well-known/jwks.json" && r.Method == http.MethodGet {
		// Public, as on Supabase.
		s.jwks(w)
		return
	}
	if r.Header.Get("apikey") != s.opts.AnonKey {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid API key"})
		return
	}
	switch {
	case path == "/signup" && r.Method == http.MethodPost:
		s.signup(w, r)
	case path == "/token" && r.Method == http.MethodPost:
		switch r.URL.Query().Get("grant_type") {
		case "password":
			s.passwordGrant(w, r)
		case "refresh_token":
			s.refreshGrant(w, r)
		default:
			writeErr(w, http.StatusBadRequest, "validation_failed", "unsupported_grant_type")
		}
	case path == "/logout" && r.Method == http.MethodPost:
		s.logout(w, r)
	case path == "/user" && r.Method == http.MethodGet:
		s.getUser(w, r)
	default:
		writeErr(w, http.StatusNotFound, "not_found", "Not Found")
	}
}

type credentials struct {
	Email        string         `json:"email"`
	Password     string         `json:"password"`
	RefreshToken string         `json:"refresh_token"`
	Data         map[string]any `json:"data"`
}

func decode(w http.ResponseWriter, r *http.Request) (credentials, bool) {
	var c credentials
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeErr(w, http.StatusBadRequest, "validation_failed", "Content-Type must be application/json")
		return c, false
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&c); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_json", "Could not parse request body as JSON")
		return c, false
	}
	return c, true
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	c, ok := decode(w, r)
	if !ok {
		return
	}
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if !strings.Contains(email, "@") {
		writeErr(w, http.StatusBadRequest, "validation_failed", "Unable to validate email address: invalid format")
		return
	}
	if len(c.Password) < 6 {
		writeErr(w, http.StatusUnprocessableEntity, "weak_password", "Password should be at least 6 characters.")
		return
	}
	s.mu.Lock()
	if _, taken := s.users[email]; taken {
		s.mu.Unlock()
		writeErr(w, http.StatusUnprocessableEntity, "user_already_exists", "User already registered")
		return
	}
	u := &user{ID: newUUID(), Email: email, Password: c.Password, Confirmed: !s.opts.NoAutoConfirm, CreatedAt: time.Now().UTC(), Data: c.Data}
	s.users[email] = u
	s.mu.Unlock()
	s.signUps.Add(1)
	if !u.Confirmed {
		writeJSON(w, http.StatusOK, userJSON(u))
		return
	}
	writeJSON(w, http.StatusOK, s.newSession(u, newUUID()))
}

func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request) {
	c, ok := decode(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.users[strings.ToLower(strings.TrimSpace(c.Email))]
	s.mu.Unlock()
	if u == nil || u.Password != c.Password {
		writeErr(w, http.StatusBadRequest, "invalid_credentials", "Invalid login credentials")
		return
	}
	if !u.Confirmed {
		writeErr(w, http.StatusBadRequest, "email_not_confirmed", "Email not confirmed")
		return
	}
	s.signIns.Add(1)
	writeJSON(w, http.StatusOK, s.newSession(u, newUUID()))
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request) {
	c, ok := decode(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	rt := s.refresh[c.RefreshToken]
	var u *user
	if rt != nil {
		for _, cand := range s.users {
			if cand.ID == rt.userID {
				u = cand
			}
		}
	}
	switch {
	case rt == nil || u == nil:
		s.mu.Unlock()
		writeErr(w, http.StatusBadRequest, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
		return
	case rt.revoked:
		s.mu.Unlock()
		writeErr(w, http.StatusBadRequest, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
		return
	}
	// Rotation: the presented token is spent.
	rt.revoked = true
	sid := rt.sessionID
	s.mu.Unlock()
	s.refreshes.Add(1)
	writeJSON(w, http.StatusOK, s.newSession(u, sid))
}

// bearerUser resolves the access token of a request to its user.
func (s *Server) bearerUser(w http.ResponseWriter, r *http.Request) (*user, jwt.MapClaims, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		writeErr(w, http.StatusUnauthorized, "no_authorization", "This endpoint requires a Bearer token")
		return nil, nil, false
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, s.keyFunc, jwt.WithValidMethods([]string{"HS256", "ES256"}),
		jwt.WithIssuer(s.Issuer()), jwt.WithAudience(Audience), jwt.WithExpirationRequired())
	if err != nil {
		writeErr(w, http.StatusForbidden, "bad_jwt", "invalid JWT: unable to parse or verify signature, "+err.Error())
		return nil, nil, false
	}
	sub, _ := claims["sub"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.ID == sub {
			return u, claims, true
		}
	}
	writeErr(w, http.StatusForbidden, "user_not_found", "User from sub claim in JWT does not exist")
	return nil, nil, false
}

func (s *Server) keyFunc(t *jwt.Token) (any, error) {
	if t.Method.Alg() == "HS256" {
		if s.opts.Signing != HS256 {
			return nil, fmt.Errorf("unexpected HS256")
		}
		return []byte(s.opts.Secret), nil
	}
	kid, _ := t.Header["kid"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.kid == kid {
			return &k.priv.PublicKey, nil
		}
	}
	return nil, fmt.Errorf("unknown kid")
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	u, _, ok := s.bearerUser(w, r)
	if !ok {
		return
	}
	// The default scope is global: every session of the user ends.
	s.mu.Lock()
	s.revokeUserLocked(u.ID)
	s.mu.Unlock()
	s.logouts.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revokeUserLocked(userID string) {
	for _, rt := range s.refresh {
		if rt.userID == userID {
			rt.revoked = true
		}
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, _, ok := s.bearerUser(w, r)
	if !ok {
		return
	}
	s.userGets.Add(1)
	writeJSON(w, http.StatusOK, userJSON(u))
}

func (s *Server) jwks(w http.ResponseWriter) {
	s.jwksGets.Add(1)
	s.mu.Lock()
	keys := []map[string]any{}
	for _, k := range s.keys {
		pub := k.priv.PublicKey
		b, err := pub.Bytes()
		if err != nil {
			panic(err)
		}
		keys = append(keys, map[string]any{
			"kty": "EC", "kid": k.kid, "use": "sig", "key_ops": []string{"verify"}, "alg": "ES256", "crv": "P-256",
			"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
			"y": base64.RawURLEncoding.EncodeToString(b[33:65]),
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// newSession issues an access token and a fresh refresh token.
func (s *Server) newSession(u *user, sessionID string) map[string]any {
	ttl := s.opts.AccessTTL
	claims := s.Claims(u.ID, u.Email, sessionID, ttl)
	access := s.Sign(claims)
	rt := randomString(12)
	s.mu.Lock()
	s.refresh[rt] = &refresh{userID: u.ID, sessionID: sessionID}
	s.mu.Unlock()
	return map[string]any{
		"access_token":  access,
		"token_type":    "bearer",
		"expires_in":    int(ttl.Seconds()),
		"expires_at":    claims["exp"],
		"refresh_token": rt,
		"user":          userJSON(u),
	}
}

func userJSON(u *user) map[string]any {
	m := map[string]any{
		"id":            u.ID,
		"aud":           Audience,
		"role":          "authenticated",
		"email":         u.Email,
		"phone":         "",
		"app_metadata":  map[string]any{"provider": "email", "providers": []string{"email"}},
		"user_metadata": u.Data,
		"identities":    []any{},
		"created_at":    u.CreatedAt.Format(time.RFC3339Nano),
		"updated_at":    u.CreatedAt.Format(time.RFC3339Nano),
		"is_anonymous":  false,
	}
	if u.Confirmed {
		m["email_confirmed_at"] = u.CreatedAt.Format(time.RFC3339Nano)
		m["confirmed_at"] = u.CreatedAt.Format(time.RFC3339Nano)
	} else {
		m["confirmation_sent_at"] = u.CreatedAt.Format(time.RFC3339Nano)
	}
	if m["user_metadata"] == nil {
		m["user_metadata"] = map[string]any{}
	}
	return m
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "error_code": code, "msg": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
