// Package console ties terminal sessions to workspaces: who may open,
// watch and type into a workspace's terminals, how many and how often, and
// what the audit log records (never what anyone types).
package console

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/bus"
	"aicode/services/store"
	"aicode/services/termexec"
	"aicode/services/terminal"
	"aicode/services/workspace"
)

// Errors callers match with errors.Is.
var (
	ErrNotRunning = errors.New("the workspace is not running; start it to open a terminal")
)

// RateLimitedError says how long to wait before opening another terminal.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many terminals opened; try again in %s", e.RetryAfter.Round(time.Second))
}

// Workspaces is what the console needs from the workspace service.
type Workspaces interface {
	GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error)
}

// Options configure the console.
type Options struct {
	OpenPerMinute int
	// Limiter counts openings per user; nil: in this process.
	Limiter auth.Limiter
}

// Service manages the terminals of all workspaces.
type Service struct {
	mgr        *terminal.Manager
	starter    *termexec.Starter
	workspaces Workspaces
	audit      *audit.Recorder
	limiter    auth.Limiter
	opts       Options
	log        *slog.Logger
	// presence, when set, shares sessions with other replicas (presence.go).
	presence *Presence
}

// New returns the console; call Watch to end terminals of containers that
// stop, and Shutdown at exit.
func New(mgr *terminal.Manager, starter *termexec.Starter, ws Workspaces, rec *audit.Recorder, log *slog.Logger, opts Options) *Service {
	limiter := opts.Limiter
	if limiter == nil {
		limiter = auth.NewMemoryLimiter(time.Minute)
	}
	return &Service{
		mgr: mgr, starter: starter, workspaces: ws, audit: rec, log: log, opts: opts,
		limiter: limiter,
	}
}

// Manager exposes the session manager (for counts and tests).
func (s *Service) Manager() *terminal.Manager { return s.mgr }

// authorize loads the workspace and checks act on it.
func (s *Service) authorize(ctx context.Context, p auth.Principal, workspaceID string, act auth.Action) (store.Workspace, auth.Access, error) {
	w, acc, err := s.workspaces.GetWithAccess(ctx, p, workspaceID)
	if err != nil {
		return store.Workspace{}, auth.Access{}, err
	}
	if !auth.AllowedOn(p, act, acc) {
		return store.Workspace{}, auth.Access{}, auth.ErrForbidden
	}
	return w, acc, nil
}

// List returns the open terminals of a workspace.
func (s *Service) List(ctx context.Context, p auth.Principal, workspaceID string) ([]terminal.Info, error) {
	if _, _, err := s.authorize(ctx, p, workspaceID, auth.ActTerminalView); err != nil {
		return nil, err
	}
	return s.presence.merge(ctx, workspaceID, s.mgr.List(workspaceID)), nil
}

// Open starts a new terminal in a running workspace.
func (s *Service) Open(ctx context.Context, p auth.Principal, workspaceID, name string, size terminal.Size) (terminal.Info, error) {
	w, _, err := s.authorize(ctx, p, workspaceID, auth.ActTerminalWrite)
	if err != nil {
		s.record(ctx, p, "terminal.open", workspaceID, "", audit.ResultDenied, err.Error())
		return terminal.Info{}, err
	}
	if w.Status != store.StatusRunning || w.ContainerID == "" {
		return terminal.Info{}, ErrNotRunning
	}
	key := "terminal-open:" + p.UserID
	if blocked, wait := s.limiter.Blocked(key, s.opts.OpenPerMinute); blocked {
		s.record(ctx, p, "terminal.open", w.ID, "", audit.ResultDenied, "rate limited")
		return terminal.Info{}, &RateLimitedError{RetryAfter: wait}
	}
	s.limiter.Hit(key)
	cid := w.ContainerID
	start := func(ctx context.Context, size terminal.Size) (terminal.Process, error) {
		return s.starter.Start(ctx, cid, marker(), size)
	}
	sess, err := s.mgr.Open(ctx, terminal.OpenSpec{
		WorkspaceID: w.ID, Name: name, CreatedBy: p.UserID, CreatedByName: p.Username, Size: size,
	}, start)
	if err != nil {
		s.record(ctx, p, "terminal.open", w.ID, "", audit.ResultError, err.Error())
		return terminal.Info{}, err
	}
	info := sess.Info()
	s.presence.opened(info)
	s.record(ctx, p, "terminal.open", w.ID, info.ID, audit.ResultOK, "name="+info.Name)
	return info, nil
}

// Attach joins a terminal as a viewer; it may type when the principal has
// write access to the workspace's terminals.
func (s *Service) Attach(ctx context.Context, p auth.Principal, workspaceID, id string) (*terminal.Viewer, terminal.Info, error) {
	_, acc, err := s.authorize(ctx, p, workspaceID, auth.ActTerminalView)
	if err != nil {
		return nil, terminal.Info{}, err
	}
	sess, err := s.mgr.Get(workspaceID, id)
	if err != nil {
		return nil, terminal.Info{}, err
	}
	canWrite := auth.AllowedOn(p, auth.ActTerminalWrite, acc)
	v, err := sess.Attach(canWrite)
	if err != nil {
		return nil, terminal.Info{}, err
	}
	mode := "read-only"
	if canWrite {
		mode = "read-write"
	}
	s.record(ctx, p, "terminal.attach", workspaceID, id, audit.ResultOK, mode)
	return v, sess.Info(), nil
}

// Rename renames a terminal.
func (s *Service) Rename(ctx context.Context, p auth.Principal, workspaceID, id, name string) (terminal.Info, error) {
	if _, _, err := s.authorize(ctx, p, workspaceID, auth.ActTerminalWrite); err != nil {
		return terminal.Info{}, err
	}
	info, err := s.mgr.Rename(workspaceID, id, name)
	if err != nil {
		return terminal.Info{}, err
	}
	s.presence.opened(info)
	s.record(ctx, p, "terminal.rename", workspaceID, id, audit.ResultOK, "name="+info.Name)
	return info, nil
}

// Close ends a terminal and its processes.
func (s *Service) Close(ctx context.Context, p auth.Principal, workspaceID, id string) error {
	if _, _, err := s.authorize(ctx, p, workspaceID, auth.ActTerminalWrite); err != nil {
		return err
	}
	// The end itself is audited by OnEnd, with the reason.
	return s.mgr.Close(ctx, workspaceID, id, "closed by "+p.Username)
}

// Watch ends the terminals of workspaces whose container stops or goes,
// with that reason, until ctx ends.
func (s *Service) Watch(ctx context.Context, b *bus.Bus) {
	sub := b.Subscribe(workspace.TopicStatus, 256)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-sub.C():
			ch, ok := msg.(workspace.Change)
			if !ok || ch.Workspace.ID == "" {
				continue
			}
			switch {
			case ch.Deleted:
				s.mgr.CloseWorkspace(ctx, ch.Workspace.ID, "the workspace was deleted")
			case ch.Workspace.Status != store.StatusRunning && ch.Workspace.Status != store.StatusCreating:
				s.mgr.CloseWorkspace(ctx, ch.Workspace.ID, "the workspace container stopped")
			}
		}
	}
}

// OnEnd is the terminal manager's end hook: it audits every ending.
func (s *Service) OnEnd(info terminal.Info, reason string) {
	s.presence.ended(info)
	s.audit.Record(context.Background(), audit.Entry{
		Actor:        audit.Actor{ID: info.CreatedBy, Name: info.CreatedByName},
		Action:       "terminal.close",
		ResourceType: "terminal",
		ResourceID:   info.ID,
		Detail:       "workspace=" + info.WorkspaceID + " name=" + info.Name + " reason=" + reason,
	})
}

func (s *Service) record(ctx context.Context, p auth.Principal, action, workspaceID, termID, result, detail string) {
	d := "workspace=" + workspaceID
	if detail != "" {
		d += " " + detail
	}
	s.audit.Record(ctx, audit.Entry{
		Actor:        audit.Actor{ID: p.UserID, Name: p.Username},
		Action:       action,
		ResourceType: "terminal",
		ResourceID:   termID,
		Result:       result,
		Detail:       d,
	})
}

// marker tags a shell's processes (see termexec) with a random value.
func marker() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
