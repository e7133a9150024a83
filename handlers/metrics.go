package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// unmatchedRoute labels requests no route answered (unknown paths, and
// requests a middleware ended first, such as a redirect to sign in), so
// raw paths never become label values.
const unmatchedRoute = "unmatched"

// observeRequests times every request into the duration histogram, by
// route pattern.
func (s *Server) observeRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; estimate its status.
		status = statusOf(err)
	}
	// c.Route() is the last route that ran: the matched one, or, when a
	// middleware (all mounted at "/") ended the request or nothing matched,
	// that middleware's "/". Only a request for "/" itself matched "/".
	route := unmatchedRoute
	if r := c.Route(); r != nil && r.Path != "" && (r.Path != "/" || c.Path() == "/") {
		route = r.Path
	}
	s.Metrics.ObserveHTTP(c.Method(), route, status, time.Since(start))
	return err
}

// metricsRoute serves Prometheus metrics. With a configured token the
// scraper must present it as a bearer token; without one only loopback
// clients are answered, judged by the connection's own peer address (a
// proxy's X-Forwarded-For is not believed: behind a proxy every client
// would look like the proxy, so set a token there).
func (s *Server) metricsRoute() fiber.Handler {
	if s.Metrics == nil {
		return func(*fiber.Ctx) error { return fiber.ErrNotFound }
	}
	serve := adaptor.HTTPHandler(s.Metrics.Handler())
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		if tok := s.Config.Metrics.Token; tok != "" {
			got, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
			if !ok || !sameSecret(strings.TrimSpace(got), tok) {
				c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
				return c.Status(fiber.StatusUnauthorized).SendString("metrics need the bearer token (AICODE_METRICS_TOKEN)\n")
			}
		} else if ip := c.Context().RemoteIP(); ip == nil || !ip.IsLoopback() {
			return c.Status(fiber.StatusForbidden).SendString("metrics are served to loopback clients only; set AICODE_METRICS_TOKEN to scrape from elsewhere\n")
		}
		return serve(c)
	}
}

// sameSecret compares in constant time, whatever the lengths.
func sameSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
