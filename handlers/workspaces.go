package handlers

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/validation"
	"aicode/services/workspace"
	wsview "aicode/views/pages/workspaces"
)

// listQuery is the list's search, filter and page, normalised.
type listQuery struct {
	text   string
	status store.Status
	page   int
}

func parseListQuery(c *fiber.Ctx) listQuery {
	q := listQuery{text: strings.TrimSpace(c.Query("q")), status: store.Status(c.Query("status"))}
	if len(q.text) > workspace.MaxNameLen {
		q.text = q.text[:workspace.MaxNameLen]
	}
	if !validStatusFilter(q.status) {
		q.status = ""
	}
	q.page, _ = strconv.Atoi(c.Query("page"))
	if q.page < 1 {
		q.page = 1
	}
	return q
}

func (s *Server) listProps(c *fiber.Ctx) (wsview.ListProps, error) {
	p := principal(c)
	q := parseListQuery(c)
	pg, err := s.Workspaces.List(c.UserContext(), p, workspace.ListOptions{Query: q.text, Status: q.status, Page: q.page})
	if err != nil {
		return wsview.ListProps{}, err
	}
	return wsview.ListProps{
		User:     p,
		Page:     pg,
		Query:    q.text,
		Status:   string(q.status),
		Defaults: s.Workspaces.Defaults(),
		Form:     wsview.CreateForm{CSRF: csrfOf(c)},
	}, nil
}

func validStatusFilter(st store.Status) bool {
	switch st {
	case "", store.StatusRunning, store.StatusStopped, store.StatusMissing, store.StatusError,
		store.StatusCreating, store.StatusRestarting, store.StatusPaused, store.StatusUnknown:
		return true
	}
	return false
}

func csrfOf(c *fiber.Ctx) string {
	if a := session(c); a != nil {
		return a.Session.CSRFToken
	}
	return ""
}

// listWorkspaces serves the page, or for htmx the list fragment alone
// (cached until a workspace changes).
func (s *Server) listWorkspaces(c *fiber.Ctx) error {
	if !isHTMX(c) {
		props, err := s.listProps(c)
		if err != nil {
			return err
		}
		return page(c, fiber.StatusOK, s.layoutProps(c, "Workspaces", "workspaces"), wsview.ListPage(props))
	}
	gen := s.lists.generation()
	key := listKey(principal(c), parseListQuery(c))
	if f := s.lists.get(gen, key); f != nil {
		return f.send(c)
	}
	// After a change every open list reloads at once; one of them renders
	// and the others wait for its result instead of repeating the work.
	v, err, _ := s.renders.Do(strconv.FormatUint(gen, 10)+"|"+key, func() (any, error) {
		props, err := s.listProps(c)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := wsview.List(props).Render(c.UserContext(), &buf); err != nil {
			return nil, err
		}
		f := newFragment(buf.Bytes())
		s.lists.put(gen, key, f)
		return f, nil
	})
	if err != nil {
		return err
	}
	return v.(*fragment).send(c)
}

func (s *Server) createWorkspace(c *fiber.Ctx) error {
	form := wsview.CreateForm{
		Name:      c.FormValue("name"),
		Directory: c.FormValue("directory"),
		Image:     c.FormValue("image"),
		MemoryMB:  c.FormValue("memory_mb"),
		CPUs:      c.FormValue("cpus"),
		PidsLimit: c.FormValue("pids_limit"),
		CSRF:      csrfOf(c),
	}
	in, perrs := parseCreate(form)
	var (
		w   store.Workspace
		err error
	)
	if perrs != nil {
		err = perrs
	} else {
		w, err = s.Workspaces.Create(c.UserContext(), principal(c), in)
	}
	if err != nil {
		var verrs validation.Errors
		var imgErr *workspace.ImageMissingError
		switch {
		case errors.As(err, &verrs):
			form.Errors = verrs
		case errors.As(err, &imgErr):
			form.Error = imgErr.Error()
		default:
			return err
		}
		return s.createFailed(c, form)
	}
	if isHTMX(c) {
		trigger(c, map[string]any{"workspaces-changed": true, "toast": toastEvent("success", "Workspace "+w.Name+" is "+string(w.Status)+".")})
		return render(c, fiber.StatusCreated, wsview.CreateFormCard(wsview.CreateForm{CSRF: form.CSRF}, s.Workspaces.Defaults(), false))
	}
	s.setFlash(c, "Workspace "+w.Name+" is "+string(w.Status)+".")
	return c.Redirect("/workspaces/"+w.ID, fiber.StatusSeeOther)
}

// createFailed re-renders the form with the input kept and errors shown.
func (s *Server) createFailed(c *fiber.Ctx, form wsview.CreateForm) error {
	if isHTMX(c) {
		return render(c, fiber.StatusUnprocessableEntity, wsview.CreateFormCard(form, s.Workspaces.Defaults(), true))
	}
	props, err := s.listProps(c)
	if err != nil {
		return err
	}
	props.Form, props.FormOpen = form, true
	return page(c, fiber.StatusUnprocessableEntity, s.layoutProps(c, "Workspaces", "workspaces"), wsview.ListPage(props))
}

// parseCreate turns form strings into a create request; empty numbers take
// the defaults.
func parseCreate(f wsview.CreateForm) (workspace.CreateInput, error) {
	errs := validation.Errors{}
	in := workspace.CreateInput{Name: f.Name, Directory: f.Directory, Image: f.Image}
	if len(f.Name) > 200 {
		errs.Add("name", "use at most 40 characters")
	}
	if len(f.Image) > 255 {
		errs.Add("image", "at most 255 characters")
	}
	if len(f.Directory) > workspace.MaxDirLen {
		errs.Add("directory", "at most 255 characters")
	}
	parseInt := func(field, v string, dst *int64) {
		if v = strings.TrimSpace(v); v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs.Add(field, "enter a positive whole number")
			return
		}
		*dst = n
	}
	parseInt("memory_mb", f.MemoryMB, &in.MemoryMB)
	parseInt("pids_limit", f.PidsLimit, &in.PidsLimit)
	if v := strings.TrimSpace(f.CPUs); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			errs.Add("cpus", "enter a positive number such as 0.5 or 2")
		} else {
			in.CPUs = n
		}
	}
	return in, errs.Err()
}

func (s *Server) relDir(w store.Workspace) string {
	rel, err := filepath.Rel(s.Workspaces.Root().Path(), w.ProjectPath)
	if err != nil {
		return w.ProjectPath
	}
	return rel
}

func (s *Server) showWorkspace(c *fiber.Ctx) error {
	return s.detailPage(c, fiber.StatusOK, wsview.ShareForm{})
}

// detailPage renders the workspace overview, with the sharing card for
// those who may share (form keeps input after a refused share).
func (s *Server) detailPage(c *fiber.Ctx, status int, form wsview.ShareForm) error {
	p := principal(c)
	w := loadedWorkspace(c)
	acc := loadedAccess(c)
	props := wsview.DetailProps{User: p, Workspace: w, Access: acc, RelDir: s.relDir(w), CSRF: csrfOf(c), ShareForm: form}
	if auth.AllowedOn(p, auth.ActWorkspaceShare, acc) {
		shares, err := s.Workspaces.Shares(c.UserContext(), p, w.ID)
		if err != nil {
			return err
		}
		props.Shares, props.CanShare = shares, true
	}
	return page(c, status, s.layoutProps(c, w.Name, "workspaces"), wsview.DetailPage(props))
}

// workspaceAction runs start, stop or restart and answers with the
// fragment the button lives in: a list row or the detail status card.
func (s *Server) workspaceAction(a workspace.Action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		w, err := s.Workspaces.Do(c.UserContext(), p, c.Params("id"), a)
		if err != nil {
			return err
		}
		if !isHTMX(c) {
			return c.Redirect("/workspaces/"+w.ID, fiber.StatusSeeOther)
		}
		toast(c, "success", w.Name+" is "+string(w.Status)+".")
		if c.FormValue("view") == "row" {
			return render(c, fiber.StatusOK, wsview.Row(p, w, p.Role != store.RoleMember))
		}
		return render(c, fiber.StatusOK, wsview.StatusCard(p, w))
	}
}

func (s *Server) confirmDelete(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	props := wsview.DeleteProps{Workspace: w, RelDir: s.relDir(w), CSRF: csrfOf(c), Dialog: isHTMX(c)}
	return page(c, fiber.StatusOK, s.layoutProps(c, "Delete "+w.Name, "workspaces"), wsview.DeleteConfirm(props))
}

func (s *Server) deleteWorkspace(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	files := c.FormValue("files")
	if files != "keep" && files != "delete" {
		return s.deleteFailed(c, w, "Choose whether to keep or delete the project files.")
	}
	deleteFiles := files == "delete"
	if deleteFiles && strings.TrimSpace(c.FormValue("confirm_name")) != w.Name {
		return s.deleteFailed(c, w, "To delete the files, type the workspace name exactly: "+w.Name)
	}
	if err := s.Workspaces.Delete(c.UserContext(), principal(c), w.ID, deleteFiles); err != nil {
		return err
	}
	msg := "Workspace " + w.Name + " deleted; its files were kept."
	if deleteFiles {
		msg = "Workspace " + w.Name + " and its files were deleted."
	}
	s.setFlash(c, msg)
	return redirect(c, "/workspaces")
}

func (s *Server) deleteFailed(c *fiber.Ctx, w store.Workspace, msg string) error {
	props := wsview.DeleteProps{Workspace: w, RelDir: s.relDir(w), CSRF: csrfOf(c), Error: msg, Dialog: isHTMX(c),
		DeleteFiles: c.FormValue("files") == "delete", ConfirmName: clip(c.FormValue("confirm_name"), 40)}
	if isHTMX(c) {
		return render(c, fiber.StatusUnprocessableEntity, wsview.DeleteForm(props))
	}
	return page(c, fiber.StatusUnprocessableEntity, s.layoutProps(c, "Delete "+w.Name, "workspaces"), wsview.DeleteConfirm(props))
}
