package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/fakegotrue"
	"aicode/testutil/pgtest"
)

const sbPW = "supabase-password-1"

// supabaseServer boots the app signing in through f.
func supabaseServer(t *testing.T, f *fakegotrue.Server, extra map[string]string, admins ...string) *testutil.Server {
	t.Helper()
	env := f.AppEnv(admins...)
	for k, v := range extra {
		env[k] = v
	}
	return noEngineServer(t, env)
}

func signUp(t *testing.T, base, email, password string) (*testutil.Client, testutil.Response) {
	t.Helper()
	c := testutil.NewClient(t, base)
	if r := c.Get("/signup"); r.Status != http.StatusOK || !strings.Contains(r.Body, `data-testid="signup-form"`) {
		t.Fatalf("GET /signup: %d", r.Status)
	}
	r := c.Post("/signup", url.Values{"email": {email}, "password": {password}, "password2": {password}}, false)
	return c, r
}

func sbLogin(t *testing.T, base, email, password string) (*testutil.Client, testutil.Response) {
	t.Helper()
	c := testutil.NewClient(t, base)
	c.Get("/login")
	r := c.Post("/login", url.Values{"username": {email}, "password": {password}}, false)
	return c, r
}

func sessionToken(t *testing.T, c *testutil.Client) string {
	t.Helper()
	u, _ := url.Parse(c.Base)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == "aicode_session" {
			return ck.Value
		}
	}
	return ""
}

func localUser(t *testing.T, s *testutil.Server, f *fakegotrue.Server, email string) store.User {
	t.Helper()
	_, u, err := s.App.Store.GetIdentity(context.Background(), auth.SupabaseProvider, f.UserID(email))
	if err != nil {
		t.Fatalf("local user of %s: %v", email, err)
	}
	return u
}

func TestSupabaseSignUpSignInSignOut(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{})
	s := supabaseServer(t, f, nil, "Boss@Example.com")
	ctx := context.Background()

	// No first-run setup: every page asks to sign in instead.
	anon := testutil.NewClient(t, s.URL)
	if r := anon.Get("/workspaces"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("GET /workspaces anonymous: %d %s", r.Status, r.Header.Get("Location"))
	}
	if r := anon.Get("/setup"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("GET /setup: %d %s", r.Status, r.Header.Get("Location"))
	}
	r := anon.Get("/login")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `type="email"`) || !strings.Contains(r.Body, `href="/signup"`) {
		t.Fatalf("login page in supabase mode: %d", r.Status)
	}
	if r := anon.Post("/setup", url.Values{"username": {"x"}, "password": {adminPW}, "password2": {adminPW}}, false); r.Status != http.StatusConflict {
		t.Errorf("POST /setup in supabase mode: %d", r.Status)
	}

	// Sign-up: an admin email becomes an admin, signed in at once.
	boss, r := signUp(t, s.URL, "boss@example.com", sbPW)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/workspaces" {
		t.Fatalf("sign-up: %d %s", r.Status, r.Body)
	}
	if f.SignUps() != 1 {
		t.Fatalf("GoTrue saw %d sign-ups", f.SignUps())
	}
	if r := boss.Get("/account"); r.Status != http.StatusOK || !strings.Contains(r.Body, "<strong>boss</strong> (admin)") || !strings.Contains(r.Body, `data-testid="password-managed"`) {
		t.Fatalf("account page of boss: %d", r.Status)
	}
	bossUser := localUser(t, s, f, "boss@example.com")
	if bossUser.Role != store.RoleAdmin || bossUser.Username != "boss" {
		t.Fatalf("boss: %+v", bossUser)
	}

	// The tokens are kept with the session, sealed.
	tok := sessionToken(t, boss)
	row, err := s.App.Store.GetSessionTokens(ctx, auth.SessionID(tok))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(row.AccessToken, "v1.") || strings.Contains(row.AccessToken, "eyJ") || row.Subject != f.UserID("boss@example.com") {
		t.Fatalf("stored tokens not sealed: %q", row.AccessToken[:10])
	}

	// Anyone else is a member; a name taken locally gets a suffix.
	ada, r := signUp(t, s.URL, "ada@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up ada: %d", r.Status)
	}
	_, r = signUp(t, s.URL, "ada@elsewhere.example", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up second ada: %d", r.Status)
	}
	adaUser := localUser(t, s, f, "ada@example.com")
	ada2 := localUser(t, s, f, "ada@elsewhere.example")
	if adaUser.Role != store.RoleMember || adaUser.Username != "ada" || ada2.Username != "ada-2" || ada2.Role != store.RoleMember {
		t.Fatalf("members: %+v %+v", adaUser, ada2)
	}
	if r := ada.Get("/admin/users"); r.Status != http.StatusForbidden {
		t.Errorf("member on users page: %d", r.Status)
	}

	// Sign-up mistakes are shown on the form.
	c := testutil.NewClient(t, s.URL)
	c.Get("/signup")
	if r := c.Post("/signup", url.Values{"email": {"x@example.com"}, "password": {sbPW}, "password2": {"other-password"}}, false); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "do not match") {
		t.Errorf("mismatched passwords: %d", r.Status)
	}
	if r := c.Post("/signup", url.Values{"email": {"ada@example.com"}, "password": {sbPW}, "password2": {sbPW}}, false); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "exists already") {
		t.Errorf("existing email: %d", r.Status)
	}
	if r := c.Post("/signup", url.Values{"email": {"not-an-email"}, "password": {"short"}, "password2": {"short"}}, false); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "valid email") || !strings.Contains(r.Body, "at least 10") {
		t.Errorf("bad email and password: %d", r.Status)
	}
	// A sign-up without CSRF token is refused before GoTrue hears of it.
	before := f.SignUps()
	if r := c.Post("/signup", url.Values{"_csrf": {"forged"}, "email": {"z@example.com"}, "password": {sbPW}, "password2": {sbPW}}, false); r.Status != http.StatusForbidden || f.SignUps() != before {
		t.Errorf("sign-up without CSRF: %d", r.Status)
	}

	// Users page: accounts are managed in Supabase; roles still local.
	r = boss.Get("/admin/users")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `data-testid="users-managed"`) || strings.Contains(r.Body, `data-testid="new-user"`) {
		t.Fatalf("users page: %d", r.Status)
	}
	if r := boss.Post("/admin/users", url.Values{"username": {"carl"}, "password": {adminPW}, "role": {"member"}}, false); r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "managed in Supabase") {
		t.Errorf("create local user: %d", r.Status)
	}
	if r := boss.Post("/admin/users/"+adaUser.ID+"/password", url.Values{"password": {adminPW}}, false); r.Status != http.StatusConflict || !strings.Contains(r.Body, "managed in Supabase") {
		t.Errorf("reset password: %d", r.Status)
	}
	boss.Get("/account")
	if r := boss.Post("/account/password", url.Values{"current": {sbPW}, "password": {adminPW}, "password2": {adminPW}}, false); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("change own password: %d", r.Status)
	}
	if r := boss.Post("/admin/users/"+adaUser.ID+"/role", url.Values{"role": {"viewer"}}, false); r.Status != http.StatusSeeOther {
		t.Errorf("set role: %d", r.Status)
	}

	// Sign-out revokes at GoTrue and ends the session.
	boss.Get("/workspaces")
	if r := boss.Post("/logout", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.Status)
	}
	if f.Logouts() != 1 {
		t.Fatalf("GoTrue saw %d sign-outs", f.Logouts())
	}
	if _, err := s.App.Store.GetSessionTokens(ctx, auth.SessionID(tok)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session tokens after sign-out: %v", err)
	}
	old := testutil.NewClient(t, s.URL)
	u, _ := url.Parse(s.URL)
	old.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "aicode_session", Value: tok, Path: "/"}})
	if r := old.Get("/workspaces"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Errorf("old cookie after sign-out: %d", r.Status)
	}

	// Signing in again finds the same local user, with the role set here.
	c, r = sbLogin(t, s.URL, "ADA@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", r.Status, r.Body)
	}
	if r := c.Get("/account"); !strings.Contains(r.Body, "<strong>ada</strong> (viewer)") {
		t.Errorf("ada after sign-in is not the same viewer")
	}
	if n, _ := s.App.Store.CountUsers(ctx); n != 3 {
		t.Errorf("%d local users, want 3", n)
	}
	_, r = sbLogin(t, s.URL, "ada@example.com", "wrong-password-1")
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "Wrong email or password.") {
		t.Errorf("wrong password: %d", r.Status)
	}
	_, r = sbLogin(t, s.URL, "nobody@example.com", sbPW)
	if r.Status != http.StatusUnauthorized {
		t.Errorf("unknown email: %d", r.Status)
	}

	// Disabling someone here ends their session and refuses sign-in,
	// though Supabase accepts the password.
	boss2, r := sbLogin(t, s.URL, "boss@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("boss sign-in: %d", r.Status)
	}
	boss2.Get("/admin/users")
	if r := boss2.Post("/admin/users/"+adaUser.ID+"/disable", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.Status)
	}
	if r := c.Get("/workspaces"); r.Status != http.StatusSeeOther {
		t.Errorf("disabled user's session: %d", r.Status)
	}
	logoutsBefore := f.Logouts()
	if _, r = sbLogin(t, s.URL, "ada@example.com", sbPW); r.Status != http.StatusUnauthorized {
		t.Errorf("disabled user's sign-in: %d", r.Status)
	}
	if f.Logouts() != logoutsBefore+1 {
		t.Errorf("the GoTrue session of a refused sign-in was not revoked")
	}
}

func TestSupabaseLoginRateLimit(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{})
	f.AddUser("eve@example.com", sbPW)
	s := supabaseServer(t, f, map[string]string{"AICODE_LOGIN_RATE_LIMIT": "2"})
	for i := 0; i < 2; i++ {
		if _, r := sbLogin(t, s.URL, "eve@example.com", "wrong-password-x"); r.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.Status)
		}
	}
	asked := len(f.Requests())
	_, r := sbLogin(t, s.URL, "eve@example.com", sbPW)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third attempt: %d", r.Status)
	}
	if len(f.Requests()) != asked {
		t.Errorf("a rate-limited sign-in still reached GoTrue")
	}
}

func TestSupabaseSessionRefreshAndRevocation(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{AccessTTL: 2 * time.Second})
	s := supabaseServer(t, f, nil)
	c, r := signUp(t, s.URL, "rita@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up: %d", r.Status)
	}
	tok := sessionToken(t, c)
	first, err := s.App.Store.GetSessionTokens(context.Background(), auth.SessionID(tok))
	if err != nil {
		t.Fatal(err)
	}
	// The access token expires twice over; the session lives on through
	// refreshes (GoTrue rotates the refresh token each time).
	for i := 0; i < 2; i++ {
		time.Sleep(2100 * time.Millisecond)
		if r := c.Get("/workspaces"); r.Status != http.StatusOK {
			t.Fatalf("after expiry %d: %d %s", i+1, r.Status, r.Header.Get("Location"))
		}
	}
	if n := f.Refreshes(); n < 2 {
		t.Fatalf("GoTrue saw %d refreshes, want at least 2", n)
	}
	now, err := s.App.Store.GetSessionTokens(context.Background(), auth.SessionID(tok))
	if err != nil {
		t.Fatal(err)
	}
	if now.RefreshToken == first.RefreshToken || !now.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("stored tokens did not follow the refresh")
	}
	// Many requests at once while a refresh is due share one refresh.
	time.Sleep(2100 * time.Millisecond)
	before := f.Refreshes()
	done := make(chan int, 5)
	for i := 0; i < 5; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/workspaces", nil)
			req.AddCookie(&http.Cookie{Name: "aicode_session", Value: tok})
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for i := 0; i < 5; i++ {
		if st := <-done; st != http.StatusOK {
			t.Errorf("concurrent request during refresh: %d", st)
		}
	}
	if n := f.Refreshes() - before; n != 1 {
		t.Errorf("%d refreshes for 5 concurrent requests, want 1", n)
	}

	// Supabase revokes the user's sessions (deleted, banned, signed out
	// elsewhere): at the next refresh the app session ends.
	f.RevokeAll("rita@example.com")
	time.Sleep(2100 * time.Millisecond)
	if r := c.Get("/workspaces"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("after revocation: %d", r.Status)
	}
	if _, err := s.App.Store.GetSession(context.Background(), auth.SessionID(tok), time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after a refused refresh: %v", err)
	}
}

func TestSupabaseUnavailable(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{AccessTTL: 2 * time.Second})
	f.AddUser("ops@example.com", sbPW)
	s := supabaseServer(t, f, nil)
	c, r := sbLogin(t, s.URL, "ops@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", r.Status)
	}

	f.SetDown(true)
	_, r = sbLogin(t, s.URL, "ops@example.com", sbPW)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "cannot be reached") || !strings.Contains(r.Body, `data-testid="login-form"`) {
		t.Fatalf("sign-in while GoTrue fails: %d", r.Status)
	}
	_, r = signUp(t, s.URL, "new@example.com", sbPW)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "cannot be reached") {
		t.Fatalf("sign-up while GoTrue fails: %d", r.Status)
	}
	// A signed-in session whose token expires while GoTrue is away is
	// not thrown out: the page says why it cannot go on.
	time.Sleep(2100 * time.Millisecond)
	if r := c.Get("/workspaces"); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("expired token, GoTrue away: %d", r.Status)
	}
	f.SetDown(false)
	if r := c.Get("/workspaces"); r.Status != http.StatusOK {
		t.Fatalf("GoTrue back: %d", r.Status)
	}

	// No answer at all (connection refused) reads the same.
	f.Close()
	_, r = sbLogin(t, s.URL, "ops@example.com", sbPW)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "cannot be reached") {
		t.Fatalf("sign-in with GoTrue gone: %d", r.Status)
	}
}

func TestSupabaseEmailConfirmation(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{NoAutoConfirm: true})
	s := supabaseServer(t, f, nil)
	_, r := signUp(t, s.URL, "cleo@example.com", sbPW)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Check your email") || !strings.Contains(r.Body, `data-testid="login-form"`) {
		t.Fatalf("sign-up with confirmation: %d", r.Status)
	}
	_, r = sbLogin(t, s.URL, "cleo@example.com", sbPW)
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "Confirm your email address first") {
		t.Fatalf("sign-in before confirming: %d", r.Status)
	}
	f.Confirm("cleo@example.com")
	if _, r = sbLogin(t, s.URL, "cleo@example.com", sbPW); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-in after confirming: %d", r.Status)
	}
}

// bearer requests path with an Authorization header and no cookie.
func bearer(t *testing.T, method, u, token string, form url.Values) (int, http.Header) {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Authorization", "Bearer "+token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestSupabaseES256SessionsAndBearerTokens(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{Signing: fakegotrue.ES256})
	s := supabaseServer(t, f, nil, "root@example.com")
	if _, ok := f.AppEnv()["AICODE_SUPABASE_JWT_SECRET"]; ok {
		t.Fatal("ES256 fake configured a JWT secret")
	}

	// Browser sign-up and sign-in verify through the JWKS.
	if _, r := signUp(t, s.URL, "root@example.com", sbPW); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up (ES256): %d %s", r.Status, r.Body)
	}
	c, r := sbLogin(t, s.URL, "root@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-in (ES256): %d", r.Status)
	}
	if r := c.Get("/admin/users"); r.Status != http.StatusOK {
		t.Fatalf("admin page (ES256 admin): %d", r.Status)
	}

	// API clients: a valid access token is enough, no cookie, no CSRF;
	// its user is linked at first use.
	id := f.AddUser("api@example.com", sbPW)
	claims := func() jwt.MapClaims { return f.Claims(id, "api@example.com", "sess-api", time.Hour) }
	good := f.Sign(claims())
	if st, _ := bearer(t, http.MethodGet, s.URL+"/workspaces", good, nil); st != http.StatusOK {
		t.Fatalf("GET with bearer: %d", st)
	}
	if u := localUser(t, s, f, "api@example.com"); u.Role != store.RoleMember {
		t.Fatalf("bearer user: %+v", u)
	}
	if st, _ := bearer(t, http.MethodPost, s.URL+"/workspaces", good, url.Values{"name": {"Bad Name"}}); st != http.StatusUnprocessableEntity {
		t.Fatalf("POST with bearer (no CSRF needed; invalid name): %d", st)
	}
	if st, _ := bearer(t, http.MethodGet, s.URL+"/admin/users", good, nil); st != http.StatusForbidden {
		t.Fatalf("member bearer on admin page: %d", st)
	}

	// Every bad token is 401.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	with := func(k string, v any) string {
		m := claims()
		m[k] = v
		return f.Sign(m)
	}
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	sig[5] ^= 1
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims())
	none.Header["kid"] = f.CurrentKID()
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims()).SignedString([]byte(fakegotrue.DefaultSecret))
	for name, tok := range map[string]string{
		"expired":              with("exp", time.Now().Add(-time.Hour).Unix()),
		"wrong issuer":         with("iss", "https://other.supabase.co/auth/v1"),
		"wrong audience":       with("aud", "anon"),
		"tampered signature":   parts[0] + "." + parts[1] + "." + string(sig),
		"alg none":             noneTok,
		"unknown kid":          fakegotrue.SignES256(claims(), "kid-not-published", stranger),
		"HS256 without secret": hs,
		"garbage":              "abc",
	} {
		st, h := bearer(t, http.MethodGet, s.URL+"/workspaces", tok, nil)
		if st != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s: %d %q", name, st, h.Get("WWW-Authenticate"))
		}
	}
	// A disabled user's valid token is refused too.
	api := localUser(t, s, f, "api@example.com")
	c.Get("/admin/users")
	if r := c.Post("/admin/users/"+api.ID+"/disable", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.Status)
	}
	if st, _ := bearer(t, http.MethodGet, s.URL+"/workspaces", good, nil); st != http.StatusUnauthorized {
		t.Errorf("disabled user's token: %d", st)
	}
}

func TestSupabaseBuiltinModeHasNoSignUp(t *testing.T) {
	s := noEngineServer(t, nil)
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	if r := admin.Get("/signup"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("GET /signup (builtin): %d", r.Status)
	}
	c := testutil.NewClient(t, s.URL)
	c.Get("/login")
	if r := c.Post("/signup", url.Values{"email": {"a@example.com"}, "password": {sbPW}, "password2": {sbPW}}, false); r.Status != http.StatusNotFound {
		t.Errorf("POST /signup (builtin): %d", r.Status)
	}
	// A bearer header means nothing to built-in accounts.
	if st, _ := bearer(t, http.MethodGet, s.URL+"/workspaces", "anything", nil); st != http.StatusSeeOther {
		t.Errorf("bearer in builtin mode: %d", st)
	}
	if r := admin.Get("/admin/users"); strings.Contains(r.Body, "users-managed") || !strings.Contains(r.Body, `data-testid="new-user"`) {
		t.Errorf("builtin users page changed")
	}
}

func TestSupabaseOnPostgres(t *testing.T) {
	f := fakegotrue.Start(t, fakegotrue.Options{AccessTTL: 2 * time.Second})
	s := supabaseServer(t, f, map[string]string{"DATABASE_URL": pgtest.URL(t)}, "pg@example.com")
	c, r := signUp(t, s.URL, "pg@example.com", sbPW)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up: %d", r.Status)
	}
	if u := localUser(t, s, f, "pg@example.com"); u.Role != store.RoleAdmin {
		t.Fatalf("admin on postgres: %+v", u)
	}
	time.Sleep(2100 * time.Millisecond)
	if r := c.Get("/admin/users"); r.Status != http.StatusOK || f.Refreshes() != 1 {
		t.Fatalf("after refresh on postgres: %d, %d refreshes", r.Status, f.Refreshes())
	}
	tok := sessionToken(t, c)
	c.Get("/workspaces")
	if r := c.Post("/logout", nil, false); r.Status != http.StatusSeeOther || f.Logouts() != 1 {
		t.Fatalf("logout: %d", r.Status)
	}
	if _, err := s.App.Store.GetSessionTokens(context.Background(), auth.SessionID(tok)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tokens after sign-out: %v", err)
	}
}
