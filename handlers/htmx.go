package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/url"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"aicode/views/layouts"
)

// htmx request and response headers.
const (
	hxRequest  = "HX-Request"
	hxBoosted  = "HX-Boosted"
	hxRedirect = "HX-Redirect"
	hxTrigger  = "HX-Trigger"
	hxReswap   = "HX-Reswap"
	hxRetarget = "HX-Retarget"
)

// isHTMX reports whether the request was made by htmx for a fragment (a
// boosted navigation wants a full page).
func isHTMX(c *fiber.Ctx) bool {
	return c.Get(hxRequest) == "true" && c.Get(hxBoosted) != "true"
}

// render writes a component as HTML with the given status.
func render(c *fiber.Ctx, status int, comp templ.Component) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return comp.Render(c.UserContext(), c.Response().BodyWriter())
}

// page renders content inside the layout, or alone for an htmx fragment
// request: one component serves both.
func page(c *fiber.Ctx, status int, lp layouts.Props, content templ.Component) error {
	if isHTMX(c) {
		return render(c, status, content)
	}
	return render(c, status, templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		return layouts.Base(lp).Render(templ.WithChildren(ctx, content), w)
	}))
}

// trigger fires client-side events named by the keys (HX-Trigger).
func trigger(c *fiber.Ctx, events map[string]any) {
	b, _ := json.Marshal(events)
	c.Set(hxTrigger, string(b))
}

// toastEvent is the payload app.js shows as a toast.
func toastEvent(level, message string) map[string]string {
	return map[string]string{"level": level, "message": message}
}

// toast asks the page to show a transient message after an htmx request.
func toast(c *fiber.Ctx, level, message string) {
	trigger(c, map[string]any{"toast": toastEvent(level, message)})
}

// redirect sends the browser to path: by HX-Redirect for htmx requests,
// by 303 See Other otherwise.
func redirect(c *fiber.Ctx, path string) error {
	if c.Get(hxRequest) == "true" {
		c.Set(hxRedirect, path)
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Redirect(path, fiber.StatusSeeOther)
}

// localPath accepts only same-site relative paths (for ?next=), so a login
// link cannot redirect off-site.
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || p == "" || u.IsAbs() || u.Host != "" || len(p) > 512 ||
		p[0] != '/' || (len(p) > 1 && (p[1] == '/' || p[1] == '\\')) {
		return ""
	}
	return p
}
