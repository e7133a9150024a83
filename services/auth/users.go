package auth

import (
	"context"
	"errors"
	"fmt"

	"aicode/services/audit"
	"aicode/services/store"
	"aicode/services/validation"
)

// ListUsers returns every user; admins only.
func (s *Service) ListUsers(ctx context.Context, p Principal) ([]store.User, error) {
	if !Allowed(p, ActUserManage, "") {
		return nil, ErrForbidden
	}
	return s.store.ListUsers(ctx)
}

// CreateUser adds a user; admins only.
func (s *Service) CreateUser(ctx context.Context, p Principal, username, password string, role store.Role) (store.User, error) {
	if !Allowed(p, ActUserManage, "") {
		s.deny(ctx, p, "user.create", "")
		return store.User{}, ErrForbidden
	}
	username = NormalizeUsername(username)
	if err := validateNewUser(username, password, role); err != nil {
		return store.User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return store.User{}, err
	}
	u := &store.User{Username: username, PasswordHash: hash, Role: role}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, validation.Field("username", "this username is taken")
		}
		return store.User{}, fmt.Errorf("create user: %w", err)
	}
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "user.create", ResourceType: "user", ResourceID: u.ID, Detail: "username=" + u.Username + " role=" + string(role)})
	return *u, nil
}

// SetRole changes a user's role; admins only, never leaving no admin.
func (s *Service) SetRole(ctx context.Context, p Principal, id string, role store.Role) (store.User, error) {
	if !Allowed(p, ActUserManage, "") {
		s.deny(ctx, p, "user.role", id)
		return store.User{}, ErrForbidden
	}
	if !role.Valid() {
		return store.User{}, validation.Field("role", "choose admin, member or viewer")
	}
	var out store.User
	err := s.store.Tx(ctx, func(tx store.Store) error {
		u, err := s.getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if u.Role == role {
			out = u
			return nil
		}
		if u.ID == p.UserID {
			return ErrSelf
		}
		if u.Role == store.RoleAdmin && !u.Disabled {
			if err := lastAdminGuard(ctx, tx); err != nil {
				return err
			}
		}
		if err := tx.UpdateUserRole(ctx, id, role); err != nil {
			return fmt.Errorf("update role: %w", err)
		}
		u.Role = role
		out = u
		return nil
	})
	if errors.Is(err, ErrSelf) || errors.Is(err, ErrLastAdmin) {
		s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "user.role", ResourceType: "user", ResourceID: id, Result: audit.ResultDenied, Detail: err.Error()})
	}
	if err != nil {
		return store.User{}, err
	}
	s.sessions.dropUser(id)
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "user.role", ResourceType: "user", ResourceID: id, Detail: "role=" + string(role)})
	return out, nil
}

// SetDisabled disables or re-enables a user; disabling ends their sessions.
func (s *Service) SetDisabled(ctx context.Context, p Principal, id string, disabled bool) (store.User, error) {
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	if !Allowed(p, ActUserManage, "") {
		s.deny(ctx, p, action, id)
		return store.User{}, ErrForbidden
	}
	var out store.User
	err := s.store.Tx(ctx, func(tx store.Store) error {
		u, err := s.getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if disabled && u.ID == p.UserID {
			return ErrSelf
		}
		if disabled && !u.Disabled && u.Role == store.RoleAdmin {
			if err := lastAdminGuard(ctx, tx); err != nil {
				return err
			}
		}
		if err := tx.SetUserDisabled(ctx, id, disabled); err != nil {
			return fmt.Errorf("set disabled: %w", err)
		}
		if disabled {
			if err := tx.DeleteUserSessions(ctx, id); err != nil {
				return fmt.Errorf("end sessions: %w", err)
			}
		}
		u.Disabled = disabled
		out = u
		return nil
	})
	if errors.Is(err, ErrSelf) || errors.Is(err, ErrLastAdmin) {
		s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: action, ResourceType: "user", ResourceID: id, Result: audit.ResultDenied, Detail: err.Error()})
	}
	if err != nil {
		return store.User{}, err
	}
	s.sessions.dropUser(id)
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: action, ResourceType: "user", ResourceID: id})
	return out, nil
}

// ResetPassword sets a user's password (admins) and ends their sessions.
func (s *Service) ResetPassword(ctx context.Context, p Principal, id, password string) error {
	if !Allowed(p, ActUserManage, "") {
		s.deny(ctx, p, "user.password", id)
		return ErrForbidden
	}
	if err := ValidatePassword(password); err != nil {
		return validation.Field("password", err.Error())
	}
	if _, err := s.getUser(ctx, s.store, id); err != nil {
		return err
	}
	if err := s.setPassword(ctx, id, password); err != nil {
		return err
	}
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "user.password", ResourceType: "user", ResourceID: id})
	return nil
}

// ChangeOwnPassword lets any user change their password given the current
// one. Their other sessions end; the current one is re-created by the caller.
func (s *Service) ChangeOwnPassword(ctx context.Context, p Principal, current, next string) error {
	u, err := s.getUser(ctx, s.store, p.UserID)
	if err != nil {
		return err
	}
	if ok, _ := CheckPassword(u.PasswordHash, current); !ok {
		s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "self.password", ResourceType: "user", ResourceID: p.UserID, Result: audit.ResultDenied, Detail: "wrong current password"})
		return validation.Field("current", "the current password is not right")
	}
	if err := ValidatePassword(next); err != nil {
		return validation.Field("password", err.Error())
	}
	if err := s.setPassword(ctx, p.UserID, next); err != nil {
		return err
	}
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: "self.password", ResourceType: "user", ResourceID: p.UserID})
	return nil
}

// Reauthenticate opens a fresh session for p (after a password change).
func (s *Service) Reauthenticate(ctx context.Context, p Principal) (Login, error) {
	u, err := s.getUser(ctx, s.store, p.UserID)
	if err != nil {
		return Login{}, err
	}
	return s.openSession(ctx, u)
}

func (s *Service) setPassword(ctx context.Context, id, password string) error {
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	defer s.sessions.dropUser(id)
	return s.store.Tx(ctx, func(tx store.Store) error {
		if err := tx.SetUserPassword(ctx, id, hash); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		if err := tx.DeleteUserSessions(ctx, id); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return nil
	})
}

func (s *Service) getUser(ctx context.Context, st store.Store, id string) (store.User, error) {
	u, err := st.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrUserNotFound
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// lastAdminGuard fails when removing one active admin would leave none.
func lastAdminGuard(ctx context.Context, tx store.Store) error {
	n, err := tx.CountActiveAdmins(ctx)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n <= 1 {
		return ErrLastAdmin
	}
	return nil
}

func (s *Service) deny(ctx context.Context, p Principal, action, id string) {
	s.audit.Record(ctx, audit.Entry{Actor: actor(p), Action: action, ResourceType: "user", ResourceID: id, Result: audit.ResultDenied})
}

// OperatorResetPassword sets a user's password from the command line (for
// an admin locked out of every admin account), re-enables the account and
// ends its sessions. Only someone with access to the server and its
// database can run it, so no principal is checked; it is audited.
func (s *Service) OperatorResetPassword(ctx context.Context, username, password string) (store.User, error) {
	if err := ValidatePassword(password); err != nil {
		return store.User{}, err
	}
	u, err := s.store.GetUserByUsername(ctx, NormalizeUsername(username))
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrUserNotFound
	}
	if err != nil {
		return store.User{}, fmt.Errorf("look up user: %w", err)
	}
	if err := s.setPassword(ctx, u.ID, password); err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		if err := s.store.SetUserDisabled(ctx, u.ID, false); err != nil {
			return store.User{}, fmt.Errorf("enable user: %w", err)
		}
		u.Disabled = false
	}
	s.audit.Record(ctx, audit.Entry{Actor: audit.Actor{Name: "operator (aicli)"}, Action: "user.password", ResourceType: "user", ResourceID: u.ID, Detail: "reset from the command line"})
	return u, nil
}
