package handlers

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	auditview "aicode/views/pages/audit"

	"aicode/services/store"
)

const auditPageSize = 100

func (s *Server) listAudit(c *fiber.Ctx) error {
	f := store.AuditFilter{
		Action:     clip(c.Query("action"), 64),
		Result:     c.Query("result"),
		ResourceID: clip(c.Query("resource"), 64),
		ActorID:    clip(c.Query("actor"), 64),
		Limit:      auditPageSize + 1,
	}
	switch f.Result {
	case "", "ok", "denied", "error":
	default:
		f.Result = ""
	}
	if b, err := strconv.ParseInt(c.Query("before"), 10, 64); err == nil && b > 0 {
		f.BeforeID = b
	}
	events, err := s.Audit.ListAudit(c.UserContext(), f)
	if err != nil {
		return err
	}
	props := auditview.Props{Events: events, Filter: f}
	// One extra row tells whether an older page exists.
	if len(events) > auditPageSize {
		props.Events = events[:auditPageSize]
		props.NextBefore = props.Events[auditPageSize-1].ID
	}
	return page(c, fiber.StatusOK, s.layoutProps(c, "Audit log", "audit"), auditview.Page(props))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
