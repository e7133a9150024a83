package workspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/validation"
)

// Shares lists who else has access to a workspace (owner and admins only).
func (s *Service) Shares(ctx context.Context, p auth.Principal, id string) ([]store.Share, error) {
	w, acc, err := s.GetWithAccess(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if !auth.AllowedOn(p, auth.ActWorkspaceShare, acc) {
		return nil, auth.ErrForbidden
	}
	list, err := s.store.ListShares(ctx, w.ID)
	if err != nil {
		return nil, fmt.Errorf("list shares: %w", err)
	}
	return list, nil
}

// Share gives the user called username access to a workspace: watching its
// terminals, and typing into them with canWrite. Sharing again changes the
// write access.
func (s *Service) Share(ctx context.Context, p auth.Principal, id, username string, canWrite bool) (store.Share, error) {
	w, err := s.authorizeFor(ctx, p, id, auth.ActWorkspaceShare, "workspace.share")
	if err != nil {
		return store.Share{}, err
	}
	u, err := s.store.GetUserByUsername(ctx, auth.NormalizeUsername(username))
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled):
		return store.Share{}, validation.Field("username", "no active user by that name")
	case err != nil:
		return store.Share{}, fmt.Errorf("look up user: %w", err)
	case u.ID == w.OwnerID:
		return store.Share{}, validation.Field("username", "that user owns the workspace already")
	case u.Role == store.RoleAdmin:
		return store.Share{}, validation.Field("username", "admins have access to every workspace already")
	}
	if canWrite && u.Role == store.RoleViewer {
		// A viewer's role never types; say so rather than store a grant
		// that would not work.
		return store.Share{}, validation.Field("can_write", "viewers can watch but never type; make them a member first")
	}
	sh := store.Share{WorkspaceID: w.ID, UserID: u.ID, Username: u.Username, CanWrite: canWrite}
	if err := s.store.SetShare(ctx, sh); err != nil {
		return store.Share{}, fmt.Errorf("save share: %w", err)
	}
	s.record(ctx, p, "workspace.share", w.ID, audit.ResultOK, "user="+u.Username+" write="+strconv.FormatBool(canWrite))
	// Lists change for the user it was shared with.
	s.bus.Publish(TopicStatus, Change{Workspace: w, Reload: true})
	return sh, nil
}

// Unshare removes a user's access to a workspace.
func (s *Service) Unshare(ctx context.Context, p auth.Principal, id, userID string) error {
	w, err := s.authorizeFor(ctx, p, id, auth.ActWorkspaceShare, "workspace.unshare")
	if err != nil {
		return err
	}
	if err := s.store.DeleteShare(ctx, w.ID, userID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return validation.Field("user", "that user has no access to this workspace")
		}
		return fmt.Errorf("delete share: %w", err)
	}
	s.record(ctx, p, "workspace.unshare", w.ID, audit.ResultOK, "user_id="+userID)
	s.bus.Publish(TopicStatus, Change{Workspace: w, Reload: true})
	return nil
}
