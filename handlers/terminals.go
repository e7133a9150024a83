package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/terminal"
	"aicode/views/layouts"
	termview "aicode/views/pages/terminals"
)

// Console is what the handlers need from the terminal service.
type Console interface {
	List(ctx context.Context, p auth.Principal, workspaceID string) ([]terminal.Info, error)
	Open(ctx context.Context, p auth.Principal, workspaceID, name string, size terminal.Size) (terminal.Info, error)
	Attach(ctx context.Context, p auth.Principal, workspaceID, id string) (*terminal.Viewer, terminal.Info, error)
	Rename(ctx context.Context, p auth.Principal, workspaceID, id, name string) (terminal.Info, error)
	Close(ctx context.Context, p auth.Principal, workspaceID, id string) error
}

// Limits of the terminal WebSocket protocol.
const (
	// maxClientMessage bounds one message from the browser (a paste).
	maxClientMessage = 64 << 10
	// writeTimeout bounds one write to a browser; a viewer that does not
	// take its data in that time is dropped (it can reattach).
	writeTimeout = 30 * time.Second
	// directWriteTimeout bounds a write made by a session's reader; it
	// should never come near: see terminal.DirectFunc.
	directWriteTimeout = 100 * time.Millisecond
)

// styleNonce returns a fresh nonce and sets a CSP allowing <style>
// elements carrying it: xterm.js injects its layout and theme styles that
// way, and the page's script hands them the nonce. Everything else stays as
// strict as on other pages.
func styleNonce(c *fiber.Ctx) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	n := base64.RawStdEncoding.EncodeToString(b)
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-"+n+"'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	return n
}

// terminalAssets adds xterm.js and our terminal script to a page.
func terminalAssets(c *fiber.Ctx, lp *layouts.Props) {
	lp.StyleNonce = styleNonce(c)
	lp.Styles = []string{"xterm.css"}
	lp.Scripts = []string{"xterm.js", "addon-fit.js", "addon-web-links.js", "terminal.js"}
}

func (s *Server) terminalProps(c *fiber.Ctx, selected string) (termview.Props, error) {
	p := principal(c)
	w := loadedWorkspace(c)
	acc := loadedAccess(c)
	list, err := s.Console.List(c.UserContext(), p, w.ID)
	if err != nil {
		return termview.Props{}, err
	}
	props := termview.Props{
		User:      p,
		Workspace: w,
		Access:    acc,
		Sessions:  list,
		CanWrite:  auth.AllowedOn(p, auth.ActTerminalWrite, acc),
		CSRF:      csrfOf(c),
	}
	for _, t := range list {
		if t.ID == selected {
			props.Selected = t
		}
	}
	if props.Selected.ID == "" && len(list) > 0 {
		props.Selected = list[len(list)-1]
	}
	return props, nil
}

// terminalTab is the workspace's Terminal tab: its terminals and the
// selected one (?t=id, else the newest).
func (s *Server) terminalTab(c *fiber.Ctx) error {
	props, err := s.terminalProps(c, c.Query("t"))
	if err != nil {
		return err
	}
	lp := s.layoutProps(c, props.Workspace.Name+" · Terminal", "workspaces")
	terminalAssets(c, &lp)
	return page(c, fiber.StatusOK, lp, termview.Tab(props))
}

// terminalFull is one terminal filling the window.
func (s *Server) terminalFull(c *fiber.Ctx) error {
	props, err := s.terminalProps(c, c.Params("tid"))
	if err != nil {
		return err
	}
	if props.Selected.ID != c.Params("tid") {
		return terminal.ErrNotFound
	}
	lp := s.layoutProps(c, props.Selected.Name+" · "+props.Workspace.Name, "workspaces")
	terminalAssets(c, &lp)
	lp.Bare = true
	return page(c, fiber.StatusOK, lp, termview.Full(props))
}

func (s *Server) openTerminal(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	cols, _ := strconv.Atoi(c.FormValue("cols"))
	rows, _ := strconv.Atoi(c.FormValue("rows"))
	info, err := s.Console.Open(c.UserContext(), principal(c), w.ID, c.FormValue("name"), terminal.Size{Cols: clampDim(cols, 80), Rows: clampDim(rows, 24)})
	if err != nil {
		return err
	}
	return redirect(c, "/workspaces/"+w.ID+"/terminal?t="+info.ID)
}

func clampDim(n, def int) uint16 {
	if n < 2 || n > 1000 {
		return uint16(def)
	}
	return uint16(n)
}

func (s *Server) renameTerminal(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	info, err := s.Console.Rename(c.UserContext(), principal(c), w.ID, c.Params("tid"), c.FormValue("name"))
	if err != nil {
		return err
	}
	if isHTMX(c) {
		toast(c, "success", "Renamed to "+info.Name+".")
	}
	return redirect(c, "/workspaces/"+w.ID+"/terminal?t="+info.ID)
}

func (s *Server) closeTerminal(c *fiber.Ctx) error {
	w := loadedWorkspace(c)
	if err := s.Console.Close(c.UserContext(), principal(c), w.ID, c.Params("tid")); err != nil {
		return err
	}
	s.setFlash(c, "Terminal closed.")
	return redirect(c, "/workspaces/"+w.ID+"/terminal")
}

// checkWebSocket refuses what must never be upgraded: cross-site
// handshakes (a page elsewhere riding the user's cookie) and requests that
// are not WebSocket handshakes at all.
func (s *Server) checkWebSocket(c *fiber.Ctx) error {
	if !fws.IsWebSocketUpgrade(c) {
		return fiber.ErrUpgradeRequired
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !s.sameOrigin(c, origin) {
		s.Log.Warn("cross-site websocket handshake refused", "origin", origin, "path", c.Path())
		return errCrossOrigin
	}
	return nil
}

// controlMessage is what the browser sends as text: a resize or an
// acknowledgement of output it has rendered.
type controlMessage struct {
	Type  string `json:"type"`
	Cols  int    `json:"cols"`
	Rows  int    `json:"rows"`
	Bytes int    `json:"bytes"`
}

// terminalWriteBuffers are the terminal WebSockets' write buffers.
var terminalWriteBuffers = &sync.Pool{}

// terminalSocket bridges one browser to one terminal session. Output goes
// as binary messages (batched frames), control as JSON text; the browser
// acknowledges output as xterm.js renders it, which paces the session's
// sending.
func (s *Server) terminalSocket() fiber.Handler {
	return fws.New(func(conn *fws.Conn) {
		a, _ := conn.Locals(localsAuth).(*auth.Authenticated)
		wsID := conn.Params("id")
		if a == nil {
			return
		}
		ctx, cancel := context.WithCancel(s.Streams)
		defer cancel()
		var wmu sync.Mutex
		send := func(kind int, data []byte) error {
			wmu.Lock()
			defer wmu.Unlock()
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			return conn.WriteMessage(kind, data)
		}
		sendJSON := func(v any) error {
			b, _ := json.Marshal(v)
			return send(websocket.TextMessage, b)
		}

		v, info, err := s.Console.Attach(ctx, a.Principal, wsID, conn.Params("tid"))
		if err != nil {
			_, _, msg := classify(err)
			if errors.Is(err, terminal.ErrNotFound) || errors.Is(err, terminal.ErrClosed) {
				msg = "This terminal has ended or does not exist."
			}
			_ = sendJSON(map[string]any{"type": "error", "message": msg, "fatal": true})
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "refused"), time.Now().Add(time.Second))
			return
		}
		defer v.Detach()
		if err := sendJSON(map[string]any{"type": "hello", "id": info.ID, "name": info.Name, "canWrite": v.CanWrite()}); err != nil {
			return
		}
		// Echo of a keystroke goes out from the session's reader while
		// the writer below is idle: one thread wake-up less per key. The
		// viewer only offers frames that fit the socket's buffer, so the
		// write does not wait; the deadline is a backstop.
		v.SetDirect(func(p []byte) bool {
			if !wmu.TryLock() {
				return false
			}
			defer wmu.Unlock()
			_ = conn.SetWriteDeadline(time.Now().Add(directWriteTimeout))
			if conn.WriteMessage(websocket.BinaryMessage, p) != nil {
				cancel()
			}
			return true
		})

		// Output: frames from the session, in order, until it ends or the
		// browser goes away.
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			defer cancel()
			for {
				f, err := v.Next(ctx)
				if err != nil {
					return
				}
				switch {
				case f.Exit:
					_ = sendJSON(map[string]any{"type": "exit", "reason": f.Reason})
					wmu.Lock()
					_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "session ended"), time.Now().Add(time.Second))
					wmu.Unlock()
					return
				case f.Resync:
					if sendJSON(map[string]any{"type": "resync"}) != nil || send(websocket.BinaryMessage, f.Data) != nil {
						return
					}
				default:
					if send(websocket.BinaryMessage, f.Data) != nil {
						return
					}
				}
			}
		}()

		// Keep-alive: proxies close idle connections; a browser that stops
		// answering pings is gone, and its viewer is dropped.
		interval := s.Config.Terminal.PingInterval
		if interval <= 0 {
			interval = 20 * time.Second
		}
		deadline := func() time.Time { return time.Now().Add(2*interval + 10*time.Second) }
		_ = conn.SetReadDeadline(deadline())
		conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(deadline()) })
		go func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)) != nil {
						cancel()
						return
					}
				}
			}
		}()
		// Shutdown or the end of the session unblock the reader below.
		go func() {
			<-ctx.Done()
			_ = conn.SetReadDeadline(time.Now())
		}()

		conn.SetReadLimit(maxClientMessage)
		warnedReadOnly := false
		for {
			kind, data, err := conn.ReadMessage()
			if err != nil {
				break
			}
			_ = conn.SetReadDeadline(deadline())
			switch kind {
			case websocket.BinaryMessage:
				if err := v.Input(data); errors.Is(err, terminal.ErrReadOnly) {
					if !warnedReadOnly {
						warnedReadOnly = true
						_ = sendJSON(map[string]any{"type": "error", "message": "This terminal is read-only for you; your typing is not sent."})
					}
				}
			case websocket.TextMessage:
				var m controlMessage
				if json.Unmarshal(data, &m) != nil {
					_ = sendJSON(map[string]any{"type": "error", "message": "malformed control message ignored"})
					continue
				}
				switch m.Type {
				case "ack":
					if m.Bytes > 0 {
						v.Ack(m.Bytes)
					}
				case "resize":
					if m.Cols < 1 || m.Rows < 1 || m.Cols > 1000 || m.Rows > 1000 {
						_ = sendJSON(map[string]any{"type": "error", "message": "resize out of range ignored"})
						continue
					}
					if v.CanWrite() {
						_ = v.Resize(ctx, terminal.Size{Cols: uint16(m.Cols), Rows: uint16(m.Rows)})
					}
				default:
					_ = sendJSON(map[string]any{"type": "error", "message": "unknown control message ignored"})
				}
			}
		}
		cancel()
		<-writerDone
	}, fws.Config{
		ReadBufferSize: 4096,
		// A whole data frame fits, so it goes out in one write: the
		// library writes what does not fit separately, and through the
		// server's connection wrapper that is a second system call.
		WriteBufferSize: terminal.DefaultFrameMax,
		// Held only while a message is written: most terminals are quiet
		// most of the time, and hundreds of idle buffers would add up.
		WriteBufferPool: terminalWriteBuffers,
		RecoverHandler: func(conn *fws.Conn) {
			if r := recover(); r != nil {
				s.Log.Error("terminal websocket panic", "panic", r)
			}
		},
	})
}
