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
	// ActWorkspaceShare covers sharing a workspace with other users.
	ActWorkspaceShare Action = "workspace.share"
	// ActTerminalView covers listing a workspace's terminals and watching
	// them; ActTerminalWrite covers typing, resizing, and opening, renaming
	// and closing terminals.
	ActTerminalView  Action = "terminal.view"
	ActTerminalWrite Action = "terminal.write"
	ActUserManage    Action = "user.manage"
	ActAuditView     Action = "audit.view"
	// ActFleetView covers the fleet page: every running workspace's use
	// of the host.
	ActFleetView Action = "fleet.view"
	// ActSelf covers a user's own account (password change, logout).
	ActSelf Action = "self"
)

// ErrForbidden: the principal may see the resource but not do this to it.
var ErrForbidden = errors.New("you are not allowed to do that")

// Access describes a principal's standing on one workspace: its owner, and
// whether it is shared with the principal (and with write access).
type Access struct {
	OwnerID  string
	Shared   bool
	CanWrite bool
}

// Allowed decides whether p may perform a on a resource owned by ownerID
// (empty for actions without an owned resource), ignoring shares.
func Allowed(p Principal, a Action, ownerID string) bool {
	return AllowedOn(p, a, Access{OwnerID: ownerID})
}

// AllowedOn decides whether p may perform a on a workspace given p's
// access to it.
//
// Viewers read everything and change nothing. Members see and manage their
// own workspaces, and see the ones shared with them: they may watch those
// terminals, and type into them when granted write. Admins do everything.
// Terminals are not part of "everything a viewer reads": a shell shows
// secrets, so viewers watch only where they were invited, and never type.
func AllowedOn(p Principal, a Action, acc Access) bool {
	own := acc.OwnerID != "" && acc.OwnerID == p.UserID
	switch p.Role {
	case store.RoleAdmin:
		return true
	case store.RoleMember:
		switch a {
		case ActWorkspaceList, ActWorkspaceCreate, ActSelf:
			return true
		case ActWorkspaceManage, ActWorkspaceShare:
			return own
		case ActWorkspaceView, ActTerminalView:
			return own || acc.Shared
		case ActTerminalWrite:
			return own || (acc.Shared && acc.CanWrite)
		}
	case store.RoleViewer:
		switch a {
		case ActWorkspaceList, ActWorkspaceView, ActSelf:
			return true
		case ActTerminalView:
			// Their own (from before a demotion), or shared with them.
			return own || acc.Shared
		}
	}
	return false
}

// CanSee reports whether p may know that a workspace exists. Requests for
// workspaces a principal cannot see are answered as not found, so ids of
// other people's workspaces leak nothing.
func CanSee(p Principal, acc Access) bool {
	return AllowedOn(p, ActWorkspaceView, acc)
}

// ListScope returns whose workspaces p's list holds: empty means everyone's;
// otherwise the ones this user owns or that are shared with them.
func ListScope(p Principal) string {
	if p.Role == store.RoleMember {
		return p.UserID
	}
	return ""
}
