package handlers

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"aicode/services/archive"
	"aicode/services/auth"
	"aicode/services/snapshot"
	"aicode/services/store"
	"aicode/services/validation"
	snapview "aicode/views/pages/snapshots"
)

// Snapshots is what the handlers need from the snapshot service.
type Snapshots interface {
	List(ctx context.Context, p auth.Principal, wsID string) ([]store.Snapshot, error)
	Create(ctx context.Context, p auth.Principal, wsID, label string) (store.Snapshot, error)
	Delete(ctx context.Context, p auth.Principal, wsID, id string) error
	RestoreNew(ctx context.Context, p auth.Principal, wsID, id, name string) (store.Workspace, error)
	RestoreOver(ctx context.Context, p auth.Principal, wsID, id string) (store.Workspace, error)
	Schedule(ctx context.Context, p auth.Principal, wsID string) (store.SnapshotSchedule, bool, error)
	SetSchedule(ctx context.Context, p auth.Principal, wsID string, intervalHours, keepLast int) (store.SnapshotSchedule, error)
	ClearSchedule(ctx context.Context, p auth.Principal, wsID string) error
}

func (s *Server) snapshotProps(c *fiber.Ctx) (snapview.TabProps, error) {
	p := principal(c)
	w := loadedWorkspace(c)
	acc := loadedAccess(c)
	ctx := c.UserContext()
	list, err := s.Snapshots.List(ctx, p, w.ID)
	if err != nil {
		return snapview.TabProps{}, err
	}
	sc, has, err := s.Snapshots.Schedule(ctx, p, w.ID)
	if err != nil {
		return snapview.TabProps{}, err
	}
	return snapview.TabProps{
		User: p, Workspace: w, Access: acc, Snapshots: list, CSRF: csrfOf(c),
		CanCreate: auth.AllowedOn(p, snapshot.ActCreate, acc),
		CanManage: auth.AllowedOn(p, snapshot.ActRestore, acc),
		Schedule:  sc, HasSched: has,
	}, nil
}

// snapshotsTab is the workspace's Snapshots tab.
func (s *Server) snapshotsTab(c *fiber.Ctx) error {
	props, err := s.snapshotProps(c)
	if err != nil {
		return err
	}
	return s.renderSnapshots(c, fiber.StatusOK, props)
}

func (s *Server) renderSnapshots(c *fiber.Ctx, status int, props snapview.TabProps) error {
	lp := s.layoutProps(c, props.Workspace.Name+" · Snapshots", "workspaces")
	return page(c, status, lp, snapview.Tab(props))
}

// snapshotFailed shows the tab again with what went wrong. Errors the
// central handler knows (not found, forbidden) go to it.
func (s *Server) snapshotFailed(c *fiber.Ctx, err error, edit func(*snapview.TabProps)) error {
	status, msg, field := snapshotError(err)
	if status == 0 {
		return err
	}
	props, perr := s.snapshotProps(c)
	if perr != nil {
		return perr
	}
	props.Error, props.Field = msg, field
	if edit != nil {
		edit(&props)
	}
	return s.renderSnapshots(c, status, props)
}

// snapshotError maps the snapshot service's errors to a status and a
// message; 0 leaves the error to the central handler.
func snapshotError(err error) (int, string, string) {
	var unav *snapshot.UnavailableError
	var verrs validation.Errors
	switch {
	case errors.As(err, &unav):
		return fiber.StatusServiceUnavailable, unav.Error(), ""
	case errors.As(err, &verrs):
		for f, m := range verrs {
			return fiber.StatusUnprocessableEntity, sentence(m), f
		}
	case errors.Is(err, snapshot.ErrNotFound):
		return fiber.StatusNotFound, "This snapshot does not exist (it may have been deleted).", ""
	case errors.Is(err, snapshot.ErrBusy), errors.Is(err, snapshot.ErrNotReady):
		return fiber.StatusConflict, sentence(err.Error()), ""
	case errors.Is(err, archive.ErrUnsafe), errors.Is(err, archive.ErrTooLarge), errors.Is(err, archive.ErrTooMany):
		return fiber.StatusUnprocessableEntity, sentence(err.Error()), ""
	}
	// Engine and image errors of a new workspace read as on other pages.
	switch st, _, msg := classify(err); st {
	case fiber.StatusInternalServerError, fiber.StatusNotFound, fiber.StatusForbidden, fiber.StatusUnauthorized:
		return 0, "", ""
	default:
		return st, msg, ""
	}
}

// createSnapshot starts a snapshot and shows the tab with it in progress.
func (s *Server) createSnapshot(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	label := c.FormValue("label")
	if _, err := s.Snapshots.Create(c.UserContext(), principal(c), w.ID, label); err != nil {
		return s.snapshotFailed(c, err, func(p *snapview.TabProps) { p.Label = label })
	}
	s.setFlash(c, "Snapshot started: it appears as ready below when the archive is complete.")
	return redirect(c, "/workspaces/"+w.ID+"/snapshots")
}

// deleteSnapshot removes a snapshot.
func (s *Server) deleteSnapshot(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	if err := s.Snapshots.Delete(c.UserContext(), principal(c), w.ID, c.Params("sid")); err != nil {
		return s.snapshotFailed(c, err, nil)
	}
	s.setFlash(c, "Snapshot deleted.")
	return redirect(c, "/workspaces/"+w.ID+"/snapshots")
}

// restoreSnapshot restores into a new workspace (mode=new, name) or over
// this one (mode=over, confirm=yes).
func (s *Server) restoreSnapshot(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	p := principal(c)
	id := c.Params("sid")
	switch c.FormValue("mode") {
	case "new":
		name := strings.TrimSpace(c.FormValue("name"))
		nw, err := s.Snapshots.RestoreNew(c.UserContext(), p, w.ID, id, name)
		if err != nil {
			return s.snapshotFailed(c, err, func(pp *snapview.TabProps) {
				pp.ForkOf, pp.ForkName = id, name
				if pp.Field != "" && pp.Field != "name" {
					// The workspace form's other fields are not on this
					// form: show the message against the name.
					pp.Field = "name"
				}
			})
		}
		s.setFlash(c, "Restored the snapshot into the new workspace "+nw.Name+".")
		return redirect(c, "/workspaces/"+nw.ID)
	case "over":
		if c.FormValue("confirm") != "yes" {
			return s.snapshotFailed(c, validation.Field("confirm", "confirm that every file of this workspace is to be replaced"), nil)
		}
		if _, err := s.Snapshots.RestoreOver(c.UserContext(), p, w.ID, id); err != nil {
			return s.snapshotFailed(c, err, nil)
		}
		s.setFlash(c, "Restored the snapshot over this workspace.")
		return redirect(c, "/workspaces/"+w.ID+"/snapshots")
	}
	return s.snapshotFailed(c, validation.Field("mode", "choose where to restore the snapshot"), nil)
}

// setSnapshotSchedule sets (or, with off=1, clears) the schedule.
func (s *Server) setSnapshotSchedule(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	p := principal(c)
	if c.FormValue("off") == "1" {
		if err := s.Snapshots.ClearSchedule(c.UserContext(), p, w.ID); err != nil {
			return s.snapshotFailed(c, err, nil)
		}
		s.setFlash(c, "Scheduled snapshots are off.")
		return redirect(c, "/workspaces/"+w.ID+"/snapshots")
	}
	every, err1 := strconv.Atoi(strings.TrimSpace(c.FormValue("interval_hours")))
	keep, err2 := strconv.Atoi(strings.TrimSpace(c.FormValue("keep_last")))
	if err1 != nil {
		every = 0
	}
	if err2 != nil {
		keep = 0
	}
	if _, err := s.Snapshots.SetSchedule(c.UserContext(), p, w.ID, every, keep); err != nil {
		return s.snapshotFailed(c, err, nil)
	}
	s.setFlash(c, "Schedule saved.")
	return redirect(c, "/workspaces/"+w.ID+"/snapshots")
}
