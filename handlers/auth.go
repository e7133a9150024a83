package handlers

import (
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/validation"
	authview "aicode/views/pages/auth"
)

func (s *Server) setupForm(c *fiber.Ctx) error {
	if s.setupDone.Load() {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	return page(c, fiber.StatusOK, s.layoutProps(c, "Set up", ""), authview.Setup(authview.FormProps{CSRF: s.ensureAnonCSRF(c)}))
}

func (s *Server) setup(c *fiber.Ctx) error {
	if s.setupDone.Load() {
		return auth.ErrSetupDone
	}
	username, password := c.FormValue("username"), c.FormValue("password")
	props := authview.FormProps{CSRF: s.ensureAnonCSRF(c), Username: username}
	if password != c.FormValue("password2") {
		props.Errors = map[string]string{"password2": "the passwords do not match"}
		return page(c, fiber.StatusUnprocessableEntity, s.layoutProps(c, "Set up", ""), authview.Setup(props))
	}
	l, err := s.Accounts.Setup(c.UserContext(), username, password)
	var verrs validation.Errors
	switch {
	case errors.As(err, &verrs):
		props.Errors = verrs
		return page(c, fiber.StatusUnprocessableEntity, s.layoutProps(c, "Set up", ""), authview.Setup(props))
	case errors.Is(err, auth.ErrSetupDone):
		s.setupDone.Store(true)
		return err
	case err != nil:
		return err
	}
	s.setupDone.Store(true)
	s.setSessionCookie(c, l.Token, l.Session.ExpiresAt)
	s.setFlash(c, "Welcome, "+l.User.Username+". Create your first workspace below.")
	return redirect(c, "/workspaces")
}

func (s *Server) loginForm(c *fiber.Ctx) error {
	if session(c) != nil {
		return c.Redirect(firstNonEmpty(localPath(c.Query("next")), "/workspaces"), fiber.StatusSeeOther)
	}
	props := authview.FormProps{CSRF: s.ensureAnonCSRF(c), Next: localPath(c.Query("next")), Supabase: s.supabaseMode()}
	if c.Query("signed_out") != "" {
		props.Notice = "You have signed out."
	}
	return page(c, fiber.StatusOK, s.layoutProps(c, "Sign in", ""), authview.Login(props))
}

func (s *Server) login(c *fiber.Ctx) error {
	username := c.FormValue("username")
	next := localPath(c.FormValue("next"))
	l, err := s.Accounts.Login(c.UserContext(), username, c.FormValue("password"))
	if err != nil {
		props := authview.FormProps{CSRF: s.ensureAnonCSRF(c), Username: username, Next: next, Supabase: s.supabaseMode()}
		status, _, msg := classify(err)
		switch {
		case errors.Is(err, auth.ErrInvalidCredentials):
			status, msg = fiber.StatusUnauthorized, s.wrongCredentials()
		case status == fiber.StatusInternalServerError:
			return err
		}
		var rateErr *auth.RateLimitedError
		if errors.As(err, &rateErr) {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(rateErr.RetryAfter.Seconds())+1))
		}
		props.Error = msg
		return page(c, status, s.layoutProps(c, "Sign in", ""), authview.Login(props))
	}
	s.setSessionCookie(c, l.Token, l.Session.ExpiresAt)
	return redirect(c, firstNonEmpty(next, "/workspaces"))
}

func (s *Server) logout(c *fiber.Ctx) error {
	if err := s.Accounts.Logout(c.UserContext(), principal(c), c.Cookies(sessionCookie)); err != nil {
		return err
	}
	s.clearSessionCookie(c)
	return redirect(c, "/login?signed_out=1")
}

func (s *Server) account(c *fiber.Ctx) error {
	p := principal(c)
	lp := s.layoutProps(c, "Your account", "account")
	return page(c, fiber.StatusOK, lp, authview.Account(authview.FormProps{CSRF: lp.CSRF, Supabase: s.supabaseMode()}, p.Username, string(p.Role), s.accountCredential(c)))
}

func (s *Server) changePassword(c *fiber.Ctx) error {
	p := principal(c)
	lp := s.layoutProps(c, "Your account", "account")
	props := authview.FormProps{CSRF: lp.CSRF, Supabase: s.supabaseMode()}
	next := c.FormValue("password")
	if next != c.FormValue("password2") {
		props.Errors = map[string]string{"password2": "the passwords do not match"}
		return page(c, fiber.StatusUnprocessableEntity, lp, authview.Account(props, p.Username, string(p.Role), s.accountCredential(c)))
	}
	err := s.Accounts.ChangeOwnPassword(c.UserContext(), p, c.FormValue("current"), next)
	var verrs validation.Errors
	if errors.As(err, &verrs) {
		props.Errors = verrs
		return page(c, fiber.StatusUnprocessableEntity, lp, authview.Account(props, p.Username, string(p.Role), s.accountCredential(c)))
	}
	if err != nil {
		return err
	}
	// Every session of the user ended with the change; open a new one for
	// this browser so the user stays signed in here.
	l, err := s.Accounts.Reauthenticate(c.UserContext(), p)
	if err != nil {
		return err
	}
	s.setSessionCookie(c, l.Token, l.Session.ExpiresAt)
	s.setFlash(c, "Password changed. Other sessions were signed out.")
	return redirect(c, "/account")
}
