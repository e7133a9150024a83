package handlers

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/config"
	"aicode/services/validation"
	authview "aicode/views/pages/auth"
)

// SignUpper registers accounts with an external provider (Supabase).
type SignUpper interface {
	SignUp(ctx context.Context, email, password string) (auth.Login, error)
}

// BearerAuthenticator accepts provider access tokens from API clients.
type BearerAuthenticator interface {
	AuthenticateBearer(ctx context.Context, token string) (auth.Authenticated, error)
}

// supabaseMode: accounts live in Supabase, not in the app.
func (s *Server) supabaseMode() bool { return s.Config.Auth.Provider == config.AuthSupabase }

// managedBy names who keeps the accounts when it is not the app.
func (s *Server) managedBy() string {
	if s.supabaseMode() {
		return "Supabase"
	}
	return ""
}

func (s *Server) signUpForm(c *fiber.Ctx) error {
	if _, ok := s.Accounts.(SignUpper); !ok || !s.supabaseMode() {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	if session(c) != nil {
		return c.Redirect("/workspaces", fiber.StatusSeeOther)
	}
	return page(c, fiber.StatusOK, s.layoutProps(c, "Create account", ""), authview.SignUp(authview.FormProps{CSRF: s.ensureAnonCSRF(c), Supabase: true}))
}

func (s *Server) signUp(c *fiber.Ctx) error {
	su, ok := s.Accounts.(SignUpper)
	if !ok || !s.supabaseMode() {
		return fiber.ErrNotFound
	}
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	props := authview.FormProps{CSRF: s.ensureAnonCSRF(c), Username: email, Supabase: true}
	lp := s.layoutProps(c, "Create account", "")
	if password != c.FormValue("password2") {
		props.Errors = map[string]string{"password2": "the passwords do not match"}
		return page(c, fiber.StatusUnprocessableEntity, lp, authview.SignUp(props))
	}
	l, err := su.SignUp(c.UserContext(), email, password)
	var (
		verrs   validation.Errors
		rateErr *auth.RateLimitedError
	)
	switch {
	case err == nil:
		s.setSessionCookie(c, l.Token, l.Session.ExpiresAt)
		s.setFlash(c, "Welcome, "+l.User.Username+".")
		return redirect(c, "/workspaces")
	case errors.Is(err, auth.ErrConfirmationSent):
		lprops := authview.FormProps{CSRF: props.CSRF, Username: email, Supabase: true, Notice: sentence(err.Error())}
		return page(c, fiber.StatusOK, s.layoutProps(c, "Sign in", ""), authview.Login(lprops))
	case errors.As(err, &verrs):
		props.Errors = verrs
		return page(c, fiber.StatusUnprocessableEntity, lp, authview.SignUp(props))
	case errors.As(err, &rateErr):
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(rateErr.RetryAfter.Seconds())+1))
	}
	status, _, msg := classify(err)
	if status == fiber.StatusInternalServerError {
		return err
	}
	props.Error = msg
	return page(c, status, lp, authview.SignUp(props))
}

// bearerSession authenticates an API client's Authorization: Bearer
// header (Supabase mode, no session cookie). A header that does not
// verify is answered 401 at once rather than treated as anonymous.
func (s *Server) bearerSession(c *fiber.Ctx) error {
	ba, ok := s.Accounts.(BearerAuthenticator)
	if !ok || !s.supabaseMode() {
		return nil
	}
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return nil
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return nil
	}
	a, err := ba.AuthenticateBearer(c.UserContext(), strings.TrimSpace(token))
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
		}
		return err
	}
	c.Locals(localsAuth, &a)
	return nil
}

// wrongCredentials is the sign-in form's message for refused credentials.
func (s *Server) wrongCredentials() string {
	if s.supabaseMode() {
		return "Wrong email or password."
	}
	return "Wrong username or password."
}
