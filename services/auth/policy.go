package auth

import (
	"errors"

	"aicode/services/store"
)

// Principal is the authenticated user a request acts for.
type Principal struct {
	UserID   string
	Username string
	Role     store.Role
}

// IsAdmin reports whether p has the admin role.
func (p Principal) IsAdmin() bool { return p.Role == store.RoleAdmin }

// Action is something a principal may or may not do. Routes and services
// both ask Allowed, so the rules live here and nowhere else.
type Action string

const (
	ActWorkspaceList   Action = "workspace.list"
	ActWorkspaceView   Action = "workspace.view"
	ActWorkspaceCreate Action = "workspace.create"
	// ActWorkspaceManage covers start, stop, restart and delete.
	ActWorkspaceManage Action = "workspace.manage"
	ActUserManage      Action = "user.manage"
	ActAuditView       Action = "audit.view"
	// ActSelf covers a user's own account (password change, logout).
	ActSelf Action = "self"
)

// ErrForbidden: the principal may see the resource but not do this to it.
var ErrForbidden = errors.New("you are not allowed to do that")

// Allowed decides whether p may perform a on a resource owned by ownerID
// (empty for actions without an owned resource).
//
// Viewers read everything and change nothing; members see and manage their
// own workspaces only; admins see and manage all.
func Allowed(p Principal, a Action, ownerID string) bool {
	own := ownerID != "" && ownerID == p.UserID
	switch p.Role {
	case store.RoleAdmin:
		return true
	case store.RoleMember:
		switch a {
		case ActWorkspaceList, ActWorkspaceCreate, ActSelf:
			return true
		case ActWorkspaceView, ActWorkspaceManage:
			return own
		}
	case store.RoleViewer:
		switch a {
		case ActWorkspaceList, ActWorkspaceView, ActSelf:
			return true
		}
	}
	return false
}

// CanSee reports whether p may know that a workspace owned by ownerID
// exists. Requests for workspaces a principal cannot see are answered as
// not found, so ids of other people's workspaces leak nothing.
func CanSee(p Principal, ownerID string) bool {
	return Allowed(p, ActWorkspaceView, ownerID)
}

// ListScope returns the owner filter for p's workspace list: empty means
// everyone's.
func ListScope(p Principal) string {
	if p.Role == store.RoleMember {
		return p.UserID
	}
	return ""
}
