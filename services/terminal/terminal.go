// Package terminal runs the shell sessions behind the web terminals.
//
// A session owns one shell process, a bounded scrollback ring and any
// number of viewers (browser tabs, some read-only). Sessions outlive their
// viewers: when the last one leaves a grace timer starts, so a reload or a
// flaky network does not kill the shell.
//
// One reader goroutine per session copies the shell's output into the ring
// and into every viewer's bounded queue without ever waiting for a viewer.
// A viewer that falls behind, or stops acknowledging, loses its queue and
// is sent a fresh snapshot of the ring instead, so server memory stays
// bounded and one slow tab never stalls the shell or the other tabs.
package terminal

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Size of a terminal in character cells.
type Size struct{ Cols, Rows uint16 }

// Process is a running shell with a TTY (the caller adapts docker exec to
// it).
type Process interface {
	// Read returns output; it returns an error (io.EOF or other) when the
	// shell is gone. Close must make a blocked Read return.
	Read(p []byte) (int, error)
	// Write sends input.
	Write(p []byte) (int, error)
	Resize(ctx context.Context, s Size) error
	// Close hangs up and makes sure the process and its children are gone.
	// Idempotent. May block up to a few seconds.
	Close(ctx context.Context) error
}

// StartFunc starts the shell for a new session at the given size. ctx only
// bounds the start: the process must outlive it.
type StartFunc func(ctx context.Context, s Size) (Process, error)

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	Grace           time.Duration      // detached sessions live this long (default 10m)
	Scrollback      int                // ring size in bytes (default 256 KiB)
	IdleTimeout     time.Duration      // 0 = never; otherwise a session with neither input nor output for this long is closed, even with viewers
	MaxPerWorkspace int                // default 10
	ViewerQueue     int                // max bytes queued for one viewer before it is dropped to "resync" (default 256 KiB)
	AckWindow       int                // max bytes sent to a viewer and not yet acknowledged before sending pauses (default 512 KiB)
	FrameMax        int                // max bytes per data frame handed to a viewer (default 128 KiB); a resync frame carries the whole snapshot
	OnEnd           func(Info, string) // called once when a session ends, with its reason (for audit); may be nil
}

// Defaults.
const (
	DefaultGrace           = 10 * time.Minute
	DefaultScrollback      = 256 << 10
	DefaultMaxPerWorkspace = 10
	DefaultViewerQueue     = 256 << 10
	DefaultAckWindow       = 512 << 10
	DefaultFrameMax        = 128 << 10
)

func (o Options) withDefaults() Options {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Scrollback <= 0 {
		o.Scrollback = DefaultScrollback
	}
	if o.IdleTimeout < 0 {
		o.IdleTimeout = 0
	}
	if o.MaxPerWorkspace <= 0 {
		o.MaxPerWorkspace = DefaultMaxPerWorkspace
	}
	if o.ViewerQueue <= 0 {
		o.ViewerQueue = DefaultViewerQueue
	}
	if o.AckWindow <= 0 {
		o.AckWindow = DefaultAckWindow
	}
	if o.FrameMax <= 0 {
		o.FrameMax = DefaultFrameMax
	}
	return o
}

// Info describes a session.
type Info struct {
	ID, WorkspaceID, Name    string
	CreatedBy, CreatedByName string
	CreatedAt                time.Time
	Viewers                  int // attached now
	Writers                  int // attached now with write access
	Size                     Size
	Ended                    bool
	EndReason                string
}

// OpenSpec describes a session to open.
type OpenSpec struct {
	WorkspaceID              string
	Name                     string // empty: "Terminal N" (N = 1 + number of sessions ever opened in that workspace in this manager)
	CreatedBy, CreatedByName string
	Size                     Size // zero: 80x24
}

// Errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("terminal session not found") // unknown id, or id of another workspace
	ErrClosed   = errors.New("terminal session has ended")
	ErrReadOnly = errors.New("this terminal is read-only for you")
	ErrTooMany  = errors.New("too many terminals open in this workspace")
	ErrBadName  = fmt.Errorf("a terminal name has 1 to %d characters and no control characters", MaxNameLen)
)

// errShutdown wraps ErrClosed so handlers need no extra case for a server
// that is going down.
var errShutdown = fmt.Errorf("the server is shutting down: %w", ErrClosed)

// MaxNameLen is the longest session name, in runes.
const MaxNameLen = 64

// Size limits. Zero cells break shells and huge ones are a cheap way to
// make full-screen programs allocate a lot.
const (
	minCells = 1
	maxCells = 1000
)

// closeTimeout bounds Process.Close when the session ends. It is detached
// from the caller's context: a cancelled request must not leave a shell
// running in the container.
const closeTimeout = 30 * time.Second

// Manager keeps the open sessions of every workspace.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session
	byWS     map[string]map[string]*Session
	starting map[string]int // Opens whose shell is still starting hold a slot
	opened   map[string]int // sessions ever opened, for default names
	seq      uint64         // orders List when CreatedAt ties
	shut     bool

	// readers counts reader goroutines; each lives until its session has
	// fully ended, so waiting for it waits for every Process.Close and
	// OnEnd too.
	readers sync.WaitGroup

	// sleep is how readers pause in a flood (time.Sleep; tests record it).
	sleep func(time.Duration)
}

// NewManager returns an empty manager. log may be nil.
func NewManager(opts Options, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		opts:     opts.withDefaults(),
		log:      log,
		sessions: map[string]*Session{},
		byWS:     map[string]map[string]*Session{},
		starting: map[string]int{},
		opened:   map[string]int{},
		sleep:    time.Sleep,
	}
}

// Open starts a shell through start and registers its session. The
// session has no viewers yet, so the grace timer already runs: a browser
// that never attaches does not leave a shell behind.
func (m *Manager) Open(ctx context.Context, spec OpenSpec, start StartFunc) (*Session, error) {
	if spec.WorkspaceID == "" {
		return nil, errors.New("open terminal: no workspace")
	}
	name := strings.TrimSpace(spec.Name)
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	size := defaultSize(spec.Size)
	ws := spec.WorkspaceID

	// The slot is taken before the (slow) start, so a burst of Opens
	// cannot overshoot the limit.
	m.mu.Lock()
	if m.shut {
		m.mu.Unlock()
		return nil, errShutdown
	}
	if m.openCountLocked(ws)+m.starting[ws] >= m.opts.MaxPerWorkspace {
		m.mu.Unlock()
		return nil, ErrTooMany
	}
	m.starting[ws]++
	m.mu.Unlock()
	release := func() {
		if m.starting[ws]--; m.starting[ws] <= 0 {
			delete(m.starting, ws)
		}
	}

	proc, err := start(ctx, size)
	if err == nil && proc == nil {
		err = errors.New("no process")
	}
	if err != nil {
		m.mu.Lock()
		release()
		m.mu.Unlock()
		return nil, fmt.Errorf("start shell: %w", err)
	}

	now := time.Now()
	s := &Session{
		m:             m,
		id:            newID(),
		ws:            ws,
		createdBy:     spec.CreatedBy,
		createdByName: spec.CreatedByName,
		createdAt:     now,
		proc:          proc,
		size:          size,
		ring:          newRing(m.opts.Scrollback),
		done:          make(chan struct{}),
	}

	m.mu.Lock()
	release()
	if m.shut {
		m.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := proc.Close(cctx); err != nil {
			m.log.Warn("close terminal started during shutdown", "workspace", ws, "err", err)
		}
		return nil, errShutdown
	}
	m.opened[ws]++
	if name == "" {
		name = fmt.Sprintf("Terminal %d", m.opened[ws])
	}
	s.name = name
	m.seq++
	s.seq = m.seq
	m.sessions[s.id] = s
	if m.byWS[ws] == nil {
		m.byWS[ws] = map[string]*Session{}
	}
	m.byWS[ws][s.id] = s
	// Added under m.mu while not shut, so Shutdown's Wait never races an
	// Add.
	m.readers.Add(1)
	s.mu.Lock()
	s.armGraceLocked()
	s.armIdleLocked()
	s.mu.Unlock()
	m.mu.Unlock()

	go s.readLoop()
	m.log.Info("terminal session opened", "workspace", ws, "session", s.id, "by", spec.CreatedBy)
	return s, nil
}

// openCountLocked counts sessions that still hold a slot; one that is
// ending keeps it until its process is gone.
func (m *Manager) openCountLocked(ws string) int { return len(m.byWS[ws]) }

// Get returns a session of the workspace.
func (m *Manager) Get(workspaceID, id string) (*Session, error) {
	m.mu.Lock()
	s := m.sessions[id]
	m.mu.Unlock()
	if s == nil || s.ws != workspaceID {
		return nil, ErrNotFound
	}
	return s, nil
}

// List returns the open sessions of the workspace, oldest first.
func (m *Manager) List(workspaceID string) []Info {
	m.mu.Lock()
	ss := make([]*Session, 0, len(m.byWS[workspaceID]))
	for _, s := range m.byWS[workspaceID] {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	slices.SortFunc(ss, func(a, b *Session) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Info, 0, len(ss))
	for _, s := range ss {
		if in := s.Info(); !in.Ended {
			out = append(out, in)
		}
	}
	return out
}

// Rename changes the name every viewer sees.
func (m *Manager) Rename(workspaceID, id, name string) (Info, error) {
	name = strings.TrimSpace(name)
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	s, err := m.Get(workspaceID, id)
	if err != nil {
		return Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return Info{}, ErrClosed
	}
	s.name = name
	return s.infoLocked(), nil
}

// Close ends the session: the process is closed and viewers get the exit
// frame with reason. It returns once the process is gone, or ctx ends.
func (m *Manager) Close(ctx context.Context, workspaceID, id, reason string) error {
	s, err := m.Get(workspaceID, id)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "closed"
	}
	return s.close(ctx, reason)
}

// CloseWorkspace ends every session of the workspace, e.g. because its
// container stopped.
func (m *Manager) CloseWorkspace(ctx context.Context, workspaceID, reason string) {
	m.mu.Lock()
	ss := make([]*Session, 0, len(m.byWS[workspaceID]))
	for _, s := range m.byWS[workspaceID] {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	m.closeAll(ctx, ss, reason)
}

// Shutdown ends every session and waits, bounded by ctx, for their reader
// goroutines. Opens after it fail with ErrClosed.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.shut = true
	ss := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	m.closeAll(ctx, ss, "the server is shutting down")

	done := make(chan struct{})
	go func() {
		m.readers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		m.log.Warn("terminal sessions still ending at shutdown", "err", ctx.Err())
	}
}

// closeAll ends the sessions in parallel: each Process.Close may take
// seconds, and a workspace can have several.
func (m *Manager) closeAll(ctx context.Context, ss []*Session, reason string) {
	if len(ss) == 0 {
		return
	}
	// Buffered, so the closers finish (bounded by closeTimeout) even when
	// ctx ends first and no one receives any more.
	results := make(chan struct{}, len(ss))
	for _, s := range ss {
		go func() {
			if err := s.close(ctx, reason); err != nil {
				m.log.Warn("close terminal session", "workspace", s.ws, "session", s.id, "err", err)
			}
			results <- struct{}{}
		}()
	}
	for range ss {
		select {
		case <-results:
		case <-ctx.Done():
			return
		}
	}
}

// Count reports open sessions and attached viewers across all workspaces.
func (m *Manager) Count() (sessions, viewers int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sessions {
		s.mu.Lock()
		if !s.ended {
			sessions++
			viewers += len(s.viewers)
		}
		s.mu.Unlock()
	}
	return sessions, viewers
}

// forget removes an ended session; its slot is free again.
func (m *Manager) forget(s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, s.id)
	if byID := m.byWS[s.ws]; byID != nil {
		delete(byID, s.id)
		if len(byID) == 0 {
			delete(m.byWS, s.ws)
		}
	}
}

// checkName enforces the name rules on a trimmed name. Names are shown to
// every viewer and written to the audit log, so control characters
// (including bidi overrides, which can disguise text) are refused.
func checkName(name string) error {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen {
		return ErrBadName
	}
	for _, r := range name {
		if unicode.IsControl(r) || isBidiControl(r) {
			return ErrBadName
		}
	}
	return nil
}

func isBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') || r == '\u200E' || r == '\u200F'
}

func clampCells(n uint16) uint16 { return min(max(n, minCells), maxCells) }

func clampSize(s Size) Size { return Size{Cols: clampCells(s.Cols), Rows: clampCells(s.Rows)} }

// defaultSize fills a missing dimension with the classic 80x24.
func defaultSize(s Size) Size {
	if s.Cols == 0 {
		s.Cols = 80
	}
	if s.Rows == 0 {
		s.Rows = 24
	}
	return clampSize(s)
}

// newID returns an unguessable session id: it appears in URLs, and
// guessing one must not be a way into another user's shell.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// human formats a duration for a reason string: "10m", not "10m0s".
func human(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}
