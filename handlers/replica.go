package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// TerminalOwners finds the replica holding a terminal session. A terminal's
// shell lives in the process that opened it; with several replicas, a
// request about it that reaches another one is forwarded to its owner.
type TerminalOwners interface {
	// RemoteOwner returns the base URL (http://host:port) of the replica
	// holding the session when that is not this one; "" when the session
	// is held here or is not known anywhere.
	RemoteOwner(ctx context.Context, workspaceID, id string) (string, error)
}

// forwardedHeader marks a request one replica forwarded to another: it is
// answered where it lands, never forwarded again (no loops when presence
// entries are stale). A client setting it only loses forwarding.
const forwardedHeader = "X-Aicode-Forwarded"

// forwardTimeout bounds a forwarded plain request and a forwarded
// WebSocket handshake.
const forwardTimeout = 15 * time.Second

var replicaClient = &fasthttp.Client{
	ReadTimeout:         forwardTimeout,
	WriteTimeout:        forwardTimeout,
	MaxIdleConnDuration: time.Minute,
	// Redirects and errors are passed on as they are.
	DisablePathNormalizing: true,
}

// atTerminalOwner runs h here when the route's terminal is held here (or
// nowhere known, or Redis cannot tell: h then answers as usual), and
// otherwise forwards the request to the replica that holds it. The owner
// checks the session cookie, access and CSRF again, as for any request.
func (s *Server) atTerminalOwner(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.TerminalOwners == nil || c.Get(forwardedHeader) != "" {
			return h(c)
		}
		owner, err := s.TerminalOwners.RemoteOwner(c.UserContext(), c.Params("id"), c.Params("tid"))
		if err != nil || owner == "" {
			return h(c)
		}
		if fws.IsWebSocketUpgrade(c) {
			return s.forwardTerminalSocket(c, owner, h)
		}
		return s.forwardRequest(c, owner, h)
	}
}

// forwardHeaders says who asked and how, as this replica established it
// (client headers it did not trust are replaced, not passed on), so an
// owner that trusts its fellow replicas (AICODE_TRUSTED_PROXIES) sees the
// request as this one did. The browser's Host (same-origin checks),
// cookies and Origin travel unchanged.
func forwardHeaders(c *fiber.Ctx, set func(k, v string)) {
	set(forwardedHeader, "1")
	set(fiber.HeaderXForwardedFor, c.IP())
	set(fiber.HeaderXForwardedProto, c.Protocol())
	set(fiber.HeaderXForwardedHost, c.Hostname())
}

// forwardRequest replays a plain request at the owner and relays its
// answer (status, redirect, cookies, body). When the owner cannot be
// reached the request is answered here (the terminal is then gone).
func (s *Server) forwardRequest(c *fiber.Ctx, owner string, h fiber.Handler) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	c.Request().CopyTo(req)
	host := string(c.Request().Host())
	req.SetRequestURI(owner + string(c.Request().RequestURI()))
	req.UseHostHeader = true
	req.Header.SetHost(host)
	forwardHeaders(c, req.Header.Set)
	if err := replicaClient.DoTimeout(req, resp, forwardTimeout); err != nil {
		s.Log.Warn("terminal owner unreachable; answering here", "owner", owner, "path", c.Path(), "err", err)
		return h(c)
	}
	resp.CopyTo(c.Response())
	return nil
}

// forwardTerminalSocket connects to the owner's terminal WebSocket with
// the browser's credentials, then upgrades the browser and relays frames
// both ways. The owner's pings reach the browser and its pongs go back,
// so the owner's liveness checks span the whole path.
func (s *Server) forwardTerminalSocket(c *fiber.Ctx, owner string, h fiber.Handler) error {
	hdr := http.Header{}
	c.Request().Header.VisitAll(func(k, v []byte) {
		switch strings.ToLower(string(k)) {
		case "cookie", "origin", "user-agent":
			hdr.Add(string(k), string(v))
		}
	})
	hdr.Set("Host", string(c.Request().Host()))
	forwardHeaders(c, hdr.Set)
	target := "ws" + strings.TrimPrefix(owner, "http") + string(c.Request().RequestURI())
	d := websocket.Dialer{HandshakeTimeout: forwardTimeout, ReadBufferSize: 32 << 10, WriteBufferSize: 4096}
	up, resp, err := d.DialContext(c.UserContext(), target, hdr)
	if err != nil {
		if resp != nil {
			// The owner refused (signed out, no access, bad origin).
			return fiber.NewError(resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		s.Log.Warn("terminal owner unreachable; answering here", "owner", owner, "path", c.Path(), "err", err)
		return h(c)
	}
	started := make(chan struct{})
	// If the browser's upgrade never happens, the owner's side must not
	// stay open.
	go func() {
		select {
		case <-started:
		case <-time.After(forwardTimeout):
			_ = up.Close()
		}
	}()
	err = fws.New(func(conn *fws.Conn) {
		close(started)
		s.relayTerminal(conn.Conn, up)
	}, fws.Config{ReadBufferSize: 4096, WriteBufferSize: 32 << 10, WriteBufferPool: terminalWriteBuffers})(c)
	if err != nil {
		_ = up.Close()
	}
	return err
}

// relayTerminal copies messages between the browser and the owner until
// either side closes, passing the close code on.
func (s *Server) relayTerminal(browser, up *websocket.Conn) {
	ctx, cancel := context.WithCancel(s.Streams)
	defer cancel()
	defer up.Close()
	defer browser.Close()

	interval := s.Config.Terminal.PingInterval
	if interval <= 0 {
		interval = 20 * time.Second
	}
	// The owner pings every interval; silence for longer means it is gone.
	upDeadline := func() time.Time { return time.Now().Add(2*interval + 10*time.Second) }
	_ = up.SetReadDeadline(upDeadline())
	up.SetPingHandler(func(data string) error {
		_ = up.SetReadDeadline(upDeadline())
		err := browser.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(writeTimeout))
		if err != nil {
			cancel()
		}
		return nil
	})
	browser.SetPongHandler(func(data string) error {
		return up.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
	})
	browser.SetPingHandler(func(data string) error {
		return browser.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
	})
	up.SetReadLimit(8 << 20)
	browser.SetReadLimit(maxClientMessage)

	var once sync.Once
	closeWith := func(to *websocket.Conn, err error) {
		once.Do(func() {
			code, text := websocket.CloseGoingAway, "other side went away"
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseNoStatusReceived && ce.Code != websocket.CloseAbnormalClosure {
				code, text = ce.Code, ce.Text
			}
			_ = to.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
			cancel()
		})
	}
	copyTo := func(dst, src *websocket.Conn, refresh func()) {
		for {
			kind, data, err := src.ReadMessage()
			if err != nil {
				closeWith(dst, err)
				return
			}
			if refresh != nil {
				refresh()
			}
			_ = dst.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := dst.WriteMessage(kind, data); err != nil {
				closeWith(src, fmt.Errorf("relay: %w", err))
				return
			}
		}
	}
	done := make(chan struct{}, 2)
	go func() { copyTo(browser, up, func() { _ = up.SetReadDeadline(upDeadline()) }); done <- struct{}{} }()
	go func() { copyTo(up, browser, nil); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Unblock whichever copy still reads.
	_ = up.SetReadDeadline(time.Now())
	_ = browser.SetReadDeadline(time.Now())
	<-done
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// limitTaskCreation caps how many tasks one user queues per minute
// (AICODE_TASK_CREATE_PER_MINUTE), counted across replicas when the
// limiter is shared. Only tasks actually queued count.
func (s *Server) limitTaskCreation(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.TaskLimiter == nil {
			return h(c)
		}
		key := "task-create:" + principal(c).UserID
		if blocked, wait := s.TaskLimiter.Blocked(key, s.Config.Tasks.CreatePerMinute); blocked {
			c.Set(fiber.HeaderRetryAfter, fmt.Sprint(int(wait/time.Second)+1))
			return fiber.NewError(fiber.StatusTooManyRequests, fmt.Sprintf("too many tasks queued; try again in %s", wait.Round(time.Second)))
		}
		err := h(c)
		if st := c.Response().StatusCode(); err == nil && (st == fiber.StatusSeeOther || st == fiber.StatusFound || c.GetRespHeader(hxRedirect) != "") {
			s.TaskLimiter.Hit(key)
		}
		return err
	}
}
