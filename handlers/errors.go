package handlers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/console"
	"aicode/services/engine"
	"aicode/services/tasks"
	"aicode/services/terminal"
	"aicode/services/validation"
	"aicode/services/workspace"
	errview "aicode/views/pages/errors"
)

// classify maps an error to a status, a title and a message a user can act
// on. Unknown errors become a 500 whose details stay in the log.
func classify(err error) (int, string, string) {
	var (
		fe       *fiber.Error
		verrs    validation.Errors
		imgErr   *workspace.ImageMissingError
		rateErr  *auth.RateLimitedError
		engErr   *engine.Error
		termRate *console.RateLimitedError
		taskInv  *tasks.ErrInvalid
	)
	switch {
	case errors.As(err, &fe):
		return fe.Code, httpTitle(fe.Code), fiberMessage(fe)
	case errors.Is(err, workspace.ErrNotFound):
		return fiber.StatusNotFound, "Workspace not found", "This workspace does not exist, or it is not shared with you."
	case errors.Is(err, auth.ErrUserNotFound):
		return fiber.StatusNotFound, "User not found", "This user does not exist."
	case errors.Is(err, auth.ErrUnauthenticated):
		return fiber.StatusUnauthorized, "Sign in required", "Your session has ended. Sign in again to continue."
	case errors.Is(err, auth.ErrProviderUnavailable):
		return fiber.StatusServiceUnavailable, "Sign-in service unreachable", sentence(err.Error())
	case errors.Is(err, auth.ErrEmailNotConfirmed):
		return fiber.StatusForbidden, "Email not confirmed", sentence(err.Error())
	case errors.Is(err, auth.ErrForbidden):
		return fiber.StatusForbidden, "Not allowed", "Your role does not allow this. Ask an admin if you need it."
	case errors.Is(err, errCSRF):
		return fiber.StatusForbidden, "Request refused", sentence(errCSRF.Error())
	case errors.Is(err, errCrossOrigin):
		return fiber.StatusForbidden, "Request refused", "This request came from another site and was refused."
	case errors.As(err, &verrs):
		return fiber.StatusUnprocessableEntity, "Check your input", verrs.Error()
	case errors.As(err, &imgErr):
		return fiber.StatusUnprocessableEntity, "Image missing", imgErr.Error()
	case errors.Is(err, terminal.ErrNotFound):
		return fiber.StatusNotFound, "Terminal not found", "This terminal has ended or does not exist."
	case errors.Is(err, terminal.ErrClosed):
		return fiber.StatusGone, "Terminal ended", "This terminal has ended."
	case errors.Is(err, terminal.ErrTooMany):
		return fiber.StatusConflict, "Too many terminals", sentence(err.Error()) + " Close one first."
	case errors.Is(err, terminal.ErrBadName):
		return fiber.StatusUnprocessableEntity, "Check the name", sentence(err.Error())
	case errors.Is(err, tasks.ErrNotFound):
		return fiber.StatusNotFound, "Task not found", "This task does not exist in this workspace."
	case errors.Is(err, tasks.ErrFinished):
		return fiber.StatusConflict, "Task finished", "The task has already finished."
	case errors.As(err, &taskInv):
		return fiber.StatusUnprocessableEntity, "Check your input", taskInv.Msg
	case errors.Is(err, console.ErrNotRunning):
		return fiber.StatusConflict, "Workspace not running", sentence(err.Error())
	case errors.As(err, &termRate):
		return fiber.StatusTooManyRequests, "Slow down", sentence(termRate.Error())
	case errors.As(err, &rateErr):
		return fiber.StatusTooManyRequests, "Slow down", sentence(rateErr.Error())
	case errors.Is(err, auth.ErrLastAdmin), errors.Is(err, auth.ErrSelf), errors.Is(err, auth.ErrSetupDone):
		return fiber.StatusConflict, "Not possible", sentence(err.Error())
	case errors.Is(err, engine.ErrUnavailable), errors.Is(err, engine.ErrTooOld):
		var msg string
		if errors.As(err, &engErr) {
			msg = engErr.Msg
		}
		return fiber.StatusServiceUnavailable, "Docker engine unreachable", sentence(msg)
	case errors.As(err, &engErr):
		status := fiber.StatusBadGateway
		if errors.Is(err, engine.ErrConflict) {
			status = fiber.StatusConflict
		}
		return status, "The Docker engine refused", sentence(engErr.Msg)
	case errors.Is(err, workspace.ErrOutsideRoot):
		return fiber.StatusUnprocessableEntity, "Directory refused", sentence(err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return fiber.StatusGatewayTimeout, "Timed out", "The operation took too long. Try again; if it keeps failing, check the Docker engine."
	}
	return fiber.StatusInternalServerError, "Something went wrong", "An unexpected error occurred. It has been logged; try again, and tell an admin if it persists."
}

func statusOf(err error) int {
	st, _, _ := classify(err)
	return st
}

func httpTitle(code int) string {
	switch code {
	case fiber.StatusNotFound:
		return "Page not found"
	case fiber.StatusMethodNotAllowed:
		return "Not allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "Too large"
	case fiber.StatusBadRequest:
		return "Bad request"
	case fiber.StatusTooManyRequests:
		return "Slow down"
	}
	return "Error " + strconv.Itoa(code)
}

func fiberMessage(fe *fiber.Error) string {
	if fe.Message != "" && fe.Message != fiber.NewError(fe.Code).Message {
		// A handler's own message says more than the status text.
		return sentence(fe.Message)
	}
	switch fe.Code {
	case fiber.StatusNotFound:
		return "There is nothing at this address."
	case fiber.StatusRequestEntityTooLarge:
		return "The request is larger than this server accepts."
	}
	return sentence(fe.Message)
}

// sentence capitalises and ends a message.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[size:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

// errorHandler renders every error that reaches Fiber: a full error page,
// or for htmx a fragment plus a toast (htmx does not swap error
// responses, so the toast is what the user sees).
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	status, title, msg := classify(err)
	reqID := c.GetRespHeader(fiber.HeaderXRequestID)
	if status >= 500 && status != fiber.StatusServiceUnavailable && status != fiber.StatusBadGateway {
		s.Log.Error("request failed", "method", c.Method(), "path", c.Path(), "request_id", reqID, "err", err)
	}
	var rateErr *auth.RateLimitedError
	if errors.As(err, &rateErr) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(rateErr.RetryAfter/time.Second)+1))
	}
	var termRate *console.RateLimitedError
	if errors.As(err, &termRate) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(termRate.RetryAfter/time.Second)+1))
	}
	props := errview.Props{Status: status, Title: title, Message: msg, RequestID: reqID, SignedIn: session(c) != nil}
	if isStream(c.Path()) || strings.Contains(c.Get(fiber.HeaderAccept), "application/json") {
		c.Status(status)
		return c.JSON(fiber.Map{"error": title, "message": msg})
	}
	if c.Get(hxRequest) == "true" {
		toast(c, "error", fmt.Sprintf("%s. %s", title, msg))
		c.Set(hxReswap, "none")
		return render(c, status, errview.Fragment(props))
	}
	return page(c, status, s.layoutProps(c, title, ""), errview.Page(props))
}
