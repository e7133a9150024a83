package handlers

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"aicode/services/validation"
	wsview "aicode/views/pages/workspaces"
)

func (s *Server) addShare(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	form := wsview.ShareForm{Username: c.FormValue("username"), CanWrite: c.FormValue("can_write") != ""}
	sh, err := s.Workspaces.Share(c.UserContext(), principal(c), w.ID, form.Username, form.CanWrite)
	var verrs validation.Errors
	if errors.As(err, &verrs) {
		form.Errors = verrs
		return s.detailPage(c, fiber.StatusUnprocessableEntity, form)
	}
	if err != nil {
		return err
	}
	msg := "Shared with " + sh.Username + " (watch only)."
	if sh.CanWrite {
		msg = "Shared with " + sh.Username + " (can type)."
	}
	s.setFlash(c, msg)
	return redirect(c, "/workspaces/"+w.ID+"#shares")
}

func (s *Server) removeShare(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	err := s.Workspaces.Unshare(c.UserContext(), principal(c), w.ID, c.Params("uid"))
	var verrs validation.Errors
	if errors.As(err, &verrs) {
		return fiber.NewError(fiber.StatusUnprocessableEntity, "That user has no access to this workspace.")
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "Access removed.")
	return redirect(c, "/workspaces/"+w.ID+"#shares")
}
