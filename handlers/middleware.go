package handlers

import (
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"aicode/services/audit"
	"aicode/services/auth"
)

// Cookie names.
const (
	sessionCookie = "aicode_session"
	csrfCookie    = "aicode_csrf"
	flashCookie   = "aicode_flash"
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "_csrf"
)

// errCSRF: the state-changing request carried no valid token.
var errCSRF = errors.New("this form has expired or did not come from this site; reload the page and try again")

// errCrossOrigin: a browser sent a state-changing request from another site.
var errCrossOrigin = errors.New("cross-site request refused")

func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; estimate its status.
		status = statusOf(err)
	}
	// Successful reads are the bulk of the traffic and are logged at debug
	// (the proxy in front keeps access logs); changes and failures at info
	// and above.
	lvl := slog.LevelInfo
	switch {
	case status >= 500:
		lvl = slog.LevelError
	case status >= 400:
		lvl = slog.LevelWarn
	case c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead:
		lvl = slog.LevelDebug
	}
	if !s.Log.Enabled(c.UserContext(), lvl) {
		return err
	}
	// Never log query strings, cookies or bodies: they may hold secrets.
	s.Log.Log(c.UserContext(), lvl, "http request",
		"method", c.Method(), "path", c.Path(), "status", status,
		"duration_ms", float64(time.Since(start).Microseconds())/1000,
		"ip", c.IP(), "request_id", c.GetRespHeader(fiber.HeaderXRequestID))
	return err
}

func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	return c.Next()
}

// requestMeta puts where the request came from on its context, for audit.
func (s *Server) requestMeta(c *fiber.Ctx) error {
	c.SetUserContext(audit.WithMeta(c.UserContext(), audit.Meta{IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent)}))
	return c.Next()
}

// loadSession resolves the session cookie, if any, and, until the first
// admin exists, sends every page to the setup form.
func (s *Server) loadSession(c *fiber.Ctx) error {
	path := c.Path()
	if strings.HasPrefix(path, "/static/") || path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/favicon.ico" {
		return c.Next()
	}
	if !s.setupDone.Load() {
		need, err := s.Accounts.NeedsSetup(c.UserContext())
		if err != nil {
			return err
		}
		if !need {
			s.setupDone.Store(true)
		} else if path != "/setup" {
			return redirect(c, "/setup")
		}
	}
	token := c.Cookies(sessionCookie)
	if token == "" {
		if err := s.bearerSession(c); err != nil {
			return err
		}
		return c.Next()
	}
	a, err := s.Accounts.Authenticate(c.UserContext(), token)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		s.clearSessionCookie(c)
	case err != nil:
		return err
	default:
		c.Locals(localsAuth, &a)
		if a.Extended {
			s.setSessionCookie(c, token, a.Session.ExpiresAt)
		}
	}
	return c.Next()
}

// checkCSRF protects every state-changing request: the token must match
// the session's (or, before sign-in, the one derived from the visitor's
// CSRF cookie), and a browser-supplied Origin must be this site.
func (s *Server) checkCSRF(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if a := session(c); a != nil && a.Bearer {
		// No cookie was involved: nothing for another site to ride on.
		return c.Next()
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !s.sameOrigin(c, origin) {
		return errCrossOrigin
	}
	got := c.Get(csrfHeader)
	if got == "" {
		got = c.FormValue(csrfField)
	}
	if !auth.TokensEqual(got, s.csrfToken(c)) {
		s.Log.Debug("csrf token refused", "path", c.Path(), "signed_in", session(c) != nil,
			"token_sent", got != "", "csrf_cookie", c.Cookies(csrfCookie) != "")
		return errCSRF
	}
	return c.Next()
}

// csrfToken is the token the current visitor's forms must carry.
func (s *Server) csrfToken(c *fiber.Ctx) string {
	if a := session(c); a != nil {
		return a.Session.CSRFToken
	}
	if v := c.Cookies(csrfCookie); v != "" {
		return s.Accounts.AnonCSRFToken(v)
	}
	return ""
}

// ensureAnonCSRF gives a visitor without a session the cookie their
// sign-in or setup form's token is derived from.
func (s *Server) ensureAnonCSRF(c *fiber.Ctx) string {
	v := c.Cookies(csrfCookie)
	if v == "" || len(v) > 128 {
		var err error
		if v, err = auth.NewCookieValue(); err != nil {
			return ""
		}
		c.Cookie(&fiber.Cookie{Name: csrfCookie, Value: v, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: s.secureCookies(c)})
		c.Request().Header.SetCookie(csrfCookie, v)
	}
	return s.Accounts.AnonCSRFToken(v)
}

// sameOrigin compares an Origin header with this site: the configured base
// URL (scheme and host) when there is one, else the request's own host.
// Without a base URL the scheme is not compared: behind a TLS-terminating
// proxy the app sees plain HTTP while the browser's origin is https, and
// another site is told apart by its host anyway.
func (s *Server) sameOrigin(c *fiber.Ctx, origin string) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	if s.Config.BaseURL != "" {
		b, err := url.Parse(s.Config.BaseURL)
		return err == nil && strings.EqualFold(b.Scheme, o.Scheme) && strings.EqualFold(b.Host, o.Host)
	}
	return strings.EqualFold(o.Host, c.Hostname())
}

func (s *Server) secureCookies(c *fiber.Ctx) bool {
	switch s.Config.CookieSecure {
	case "true":
		return true
	case "false":
		return false
	}
	return c.Protocol() == "https"
}

func (s *Server) setSessionCookie(c *fiber.Ctx, token string, expires time.Time) {
	c.Cookie(&fiber.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		Expires:  expires,
		HTTPOnly: true,
		Secure:   s.secureCookies(c),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

func (s *Server) clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0), HTTPOnly: true, Secure: s.secureCookies(c), SameSite: fiber.CookieSameSiteLaxMode})
}

// setFlash leaves a one-time message for the next full page.
func (s *Server) setFlash(c *fiber.Ctx, msg string) {
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60, HTTPOnly: true, Secure: s.secureCookies(c), SameSite: fiber.CookieSameSiteLaxMode})
}

// takeFlash returns and clears the pending message.
func (s *Server) takeFlash(c *fiber.Ctx) string {
	v := c.Cookies(flashCookie)
	if v == "" {
		return ""
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0), HTTPOnly: true})
	msg, err := url.QueryUnescape(v)
	if err != nil || len(msg) > 300 {
		return ""
	}
	return msg
}
