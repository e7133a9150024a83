package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"aicode/services/store"
	"aicode/testutil"
)

// An app that never needs the engine for these tests.
func noEngineServer(t *testing.T, env map[string]string) *testutil.Server {
	t.Helper()
	e := map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
	for k, v := range env {
		e[k] = v
	}
	return testutil.StartServer(t, testutil.Options{Image: "aicode-test:unused", Env: e})
}

func TestSetupHappensOnceEvenUnderRace(t *testing.T) {
	s := noEngineServer(t, nil)
	// Every page sends a fresh installation to setup.
	c := testutil.NewClient(t, s.URL)
	for _, p := range []string{"/", "/workspaces", "/login", "/admin/users"} {
		if r := c.Get(p); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/setup" {
			t.Errorf("GET %s before setup: %d %s", p, r.Status, r.Header.Get("Location"))
		}
	}
	// Mismatched passwords and weak ones are refused with the form kept.
	c.Get("/setup")
	r := c.Post("/setup", url.Values{"username": {"boss"}, "password": {adminPW}, "password2": {"different-one"}}, false)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "do not match") || !strings.Contains(r.Body, `value="boss"`) {
		t.Fatalf("mismatched passwords: %d", r.Status)
	}
	r = c.Post("/setup", url.Values{"username": {"boss"}, "password": {"short"}, "password2": {"short"}}, false)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "at least 10") {
		t.Fatalf("short password: %d", r.Status)
	}

	// Ten browsers race to finish setup: exactly one admin results.
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	racers := make([]*testutil.Client, 10)
	for i := range racers {
		racers[i] = testutil.NewClient(t, s.URL)
		racers[i].Get("/setup")
	}
	for i, cl := range racers {
		wg.Add(1)
		go func(i int, cl *testutil.Client) {
			defer wg.Done()
			codes <- cl.Post("/setup", url.Values{"username": {"admin" + string(rune('a'+i))}, "password": {adminPW}, "password2": {adminPW}}, false).Status
		}(i, cl)
	}
	wg.Wait()
	close(codes)
	won := 0
	for code := range codes {
		if code == http.StatusSeeOther {
			won++
		} else if code != http.StatusConflict && code != http.StatusSeeOther {
			t.Errorf("losing setup answered %d, want 409", code)
		}
	}
	users, _ := s.App.Store.ListUsers(context.Background())
	if won != 1 || len(users) != 1 || users[0].Role != store.RoleAdmin {
		t.Fatalf("setup race: %d winners, users %+v", won, users)
	}
	// Afterwards the setup page is gone.
	if r := testutil.NewClient(t, s.URL).Get("/setup"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("setup after completion: %d %s", r.Status, r.Header.Get("Location"))
	}
}

func TestLoginSessionsAndRateLimit(t *testing.T) {
	s := noEngineServer(t, map[string]string{"AICODE_LOGIN_RATE_LIMIT": "3"})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)

	// Cookie flags.
	c := testutil.NewClient(t, s.URL)
	c.Get("/login")
	r := c.Post("/login", url.Values{"username": {"Admin"}, "password": {adminPW}, "next": {"/admin/audit"}}, false)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/audit" {
		t.Fatalf("login (case-insensitive username, next): %d %s", r.Status, r.Header.Get("Location"))
	}
	cookie := r.Header.Get("Set-Cookie")
	for _, flag := range []string{"HttpOnly", "SameSite=Lax", "aicode_session="} {
		if !strings.Contains(cookie, flag) {
			t.Errorf("session cookie lacks %s: %s", flag, cookie)
		}
	}
	// An off-site next is ignored.
	c2 := testutil.NewClient(t, s.URL)
	c2.Get("/login")
	if r := c2.Post("/login", url.Values{"username": {"admin"}, "password": {adminPW}, "next": {"//evil.example/x"}}, false); r.Header.Get("Location") != "/workspaces" {
		t.Errorf("off-site next followed: %s", r.Header.Get("Location"))
	}

	// Wrong passwords: 401 with the same message as an unknown user, then
	// 429 with Retry-After once the limit is reached.
	admin.CreateUser("target", adminPW, "member")
	bad := testutil.NewClient(t, s.URL)
	bad.Get("/login")
	for i := 0; i < 3; i++ {
		r := bad.Post("/login", url.Values{"username": {"target"}, "password": {"wrong-password"}}, false)
		if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "Wrong username or password") {
			t.Fatalf("wrong password %d: %d", i, r.Status)
		}
	}
	r = bad.Post("/login", url.Values{"username": {"nobody"}, "password": {"wrong-password"}}, false)
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "Wrong username or password") {
		t.Fatalf("unknown user: %d", r.Status)
	}
	r = bad.Post("/login", url.Values{"username": {"target"}, "password": {adminPW}}, false)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures the right password must wait: %d %q", r.Status, r.Header.Get("Retry-After"))
	}

	// Sign-out ends the session on the server, not only in the browser.
	c.Get("/workspaces")
	token := sessionCookie(t, c, s.URL)
	if r := c.Post("/logout", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.Status)
	}
	replay := testutil.NewClient(t, s.URL)
	setCookie(replay, s.URL, token)
	if r := replay.Get("/workspaces"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Errorf("a signed-out session still works: %d", r.Status)
	}

	// Disabling a user ends their sessions; they cannot sign in again.
	admin.CreateUser("dana", adminPW, "member")
	dana := testutil.Login(t, s.URL, "dana", adminPW)
	u, _ := s.App.Store.GetUserByUsername(context.Background(), "dana")
	admin.Get("/admin/users")
	if r := admin.Post("/admin/users/"+u.ID+"/disable", nil, true); r.Status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if r := dana.Get("/workspaces"); r.Status != http.StatusSeeOther {
		t.Errorf("disabled user's session still works: %d", r.Status)
	}
	d2 := testutil.NewClient(t, s.URL)
	d2.Get("/login")
	if r := d2.Post("/login", url.Values{"username": {"dana"}, "password": {adminPW}}, false); r.Status != http.StatusUnauthorized {
		t.Errorf("disabled user signed in: %d", r.Status)
	}

	// Changing one's password keeps this browser signed in, ends the rest.
	other := testutil.Login(t, s.URL, "admin", adminPW)
	admin.Get("/account")
	r = admin.Post("/account/password", url.Values{"current": {"not-it"}, "password": {"new-password-123"}, "password2": {"new-password-123"}}, false)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "current password is not right") {
		t.Fatalf("wrong current password: %d", r.Status)
	}
	r = admin.Post("/account/password", url.Values{"current": {adminPW}, "password": {"new-password-123"}, "password2": {"new-password-123"}}, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("change password: %d %s", r.Status, r.Body)
	}
	if r := admin.Get("/account"); r.Status != http.StatusOK {
		t.Errorf("this browser was signed out by its own password change: %d", r.Status)
	}
	if r := other.Get("/workspaces"); r.Status != http.StatusSeeOther {
		t.Errorf("other session survived the password change: %d", r.Status)
	}
	testutil.Login(t, s.URL, "admin", "new-password-123")
}

func TestUserAdministrationRules(t *testing.T) {
	s := noEngineServer(t, nil)
	ctx := context.Background()
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	me, _ := s.App.Store.GetUserByUsername(ctx, "admin")

	// Duplicate and invalid users are refused with the reason on the form.
	admin.CreateUser("erin", adminPW, "viewer")
	r := admin.Post("/admin/users", url.Values{"username": {"ERIN"}, "password": {adminPW}, "role": {"member"}}, true)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "taken") {
		t.Errorf("duplicate username: %d", r.Status)
	}
	r = admin.Post("/admin/users", url.Values{"username": {"x y"}, "password": {"short"}, "role": {"god"}}, true)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `data-testid="error-username"`) || !strings.Contains(r.Body, `data-testid="error-password"`) {
		t.Errorf("invalid user: %d", r.Status)
	}

	// The last admin cannot be demoted or disabled, nor can admins act on
	// themselves.
	if r := admin.Post("/admin/users/"+me.ID+"/role", url.Values{"role": {"viewer"}}, true); r.Status == http.StatusOK {
		t.Error("admin demoted themselves")
	}
	if r := admin.Post("/admin/users/"+me.ID+"/disable", nil, true); r.Status == http.StatusOK {
		t.Error("admin disabled themselves")
	}
	erin, _ := s.App.Store.GetUserByUsername(ctx, "erin")
	r = admin.Post("/admin/users/"+erin.ID+"/role", url.Values{"role": {"admin"}}, true)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `selected value="admin"`) && !strings.Contains(r.Body, `value="admin" selected`) {
		t.Fatalf("promote: %d %s", r.Status, r.Body)
	}
	// Now erin (admin) demotes the first admin: allowed, two admins exist.
	erinC := testutil.Login(t, s.URL, "erin", adminPW)
	erinC.Get("/admin/users")
	if r := erinC.Post("/admin/users/"+me.ID+"/role", url.Values{"role": {"member"}}, true); r.Status != http.StatusOK {
		t.Fatalf("demote other admin: %d", r.Status)
	}
	// The former admin lost admin pages at once.
	if r := admin.Get("/admin/users"); r.Status != http.StatusForbidden {
		t.Errorf("demoted admin still sees users: %d", r.Status)
	}
	// Erin is now the last admin and is protected.
	if u, _ := s.App.Store.GetUser(ctx, erin.ID); u.Role != store.RoleAdmin {
		t.Fatal("erin not admin")
	}
	if n, _ := s.App.Store.CountActiveAdmins(ctx); n != 1 {
		t.Fatalf("admins: %d", n)
	}

	// An admin sets a forgotten password: too short is refused on the row;
	// a good one works and ends the user's sessions.
	erinC.CreateUser("fay", adminPW, "member")
	fay := testutil.Login(t, s.URL, "fay", adminPW)
	fayU, _ := s.App.Store.GetUserByUsername(ctx, "fay")
	erinC.Get("/admin/users")
	r = erinC.Post("/admin/users/"+fayU.ID+"/password", url.Values{"password": {"short"}}, true)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `data-testid="row-error"`) {
		t.Errorf("short reset password: %d", r.Status)
	}
	if r := erinC.Post("/admin/users/"+fayU.ID+"/password", url.Values{"password": {"fresh-password-9"}}, true); r.Status != http.StatusOK {
		t.Fatalf("reset password: %d %s", r.Status, r.Body)
	}
	if r := fay.Get("/workspaces"); r.Status != http.StatusSeeOther {
		t.Errorf("fay's session survived the reset: %d", r.Status)
	}
	testutil.Login(t, s.URL, "fay", "fresh-password-9")

	// The audit log shows all of it, filterable.
	page := erinC.Get("/admin/audit?action=user.")
	for _, want := range []string{"user.create", "user.role", "user.disable", "user.password"} {
		if !strings.Contains(page.Body, `data-action="`+want+`"`) {
			t.Errorf("audit page lacks %s", want)
		}
	}
	if strings.Contains(page.Body, `data-action="auth.login"`) {
		t.Error("audit filter by action prefix ignored")
	}
	denied := erinC.Get("/admin/audit?result=denied")
	if !strings.Contains(denied.Body, `data-result="denied"`) {
		t.Error("denied actions not in the audit log")
	}
}

func sessionCookie(t *testing.T, c *testutil.Client, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == "aicode_session" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func setCookie(c *testutil.Client, base, token string) {
	u, _ := url.Parse(base)
	c.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "aicode_session", Value: token, Path: "/"}})
}
