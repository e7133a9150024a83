package auth

import (
	"testing"

	"aicode/services/store"
)

// The authorization policy written out in full. Each row gives, for one
// role and action, the expected outcome on a resource the principal owns,
// one someone else owns, and one without an owner (ownerID "").
//
// Viewers read everything and change nothing; members see and manage their
// own workspaces only; admins see and manage all; a principal without a
// known role may do nothing.
type policyRow struct {
	role                   store.Role
	action                 Action
	own, other, emptyOwner bool
}

var policyMatrix = []policyRow{
	// admin
	{store.RoleAdmin, ActWorkspaceList, true, true, true},
	{store.RoleAdmin, ActWorkspaceView, true, true, true},
	{store.RoleAdmin, ActWorkspaceCreate, true, true, true},
	{store.RoleAdmin, ActWorkspaceManage, true, true, true},
	{store.RoleAdmin, ActWorkspaceShare, true, true, true},
	{store.RoleAdmin, ActTerminalView, true, true, true},
	{store.RoleAdmin, ActTerminalWrite, true, true, true},
	{store.RoleAdmin, ActUserManage, true, true, true},
	{store.RoleAdmin, ActAuditView, true, true, true},
	{store.RoleAdmin, ActFleetView, true, true, true},
	{store.RoleAdmin, ActSelf, true, true, true},

	// member
	{store.RoleMember, ActWorkspaceList, true, true, true},
	{store.RoleMember, ActWorkspaceView, true, false, false},
	{store.RoleMember, ActWorkspaceCreate, true, true, true},
	{store.RoleMember, ActWorkspaceManage, true, false, false},
	{store.RoleMember, ActWorkspaceShare, true, false, false},
	{store.RoleMember, ActTerminalView, true, false, false},
	{store.RoleMember, ActTerminalWrite, true, false, false},
	{store.RoleMember, ActUserManage, false, false, false},
	{store.RoleMember, ActAuditView, false, false, false},
	{store.RoleMember, ActFleetView, false, false, false},
	{store.RoleMember, ActSelf, true, true, true},
	{store.RoleMember, Action("workspace.delete-everything"), false, false, false},
	{store.RoleMember, Action(""), false, false, false},

	// viewer
	{store.RoleViewer, ActWorkspaceList, true, true, true},
	{store.RoleViewer, ActWorkspaceView, true, true, true},
	{store.RoleViewer, ActWorkspaceCreate, false, false, false},
	{store.RoleViewer, ActWorkspaceManage, false, false, false},
	{store.RoleViewer, ActWorkspaceShare, false, false, false},
	{store.RoleViewer, ActTerminalView, true, false, false},
	{store.RoleViewer, ActTerminalWrite, false, false, false},
	{store.RoleViewer, ActUserManage, false, false, false},
	{store.RoleViewer, ActAuditView, false, false, false},
	{store.RoleViewer, ActFleetView, false, false, false},
	{store.RoleViewer, ActSelf, true, true, true},
	{store.RoleViewer, Action("workspace.delete-everything"), false, false, false},
	{store.RoleViewer, Action(""), false, false, false},

	// no role
	{store.Role(""), ActWorkspaceList, false, false, false},
	{store.Role(""), ActWorkspaceView, false, false, false},
	{store.Role(""), ActWorkspaceCreate, false, false, false},
	{store.Role(""), ActWorkspaceManage, false, false, false},
	{store.Role(""), ActWorkspaceShare, false, false, false},
	{store.Role(""), ActTerminalView, false, false, false},
	{store.Role(""), ActTerminalWrite, false, false, false},
	{store.Role(""), ActUserManage, false, false, false},
	{store.Role(""), ActAuditView, false, false, false},
	{store.Role(""), ActFleetView, false, false, false},
	{store.Role(""), ActSelf, false, false, false},

	// unknown role, including a differently cased "admin"
	{store.Role("superuser"), ActWorkspaceList, false, false, false},
	{store.Role("superuser"), ActWorkspaceView, false, false, false},
	{store.Role("superuser"), ActWorkspaceCreate, false, false, false},
	{store.Role("superuser"), ActWorkspaceManage, false, false, false},
	{store.Role("superuser"), ActWorkspaceShare, false, false, false},
	{store.Role("superuser"), ActTerminalView, false, false, false},
	{store.Role("superuser"), ActTerminalWrite, false, false, false},
	{store.Role("superuser"), ActUserManage, false, false, false},
	{store.Role("superuser"), ActAuditView, false, false, false},
	{store.Role("superuser"), ActFleetView, false, false, false},
	{store.Role("superuser"), ActSelf, false, false, false},
	{store.Role("Admin"), ActWorkspaceList, false, false, false},
	{store.Role("Admin"), ActWorkspaceView, false, false, false},
	{store.Role("Admin"), ActWorkspaceCreate, false, false, false},
	{store.Role("Admin"), ActWorkspaceManage, false, false, false},
	{store.Role("Admin"), ActWorkspaceShare, false, false, false},
	{store.Role("Admin"), ActTerminalView, false, false, false},
	{store.Role("Admin"), ActTerminalWrite, false, false, false},
	{store.Role("Admin"), ActUserManage, false, false, false},
	{store.Role("Admin"), ActAuditView, false, false, false},
	{store.Role("Admin"), ActFleetView, false, false, false},
	{store.Role("Admin"), ActSelf, false, false, false},
}

func TestAllowedMatrix(t *testing.T) {
	const me, someoneElse = "user-1", "user-2"
	for _, row := range policyMatrix {
		p := Principal{UserID: me, Username: "me", Role: row.role}
		for _, c := range []struct {
			owner string
			label string
			want  bool
		}{
			{me, "own", row.own},
			{someoneElse, "other", row.other},
			{"", "no owner", row.emptyOwner},
		} {
			t.Run(string(row.role)+"/"+string(row.action)+"/"+c.label, func(t *testing.T) {
				if got := Allowed(p, row.action, c.owner); got != c.want {
					t.Fatalf("Allowed(role %q, %q, owner %q) = %v; want %v", row.role, row.action, c.owner, got, c.want)
				}
			})
		}
	}
}

// TestAllowedMatrixComplete makes sure the literal table covers every
// role and action, so a new one cannot slip in untested.
func TestAllowedMatrixComplete(t *testing.T) {
	actions := []Action{ActWorkspaceList, ActWorkspaceView, ActWorkspaceCreate, ActWorkspaceManage, ActWorkspaceShare, ActTerminalView, ActTerminalWrite, ActUserManage, ActAuditView, ActFleetView, ActSelf}
	seen := map[store.Role]map[Action]bool{}
	for _, row := range policyMatrix {
		if seen[row.role] == nil {
			seen[row.role] = map[Action]bool{}
		}
		if seen[row.role][row.action] {
			t.Errorf("duplicate row %s/%s", row.role, row.action)
		}
		seen[row.role][row.action] = true
	}
	for _, r := range append(append([]store.Role{}, store.Roles...), "", "superuser") {
		for _, a := range actions {
			if !seen[r][a] {
				t.Errorf("no row for role %q action %q", r, a)
			}
		}
	}
}

// A principal without a user id never "owns" an unowned resource.
func TestAllowedEmptyUserID(t *testing.T) {
	tests := []struct {
		role   store.Role
		action Action
		owner  string
		want   bool
	}{
		{store.RoleMember, ActWorkspaceView, "", false},
		{store.RoleMember, ActWorkspaceManage, "", false},
		{store.RoleMember, ActWorkspaceView, "user-2", false},
		{store.RoleMember, ActWorkspaceList, "", true},
		{store.RoleViewer, ActWorkspaceView, "", true},
		{store.RoleViewer, ActWorkspaceManage, "", false},
		{store.RoleAdmin, ActWorkspaceManage, "", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.role)+"/"+string(tt.action)+"/"+tt.owner, func(t *testing.T) {
			p := Principal{UserID: "", Role: tt.role}
			if got := Allowed(p, tt.action, tt.owner); got != tt.want {
				t.Fatalf("Allowed(empty id, %s, %q, %q) = %v; want %v", tt.role, tt.action, tt.owner, got, tt.want)
			}
		})
	}
}

func TestCanSee(t *testing.T) {
	const me = "user-1"
	tests := []struct {
		role                   store.Role
		own, other, emptyOwner bool
	}{
		{store.RoleAdmin, true, true, true},
		{store.RoleMember, true, false, false},
		{store.RoleViewer, true, true, true},
		{store.Role(""), false, false, false},
		{store.Role("superuser"), false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			p := Principal{UserID: me, Role: tt.role}
			if got := CanSee(p, Access{OwnerID: me}); got != tt.own {
				t.Errorf("CanSee(own) = %v; want %v", got, tt.own)
			}
			if got := CanSee(p, Access{OwnerID: "user-2"}); got != tt.other {
				t.Errorf("CanSee(other) = %v; want %v", got, tt.other)
			}
			if got := CanSee(p, Access{}); got != tt.emptyOwner {
				t.Errorf("CanSee(no owner) = %v; want %v", got, tt.emptyOwner)
			}
		})
	}
}

func TestListScope(t *testing.T) {
	tests := []struct {
		name string
		p    Principal
		want string
	}{
		{"admin sees everyone's", Principal{UserID: "a1", Role: store.RoleAdmin}, ""},
		{"viewer sees everyone's", Principal{UserID: "v1", Role: store.RoleViewer}, ""},
		{"member sees their own", Principal{UserID: "m1", Role: store.RoleMember}, "m1"},
		{"another member sees their own", Principal{UserID: "m2", Role: store.RoleMember}, "m2"},
		// Principals without a known role are refused the list by Allowed
		// before the scope is ever used.
		{"no role", Principal{UserID: "x", Role: ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ListScope(tt.p); got != tt.want {
				t.Fatalf("ListScope(%+v) = %q; want %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestIsAdmin(t *testing.T) {
	tests := []struct {
		role store.Role
		want bool
	}{
		{store.RoleAdmin, true},
		{store.RoleMember, false},
		{store.RoleViewer, false},
		{store.Role(""), false},
		{store.Role("ADMIN"), false},
	}
	for _, tt := range tests {
		if got := (Principal{Role: tt.role}).IsAdmin(); got != tt.want {
			t.Errorf("IsAdmin(%q) = %v; want %v", tt.role, got, tt.want)
		}
	}
}

// Shares, written out: what a principal may do on someone else's workspace
// that is shared with them read-only ("read") or with write ("write"), and
// not at all ("none").
func TestAllowedOnShares(t *testing.T) {
	type want struct{ none, read, write bool }
	rows := []struct {
		role   store.Role
		action Action
		want   want
	}{
		{store.RoleMember, ActWorkspaceView, want{false, true, true}},
		{store.RoleMember, ActTerminalView, want{false, true, true}},
		{store.RoleMember, ActTerminalWrite, want{false, false, true}},
		{store.RoleMember, ActWorkspaceManage, want{false, false, false}},
		{store.RoleMember, ActWorkspaceShare, want{false, false, false}},
		{store.RoleViewer, ActWorkspaceView, want{true, true, true}},
		{store.RoleViewer, ActTerminalView, want{false, true, true}},
		{store.RoleViewer, ActTerminalWrite, want{false, false, false}},
		{store.RoleViewer, ActWorkspaceManage, want{false, false, false}},
		{store.RoleAdmin, ActTerminalWrite, want{true, true, true}},
		{store.Role(""), ActTerminalView, want{false, false, false}},
	}
	for _, r := range rows {
		p := Principal{UserID: "me", Role: r.role}
		for _, c := range []struct {
			label string
			acc   Access
			want  bool
		}{
			{"none", Access{OwnerID: "owner"}, r.want.none},
			{"read", Access{OwnerID: "owner", Shared: true}, r.want.read},
			{"write", Access{OwnerID: "owner", Shared: true, CanWrite: true}, r.want.write},
		} {
			if got := AllowedOn(p, r.action, c.acc); got != c.want {
				t.Errorf("AllowedOn(%s, %s, shared %s) = %v; want %v", r.role, r.action, c.label, got, c.want)
			}
		}
	}
}
