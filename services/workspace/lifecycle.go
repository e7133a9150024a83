package workspace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/store"
)

// Action is a lifecycle action on an existing workspace.
type Action string

const (
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
)

// Do runs a lifecycle action and returns the workspace as observed after it.
func (s *Service) Do(ctx context.Context, p auth.Principal, id string, a Action) (store.Workspace, error) {
	auditAction := "workspace." + string(a)
	w, err := s.authorize(ctx, p, id, auditAction)
	if err != nil {
		return store.Workspace{}, err
	}
	unlock := s.locks.lock(w.ID)
	defer unlock()
	// Re-read under the lock: an action that held it may have changed it.
	if w, err = s.store.GetWorkspace(ctx, id); err != nil {
		return store.Workspace{}, s.notFound(err)
	}

	switch a {
	case ActionStart:
		err = s.start(ctx, &w)
	case ActionStop:
		err = s.stop(ctx, &w)
	case ActionRestart:
		err = s.restart(ctx, &w)
	default:
		return store.Workspace{}, fmt.Errorf("unknown action %q", a)
	}
	if err != nil {
		s.record(ctx, p, auditAction, w.ID, audit.ResultError, err.Error())
		if errors.Is(err, engine.ErrUnavailable) {
			return store.Workspace{}, err
		}
		// Keep what the engine says now, and why the action failed.
		cid := w.ContainerID
		if _, oerr := s.observe(ctx, w.ID, &cid); oerr != nil {
			s.log.Warn("observe after failed action", "workspace", w.ID, "err", oerr)
		}
		return store.Workspace{}, err
	}
	s.record(ctx, p, auditAction, w.ID, audit.ResultOK, "")
	return s.observe(ctx, w.ID, &w.ContainerID)
}

func (s *Service) start(ctx context.Context, w *store.Workspace) error {
	if err := s.store.SetWorkspaceDesired(ctx, w.ID, store.DesiredRunning); err != nil {
		return fmt.Errorf("save desired state: %w", err)
	}
	if err := s.ensureContainer(ctx, w); err != nil {
		return err
	}
	err := s.engine.StartContainer(ctx, w.ContainerID)
	if errors.Is(err, engine.ErrNotFound) {
		// Removed between the check and the start: create it again.
		w.ContainerID = ""
		if err = s.ensureContainer(ctx, w); err == nil {
			err = s.engine.StartContainer(ctx, w.ContainerID)
		}
	}
	return err
}

func (s *Service) stop(ctx context.Context, w *store.Workspace) error {
	if err := s.store.SetWorkspaceDesired(ctx, w.ID, store.DesiredStopped); err != nil {
		return fmt.Errorf("save desired state: %w", err)
	}
	if w.ContainerID == "" {
		return nil
	}
	err := s.engine.StopContainer(ctx, w.ContainerID, s.StopTimeout)
	if errors.Is(err, engine.ErrNotFound) {
		return nil // nothing runs; observe() will say it is missing
	}
	return err
}

func (s *Service) restart(ctx context.Context, w *store.Workspace) error {
	if err := s.store.SetWorkspaceDesired(ctx, w.ID, store.DesiredRunning); err != nil {
		return fmt.Errorf("save desired state: %w", err)
	}
	if w.ContainerID == "" {
		return s.start(ctx, w)
	}
	err := s.engine.RestartContainer(ctx, w.ContainerID, s.StopTimeout)
	if errors.Is(err, engine.ErrNotFound) {
		w.ContainerID = ""
		return s.start(ctx, w)
	}
	return err
}

// ensureContainer makes sure w has a container, creating one from the
// stored settings when it was never created or was removed outside the app.
func (s *Service) ensureContainer(ctx context.Context, w *store.Workspace) error {
	if w.ContainerID != "" {
		_, err := s.engine.InspectContainer(ctx, w.ContainerID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, engine.ErrNotFound) {
			return err
		}
	}
	ok, err := s.engine.ImageExists(ctx, w.Image)
	if err != nil {
		return err
	}
	if !ok {
		return &ImageMissingError{Image: w.Image}
	}
	if err := s.root.CheckExisting(w.ProjectPath); err != nil {
		return err
	}
	// A leftover container with our name (same workspace) is replaced.
	id, err := s.engine.CreateContainer(ctx, s.spec(*w))
	if errors.Is(err, engine.ErrConflict) {
		if rerr := s.engine.RemoveContainer(ctx, ContainerName(*w)); rerr != nil {
			return rerr
		}
		id, err = s.engine.CreateContainer(ctx, s.spec(*w))
	}
	if err != nil {
		return err
	}
	w.ContainerID = id
	return s.store.SetWorkspaceStatus(ctx, w.ID, store.StatusUpdate{
		Status: store.StatusStopped, ContainerID: &id, ObservedAt: s.now().UTC(),
	})
}

// Delete removes the container and the workspace; with deleteFiles it also
// deletes the project directory.
func (s *Service) Delete(ctx context.Context, p auth.Principal, id string, deleteFiles bool) error {
	w, err := s.authorize(ctx, p, id, "workspace.delete")
	if err != nil {
		return err
	}
	unlock := s.locks.lock(w.ID)
	defer unlock()
	if w, err = s.store.GetWorkspace(ctx, id); err != nil {
		return s.notFound(err)
	}
	if w.ContainerID != "" {
		if err := s.engine.RemoveContainer(ctx, w.ContainerID); err != nil {
			s.record(ctx, p, "workspace.delete", w.ID, audit.ResultError, err.Error())
			return err
		}
	}
	if deleteFiles {
		if err := s.root.RemoveAll(w.ProjectPath); err != nil {
			s.record(ctx, p, "workspace.delete", w.ID, audit.ResultError, err.Error())
			return err
		}
	}
	if err := s.store.DeleteWorkspace(ctx, w.ID); err != nil {
		return fmt.Errorf("delete workspace: %w", err)
	}
	detail := "name=" + w.Name + " files=kept"
	if deleteFiles {
		detail = "name=" + w.Name + " files=deleted"
	}
	s.record(ctx, p, "workspace.delete", w.ID, audit.ResultOK, detail)
	s.publish(w, true)
	return nil
}

// authorize loads a workspace and checks p may manage it. Workspaces p may
// not see are reported missing; those p may see but not change, forbidden.
func (s *Service) authorize(ctx context.Context, p auth.Principal, id, auditAction string) (store.Workspace, error) {
	return s.authorizeFor(ctx, p, id, auth.ActWorkspaceManage, auditAction)
}

func (s *Service) authorizeFor(ctx context.Context, p auth.Principal, id string, act auth.Action, auditAction string) (store.Workspace, error) {
	w, acc, err := s.GetWithAccess(ctx, p, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.record(ctx, p, auditAction, id, audit.ResultDenied, "not found or not visible")
		}
		return store.Workspace{}, err
	}
	if !auth.AllowedOn(p, act, acc) {
		s.record(ctx, p, auditAction, id, audit.ResultDenied, "")
		return store.Workspace{}, auth.ErrForbidden
	}
	return w, nil
}

func (s *Service) notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return fmt.Errorf("get workspace: %w", err)
}

// observe asks the engine for the container's state, stores it and
// publishes the change. A nil containerID means "the stored one".
func (s *Service) observe(ctx context.Context, id string, containerID *string) (store.Workspace, error) {
	w, err := s.store.GetWorkspace(ctx, id)
	if err != nil {
		return store.Workspace{}, s.notFound(err)
	}
	cid := w.ContainerID
	if containerID != nil {
		cid = *containerID
	}
	upd := store.StatusUpdate{ContainerID: &cid, ObservedAt: s.now().UTC()}
	if cid == "" {
		upd.Status = store.StatusMissing
		upd.Detail = "no container"
	} else {
		st, err := s.engine.InspectContainer(ctx, cid)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			upd.Status, upd.Detail = store.StatusMissing, "the container was removed outside the app"
		case err != nil:
			return w, err
		default:
			upd.Status, upd.Detail = StatusOf(st, w.Desired)
		}
	}
	return s.applyStatus(ctx, w, upd)
}

// applyStatus stores an observation and publishes it if anything changed.
func (s *Service) applyStatus(ctx context.Context, w store.Workspace, upd store.StatusUpdate) (store.Workspace, error) {
	changed := w.Status != upd.Status || w.StatusDetail != upd.Detail ||
		(upd.ContainerID != nil && *upd.ContainerID != w.ContainerID)
	if err := s.store.SetWorkspaceStatus(ctx, w.ID, upd); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Workspace{}, ErrNotFound
		}
		return store.Workspace{}, fmt.Errorf("save status: %w", err)
	}
	w.Status, w.StatusDetail = upd.Status, upd.Detail
	if upd.ContainerID != nil {
		w.ContainerID = *upd.ContainerID
	}
	at := upd.ObservedAt
	w.ObservedAt = &at
	if changed {
		s.publish(w, false)
	}
	return w, nil
}

// StatusOf maps an engine container state to a workspace status and a
// human-readable detail.
func StatusOf(st engine.ContainerState, desired store.DesiredState) (store.Status, string) {
	switch st.State {
	case "running":
		return store.StatusRunning, ""
	case "restarting":
		return store.StatusRestarting, exitDetail(st)
	case "paused":
		return store.StatusPaused, ""
	case "removing":
		return store.StatusRemoving, ""
	case "created":
		return store.StatusStopped, "created, never started"
	case "exited":
		if desired == store.DesiredRunning {
			return store.StatusStopped, "stopped outside the app: " + exitDetail(st)
		}
		return store.StatusStopped, ""
	case "dead":
		return store.StatusError, "the engine reports the container dead: " + exitDetail(st)
	}
	return store.StatusUnknown, "engine state " + st.State
}

func exitDetail(st engine.ContainerState) string {
	d := fmt.Sprintf("exited with code %d", st.ExitCode)
	if st.OOMKilled {
		d = "killed: out of memory"
	} else if st.ExitCode == 137 {
		d = "killed (exit code 137)"
	}
	if st.Error != "" {
		d += " (" + st.Error + ")"
	}
	if !st.FinishedAt.IsZero() && st.FinishedAt.Year() > 1 {
		d += " at " + st.FinishedAt.UTC().Format(time.RFC3339)
	}
	return d
}
