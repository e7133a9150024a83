package handlers

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/validation"
	userview "aicode/views/pages/users"
)

func (s *Server) usersPage(c *fiber.Ctx, status int, form userview.NewUserForm, rowErrs map[string]string) error {
	p := principal(c)
	list, err := s.Accounts.ListUsers(c.UserContext(), p)
	if err != nil {
		return err
	}
	props := userview.Props{Users: list, SelfID: p.UserID, CSRF: csrfOf(c), Form: form, RowErrors: rowErrs, ManagedBy: s.managedBy()}
	return page(c, status, s.layoutProps(c, "Users", "users"), userview.Page(props))
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	return s.usersPage(c, fiber.StatusOK, userview.NewUserForm{}, nil)
}

func (s *Server) createUser(c *fiber.Ctx) error {
	form := userview.NewUserForm{Username: c.FormValue("username"), Role: c.FormValue("role")}
	u, err := s.Accounts.CreateUser(c.UserContext(), principal(c), form.Username, c.FormValue("password"), store.Role(form.Role))
	var verrs validation.Errors
	if errors.As(err, &verrs) {
		form.Errors = verrs
		if isHTMX(c) {
			return render(c, fiber.StatusUnprocessableEntity, userview.CreateForm(form, csrfOf(c)))
		}
		return s.usersPage(c, fiber.StatusUnprocessableEntity, form, nil)
	}
	if err != nil {
		return err
	}
	if isHTMX(c) {
		// The table changed too: reload the whole page content.
		c.Set(hxRetarget, "#main")
		c.Set(hxReswap, "innerHTML")
		return s.usersPage(c, fiber.StatusCreated, userview.NewUserForm{Notice: "User " + u.Username + " added as " + string(u.Role) + "."}, nil)
	}
	s.setFlash(c, "User "+u.Username+" added as "+string(u.Role)+".")
	return c.Redirect("/admin/users", fiber.StatusSeeOther)
}

func (s *Server) setRole(c *fiber.Ctx) error {
	p := principal(c)
	u, err := s.Accounts.SetRole(c.UserContext(), p, c.Params("uid"), store.Role(c.FormValue("role")))
	return s.userRowResult(c, u, err, "Role saved.")
}

func (s *Server) setDisabled(disabled bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		u, err := s.Accounts.SetDisabled(c.UserContext(), principal(c), c.Params("uid"), disabled)
		msg := "User enabled."
		if disabled {
			msg = "User disabled and signed out."
		}
		return s.userRowResult(c, u, err, msg)
	}
}

func (s *Server) resetPassword(c *fiber.Ctx) error {
	p := principal(c)
	uid := c.Params("uid")
	err := s.Accounts.ResetPassword(c.UserContext(), p, uid, c.FormValue("password"))
	var u store.User
	if err == nil {
		list, lerr := s.Accounts.ListUsers(c.UserContext(), p)
		if lerr != nil {
			return lerr
		}
		for _, cur := range list {
			if cur.ID == uid {
				u = cur
			}
		}
	}
	return s.userRowResult(c, u, err, "Password set; their sessions were ended.")
}

// userRowResult answers a row action: the re-rendered row for htmx (with
// the refusal shown on the row when a rule forbids it), a redirect
// otherwise.
func (s *Server) userRowResult(c *fiber.Ctx, u store.User, err error, okMsg string) error {
	uid := c.Params("uid")
	rowErr := ""
	var verrs validation.Errors
	switch {
	case errors.Is(err, auth.ErrLastAdmin), errors.Is(err, auth.ErrSelf):
		rowErr = sentence(err.Error())
	case errors.As(err, &verrs):
		rowErr = sentence(verrs.Error())
	case err != nil:
		return err
	}
	if !isHTMX(c) {
		if rowErr != "" {
			return s.usersPage(c, fiber.StatusConflict, userview.NewUserForm{}, map[string]string{uid: rowErr})
		}
		s.setFlash(c, okMsg)
		return c.Redirect("/admin/users", fiber.StatusSeeOther)
	}
	if rowErr != "" {
		// Re-render the row as it really is, with the refusal on it.
		list, lerr := s.Accounts.ListUsers(c.UserContext(), principal(c))
		if lerr != nil {
			return lerr
		}
		for _, cur := range list {
			if cur.ID == uid {
				u = cur
			}
		}
		if u.ID == "" {
			return auth.ErrUserNotFound
		}
		return render(c, fiber.StatusUnprocessableEntity, userview.Row(u, principal(c).UserID, csrfOf(c), rowErr))
	}
	toast(c, "success", okMsg)
	return render(c, fiber.StatusOK, userview.Row(u, principal(c).UserID, csrfOf(c), ""))
}
