package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"aicode/services/archive"
	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/files"
	fileview "aicode/views/pages/files"
)

// Files is what the handlers need from the file service.
type Files interface {
	List(ctx context.Context, p auth.Principal, wsID, dir string) (files.Listing, error)
	Open(ctx context.Context, p auth.Principal, wsID, file string) (*os.File, fs.FileInfo, error)
	CheckFolder(ctx context.Context, p auth.Principal, wsID, dir string) (string, string, error)
	WriteFolder(ctx context.Context, p auth.Principal, wsID, dir string, out io.Writer) (archive.Stats, error)
	Target(ctx context.Context, p auth.Principal, wsID, dir string) (string, error)
	Save(ctx context.Context, p auth.Principal, wsID string, up files.Upload, r io.Reader) (int64, error)
}

// isUpload: the one route whose body is streamed rather than read whole.
func isUpload(c *fiber.Ctx) bool {
	p := c.Path()
	return c.Method() == fiber.MethodPost && strings.HasPrefix(p, "/workspaces/") && strings.HasSuffix(p, "/files/upload")
}

// limitBody keeps every request body but uploads' within BodyLimit. The
// server streams request bodies (so uploads never sit in memory); this
// gives every other route the bound a buffered body had. An upload must
// carry its CSRF token in a header or the query string: reading the form
// to find it would mean reading the whole upload first.
func (s *Server) limitBody(c *fiber.Ctx) error {
	req := c.Request()
	if isUpload(c) {
		if c.Get(csrfHeader) == "" && len(c.Context().QueryArgs().Peek(csrfField)) == 0 {
			c.Context().SetConnectionClose()
			return errCSRF
		}
		err := c.Next()
		if err != nil {
			drainUpload(c)
		}
		return err
	}
	if !req.IsBodyStream() {
		return c.Next()
	}
	limit := c.App().Config().BodyLimit
	cl := req.Header.ContentLength()
	switch {
	case cl > limit:
		c.Context().SetConnectionClose()
		return fiber.ErrRequestEntityTooLarge
	case cl < 0:
		// Chunked: read at most one byte past the limit.
		b, err := io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), int64(limit)+1))
		if err != nil {
			c.Context().SetConnectionClose()
			return fiber.ErrBadRequest
		}
		if len(b) > limit {
			c.Context().SetConnectionClose()
			return fiber.ErrRequestEntityTooLarge
		}
		req.SetBody(b)
	}
	return c.Next()
}

// drainUpload reads what is left of a refused upload's body when it is
// small, so the client sees the answer and the connection serves on;
// otherwise the connection is closed after the answer.
func drainUpload(c *fiber.Ctx) {
	body := c.Context().RequestBodyStream()
	if body == nil || c.Response().ConnectionClose() {
		return
	}
	if cl := c.Request().Header.ContentLength(); cl > 1<<20 {
		c.Context().SetConnectionClose()
		return
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(body, 1<<20)); n >= 1<<20 {
		c.Context().SetConnectionClose()
	}
}

// filesError maps the file service's errors to a status and a message;
// 0 leaves the error to the central handler.
func filesError(err error) (int, string) {
	switch {
	case errors.Is(err, files.ErrBadPath):
		return fiber.StatusBadRequest, sentence(err.Error())
	case errors.Is(err, files.ErrNotFound):
		return fiber.StatusNotFound, sentence(err.Error())
	case errors.Is(err, files.ErrNotDir), errors.Is(err, files.ErrNotFile):
		return fiber.StatusBadRequest, sentence(err.Error())
	case errors.Is(err, files.ErrExists):
		return fiber.StatusConflict, sentence(err.Error())
	case errors.Is(err, files.ErrTooLarge):
		return fiber.StatusRequestEntityTooLarge, ""
	}
	return 0, ""
}

func (s *Server) filesProps(c *fiber.Ctx, dir string) (fileview.TabProps, error) {
	p := principal(c)
	w := loadedWorkspace(c)
	l, err := s.Files.List(c.UserContext(), p, w.ID, dir)
	if err != nil {
		return fileview.TabProps{}, err
	}
	return fileview.TabProps{
		User: p, Workspace: l.Workspace, Access: l.Access, Listing: l, CSRF: csrfOf(c),
		CanWrite:    auth.AllowedOn(p, files.ActWrite, l.Access),
		MaxUploadMB: s.Config.Files.UploadMaxBytes >> 20,
	}, nil
}

// filesTab browses a folder of the workspace (?dir=).
func (s *Server) filesTab(c *fiber.Ctx) error {
	props, err := s.filesProps(c, c.Query("dir"))
	if err != nil {
		if st, msg := filesError(err); st != 0 {
			return fiber.NewError(st, msg)
		}
		return err
	}
	lp := s.layoutProps(c, props.Workspace.Name+" · Files", "workspaces")
	return page(c, fiber.StatusOK, lp, fileview.Tab(props))
}

// attachment is a Content-Disposition that keeps any file name intact
// and safe in the header.
func attachment(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + url.PathEscape(name)
}

// downloadFile sends one file (?path=).
func (s *Server) downloadFile(c *fiber.Ctx) error {
	f, fi, err := s.Files.Open(c.UserContext(), principal(c), loadedWorkspace(c).ID, c.Query("path"))
	if err != nil {
		if st, msg := filesError(err); st != 0 {
			return fiber.NewError(st, msg)
		}
		return err
	}
	c.Set(fiber.HeaderContentDisposition, attachment(fi.Name()))
	ct := mime.TypeByExtension(path.Ext(fi.Name()))
	if ct == "" || strings.HasPrefix(ct, "text/html") || strings.Contains(ct, "javascript") || strings.Contains(ct, "svg") {
		// Never let a workspace file render as a page of this site.
		ct = "application/octet-stream"
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderCacheControl, "no-store")
	// fasthttp streams the file and closes it when done.
	c.Context().SetBodyStream(f, int(fi.Size()))
	return nil
}

// downloadFolder streams a folder (?dir=) as a gzipped tar.
func (s *Server) downloadFolder(c *fiber.Ctx) error {
	p := principal(c)
	w := loadedWorkspace(c)
	name, dir, err := s.Files.CheckFolder(c.UserContext(), p, w.ID, c.Query("dir"))
	if err != nil {
		if st, msg := filesError(err); st != 0 {
			return fiber.NewError(st, msg)
		}
		return err
	}
	c.Set(fiber.HeaderContentDisposition, attachment(name+".tar.gz"))
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderCacheControl, "no-store")
	// The writer runs after the handler returns, when the request's
	// context is gone: it gets its own, ended at shutdown.
	ctx := audit.WithMeta(s.Streams, audit.MetaFrom(c.UserContext()))
	log := s.Log
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		if _, err := s.Files.WriteFolder(ctx, p, w.ID, dir, bw); err != nil {
			log.Warn("folder download ended early", "workspace", w.ID, "dir", dir, "err", err)
			return
		}
		_ = bw.Flush()
	})
	return nil
}

// progressReader pushes the connection's read deadline forward while an
// upload keeps arriving, so a large upload is not cut by the server's read
// timeout while a stalled one still is.
type progressReader struct {
	r    io.Reader
	conn net.Conn
	last time.Time
}

const uploadIdle = 2 * time.Minute

func (p *progressReader) Read(b []byte) (int, error) {
	if now := time.Now(); p.conn != nil && now.Sub(p.last) > time.Second {
		_ = p.conn.SetReadDeadline(now.Add(uploadIdle))
		p.last = now
	}
	return p.r.Read(b)
}

// uploadFiles receives a multipart upload (?dir=, replace=1 in the query
// or as a field before the files) and streams each file to disk.
func (s *Server) uploadFiles(c *fiber.Ctx) error {
	p := principal(c)
	w := loadedWorkspace(c)
	ctx := c.UserContext()
	max := s.Config.Files.UploadMaxBytes
	var body io.Reader = c.Context().RequestBodyStream()
	if body == nil {
		body = strings.NewReader(string(c.Body()))
	}
	body = &progressReader{r: body, conn: c.Context().Conn()}
	// limitBody deals with the rest of a refused upload's body.
	fail := fiber.NewError
	tooLarge := fmt.Sprintf("The upload is larger than the limit of %d MiB (AICODE_UPLOAD_MAX_MB); nothing was saved from the file that passed it.", max>>20)
	dir, err := s.Files.Target(ctx, p, w.ID, c.Query("dir"))
	if err != nil {
		if st, msg := filesError(err); st != 0 {
			return fail(st, msg)
		}
		return err
	}
	// Multipart framing adds a little to the files themselves.
	if cl := c.Request().Header.ContentLength(); cl > 0 && int64(cl) > max+1<<20 {
		c.Context().SetConnectionClose()
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, tooLarge)
	}
	mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return fail(fiber.StatusBadRequest, "Send the files as multipart/form-data.")
	}
	mr := multipart.NewReader(body, params["boundary"])
	replace := c.Query("replace") == "1"
	remaining := max
	var saved []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(fiber.StatusBadRequest, "The upload was cut off or is not valid multipart data.")
		}
		_, dp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		raw, isFile := dp["filename"]
		if !isFile {
			if part.FormName() == "replace" {
				v, _ := io.ReadAll(io.LimitReader(part, 16))
				replace = replace || strings.TrimSpace(string(v)) == "1"
			}
			continue
		}
		if raw == "" {
			continue // an empty file input
		}
		n, err := s.Files.Save(ctx, p, w.ID, files.Upload{Dir: dir, Name: raw, Replace: replace, Limit: remaining}, part)
		if err != nil {
			if errors.Is(err, files.ErrTooLarge) {
				return fail(fiber.StatusRequestEntityTooLarge, tooLarge)
			}
			if st, msg := filesError(err); st != 0 {
				return fail(st, msg)
			}
			return err
		}
		remaining -= n
		saved = append(saved, raw)
	}
	if len(saved) == 0 {
		return fiber.NewError(fiber.StatusBadRequest, "Choose at least one file to upload.")
	}
	msg := "Uploaded " + saved[0] + "."
	if len(saved) > 1 {
		msg = "Uploaded " + strconv.Itoa(len(saved)) + " files."
	}
	s.setFlash(c, msg)
	target := "/workspaces/" + w.ID + "/files"
	if dir != "." {
		target += "?dir=" + url.QueryEscape(dir)
	}
	return redirect(c, target)
}
