package handlers

import (
	"context"
	"io/fs"
	"mime"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"aicode/services/audit"
	"aicode/static"
	"aicode/views/layouts"
)

// layoutProps gathers what every full page shows around its content.
func (s *Server) layoutProps(c *fiber.Ctx, title, active string) layouts.Props {
	lp := layouts.Props{Title: title, Active: active, AssetsMissing: assetsMissing}
	if a := session(c); a != nil {
		p := a.Principal
		lp.User = &p
		lp.CSRF = a.Session.CSRFToken
		if err := s.Workspaces.EngineHealth(); err != nil {
			lp.EngineError = engineMessage(err)
		}
		lp.Flash = s.takeFlash(c)
	}
	return lp
}

var assetsMissing = static.Missing()

func engineMessage(err error) string {
	_, _, msg := classify(err)
	return msg
}

func (s *Server) auditRecorder() *audit.Recorder { return s.Recorder }

func (s *Server) home(c *fiber.Ctx) error { return c.Redirect("/workspaces", fiber.StatusSeeOther) }

func (s *Server) healthz(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendString("ok")
}

// readyz reports each dependency separately; any failure makes it 503.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := map[string]Checker{"store": s.Store, "engine": s.Engine}
	for name, chk := range s.Extra {
		checks[name] = chk
	}
	out := fiber.Map{}
	ok := true
	for name, chk := range checks {
		if err := chk.Ping(ctx); err != nil {
			ok = false
			out[name] = fiber.Map{"ok": false, "error": engineOrPlain(err)}
		} else {
			out[name] = fiber.Map{"ok": true}
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if !ok {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(fiber.Map{"ready": ok, "checks": out})
}

func engineOrPlain(err error) string {
	if st, _, msg := classify(err); st != fiber.StatusInternalServerError {
		return msg
	}
	return err.Error()
}

// static serves the embedded assets. Versioned URLs (?v=hash) are cached
// for a year; anything else must revalidate.
func (s *Server) static(c *fiber.Ctx) error {
	name := strings.TrimPrefix(path.Clean("/"+c.Params("*")), "/")
	b, err := fs.ReadFile(static.FS(), name)
	if err != nil || name == "" || name == ".gitkeep" {
		return fiber.ErrNotFound
	}
	hash := static.Hash(name)
	etag := `"` + hash + `"`
	c.Set(fiber.HeaderETag, etag)
	if v := c.Query("v"); v != "" && v == hash {
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Set(fiber.HeaderContentType, ct)
	return c.Send(b)
}

func (s *Server) favicon(c *fiber.Ctx) error {
	return c.Redirect(static.URL("favicon.svg"), fiber.StatusMovedPermanently)
}
