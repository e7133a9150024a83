// Package audit writes the audit log: who did what to which resource, with
// what result, when and from where.
package audit

import (
	"context"
	"log/slog"
	"time"

	"aicode/services/store"
)

// Results recorded for an action.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

type metaKey struct{}

// Meta is where a request came from. Handlers put it on the request context
// once; services read it when they record.
type Meta struct {
	IP        string
	UserAgent string
}

// WithMeta returns ctx carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the request origin carried by ctx, if any.
func MetaFrom(ctx context.Context) Meta {
	m, _ := ctx.Value(metaKey{}).(Meta)
	return m
}

// Actor identifies who acted; the zero value is an anonymous visitor.
type Actor struct {
	ID   string
	Name string
}

// Entry is one thing to record.
type Entry struct {
	Actor        Actor
	Action       string
	ResourceType string
	ResourceID   string
	Result       string
	Detail       string
}

// Recorder appends entries to the store.
type Recorder struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time
}

// NewRecorder returns a recorder writing to s.
func NewRecorder(s store.Store, log *slog.Logger) *Recorder {
	return &Recorder{store: s, log: log, now: time.Now}
}

// Record appends e. A failure to write the audit log is logged loudly but
// does not undo the action it describes, which has already happened.
func (r *Recorder) Record(ctx context.Context, e Entry) {
	m := MetaFrom(ctx)
	if e.Result == "" {
		e.Result = ResultOK
	}
	ev := &store.AuditEvent{
		At:           r.now().UTC(),
		ActorID:      e.Actor.ID,
		ActorName:    e.Actor.Name,
		Action:       e.Action,
		ResourceType: e.ResourceType,
		ResourceID:   e.ResourceID,
		Result:       e.Result,
		Detail:       truncate(e.Detail, 1000),
		IP:           m.IP,
		UserAgent:    truncate(m.UserAgent, 300),
	}
	// The action already happened even if the caller's request is being
	// cancelled; the audit write must not be lost with it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.store.AppendAudit(wctx, ev); err != nil {
		r.log.Error("audit write failed", "action", e.Action, "resource", e.ResourceID, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
