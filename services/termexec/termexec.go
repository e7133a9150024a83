// Package termexec runs terminal shells as docker execs with a TTY inside
// workspace containers, and ends them for good when a terminal closes.
package termexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"aicode/services/engine"
	"aicode/services/terminal"
)

// Engine is what a shell needs from the Docker engine.
type Engine interface {
	StartExec(ctx context.Context, containerID string, s engine.ExecSpec) (*engine.Exec, error)
	ResizeExec(ctx context.Context, execID string, cols, rows uint) error
	InspectExec(ctx context.Context, execID string) (engine.ExecState, error)
	Run(ctx context.Context, containerID string, s engine.ExecSpec) (string, int, error)
	InspectContainer(ctx context.Context, id string) (engine.ContainerState, error)
}

// Starter starts shells in workspace containers.
type Starter struct {
	Engine Engine
	// User runs the shell (the workspace's non-root user).
	User string
	// Shell is tried first; sh when the image lacks it.
	Shell string
	// WorkDir is where the shell starts.
	WorkDir string
	Log     *slog.Logger
}

// markerEnv tags every process of a session (children inherit it), so
// closing the session can find and end them all, even ones that ignore
// the hang-up of a closed terminal or never read their input.
const markerEnv = "AICODE_TERMINAL"

// Start starts a login shell at the given size for session sessionID.
func (s *Starter) Start(ctx context.Context, containerID, sessionID string, size terminal.Size) (terminal.Process, error) {
	// $0 is the preferred shell: exec it if the image has it, else sh.
	script := `if command -v "$0" >/dev/null 2>&1; then exec "$0" -l; fi; exec /bin/sh -l`
	x, err := s.Engine.StartExec(ctx, containerID, engine.ExecSpec{
		Cmd:     []string{"/bin/sh", "-c", script, s.Shell},
		User:    s.User,
		WorkDir: s.WorkDir,
		Env: []string{
			"TERM=xterm-256color",
			"COLORTERM=truecolor",
			"LANG=C.UTF-8",
			markerEnv + "=" + sessionID,
		},
		Tty:  true,
		Cols: uint(size.Cols),
		Rows: uint(size.Rows),
	})
	if err != nil {
		return nil, err
	}
	p := &process{x: x, s: s, containerID: containerID, marker: sessionID}
	// Engines before API 1.42 ignore the size given at creation.
	if size.Cols > 0 && size.Rows > 0 {
		_ = p.Resize(ctx, size)
	}
	return p, nil
}

type process struct {
	x           *engine.Exec
	s           *Starter
	containerID string
	marker      string

	wmu       sync.Mutex
	closeOnce sync.Once
	closeErr  error
	// closing: Close was called, so the end of output is ours; the
	// session already has its reason from whoever closed it.
	closing atomic.Bool
}

func (p *process) Read(b []byte) (int, error) {
	n, err := p.x.Read(b)
	if err != nil {
		err = p.explain(err)
	}
	return n, err
}

// explain turns the bare end of a shell's output into the reason a user
// wants. A shell that exited on its own ends at once; one ended by a
// signal was most likely taken down with its container, which may need a
// moment to be reported stopped.
func (p *process) explain(readErr error) error {
	if p.closing.Load() {
		return io.EOF
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := p.s.Engine.InspectExec(ctx, p.x.ID)
	if err == nil && !st.Running && st.ExitCode < 128 {
		return io.EOF
	}
	for {
		c, err := p.s.Engine.InspectContainer(ctx, p.containerID)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			return errors.New("the workspace container was removed")
		case err == nil && c.State != "running":
			return errors.New("the workspace container stopped")
		}
		select {
		case <-ctx.Done():
			if st.ExitCode >= 128 {
				return fmt.Errorf("the shell was ended by signal %d", st.ExitCode-128)
			}
			if errors.Is(readErr, io.EOF) {
				return io.EOF
			}
			return readErr
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *process) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.x.Write(b)
}

func (p *process) Resize(ctx context.Context, size terminal.Size) error {
	return p.s.Engine.ResizeExec(ctx, p.x.ID, uint(size.Cols), uint(size.Rows))
}

// Close hangs up like a closed terminal window, then makes sure nothing of
// the session is left running: a shell at its prompt exits on end of
// input; anything still alive gets SIGHUP, then SIGKILL.
func (p *process) Close(ctx context.Context) error {
	p.closing.Store(true)
	p.closeOnce.Do(func() { p.closeErr = p.shutdown(ctx) })
	return p.closeErr
}

func (p *process) shutdown(ctx context.Context) error {
	// Dropping the connection does not end a shell: with a TTY the engine
	// does not turn it into end of input. So hang up explicitly, like a
	// terminal window closing, unless the shell is already gone.
	_ = p.x.Close()
	if st, err := p.s.Engine.InspectExec(ctx, p.x.ID); err != nil || !st.Running {
		return nil
	}
	for _, sig := range []string{"HUP", "KILL"} {
		if err := p.signal(ctx, sig); err != nil {
			if errors.Is(err, engine.ErrUnavailable) || errors.Is(err, engine.ErrNotFound) || ctx.Err() != nil {
				return err
			}
			p.s.Log.Warn("signal terminal processes", "signal", sig, "exec", p.x.ID, "err", err)
		}
		if p.waitExit(ctx, 2*time.Second) {
			return nil
		}
	}
	return fmt.Errorf("terminal exec %s still running after SIGKILL", p.x.ID)
}

// waitExit polls the exec until it has ended, for at most d.
func (p *process) waitExit(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		st, err := p.s.Engine.InspectExec(ctx, p.x.ID)
		if err != nil {
			// A stopped or removed container takes its execs with it.
			return errors.Is(err, engine.ErrNotFound)
		}
		if !st.Running {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// killScript signals every process whose environment carries the session
// marker. It runs as the workspace user, who owns them all.
const killScript = `for d in /proc/[0-9]*; do
  if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "$1"; then kill -"$2" "${d#/proc/}" 2>/dev/null; fi
done; exit 0`

func (p *process) signal(ctx context.Context, sig string) error {
	_, _, err := p.s.Engine.Run(ctx, p.containerID, engine.ExecSpec{
		Cmd:  []string{"/bin/sh", "-c", killScript, "sh", markerEnv + "=" + p.marker, sig},
		User: p.s.User,
	})
	return err
}
