package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// ExecSpec describes a process to run inside a container.
type ExecSpec struct {
	Cmd     []string
	User    string
	WorkDir string
	Env     []string
	// Tty gives the process a terminal; its output is then one raw stream.
	Tty  bool
	Cols uint
	Rows uint
}

// detachKeys replaces the engine's default detach sequence (ctrl-p,ctrl-q):
// with it the engine holds back every ctrl-p typed (shell history!) until
// the next key proves it was not a detach. Nobody types this sequence, and
// its first key, ctrl-], means nothing to shells.
const detachKeys = "ctrl-],ctrl-@,ctrl-],ctrl-@"

// Exec is a started interactive exec: read its output, write its input.
type Exec struct {
	ID   string
	resp types.HijackedResponse

	closeOnce sync.Once
}

// StartExec creates and attaches an exec in a running container.
func (e *Engine) StartExec(ctx context.Context, containerID string, s ExecSpec) (*Exec, error) {
	opts := container.ExecOptions{
		User:         s.User,
		WorkingDir:   s.WorkDir,
		Env:          s.Env,
		Cmd:          s.Cmd,
		Tty:          s.Tty,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		DetachKeys:   detachKeys,
	}
	var size *[2]uint
	if s.Tty && s.Cols > 0 && s.Rows > 0 {
		size = &[2]uint{s.Rows, s.Cols}
		opts.ConsoleSize = size
	}
	created, err := e.cli.ContainerExecCreate(ctx, containerID, opts)
	if err != nil {
		return nil, e.done(err, "create exec")
	}
	resp, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: s.Tty, ConsoleSize: size})
	if err != nil {
		return nil, e.done(err, "attach exec")
	}
	e.record(nil)
	return &Exec{ID: created.ID, resp: resp}, nil
}

// Read reads the exec's output (raw with a TTY, multiplexed without).
func (x *Exec) Read(p []byte) (int, error) { return x.resp.Reader.Read(p) }

// Write sends input to the exec.
func (x *Exec) Write(p []byte) (int, error) { return x.resp.Conn.Write(p) }

// CloseWrite signals end of input (the shell sees EOF) and keeps reading.
func (x *Exec) CloseWrite() error { return x.resp.CloseWrite() }

// Close drops the connection: output stops and input ends.
func (x *Exec) Close() error {
	x.closeOnce.Do(x.resp.Close)
	return nil
}

// Conn is the underlying connection (for deadlines in tests).
func (x *Exec) Conn() net.Conn { return x.resp.Conn }

// ResizeExec sets the TTY size of an exec.
func (e *Engine) ResizeExec(ctx context.Context, execID string, cols, rows uint) error {
	err := e.cli.ContainerExecResize(ctx, execID, container.ResizeOptions{Height: rows, Width: cols})
	return e.done(err, "resize exec")
}

// ExecState is an exec's process state.
type ExecState struct {
	ID       string
	Running  bool
	ExitCode int
}

// InspectExec returns an exec's state.
func (e *Engine) InspectExec(ctx context.Context, execID string) (ExecState, error) {
	in, err := e.cli.ContainerExecInspect(ctx, execID)
	if err != nil {
		return ExecState{}, e.done(err, "inspect exec")
	}
	e.record(nil)
	return ExecState{ID: in.ExecID, Running: in.Running, ExitCode: in.ExitCode}, nil
}

// ContainerExecs lists the execs the engine still knows for a container
// (running ones, and finished ones until the engine forgets them).
func (e *Engine) ContainerExecs(ctx context.Context, containerID string) ([]ExecState, error) {
	c, err := e.cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return nil, e.done(err, "inspect container")
	}
	out := make([]ExecState, 0, len(c.ExecIDs))
	for _, id := range c.ExecIDs {
		st, err := e.InspectExec(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // finished and forgotten meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Run runs a command to completion without a TTY and returns its combined
// output (bounded) and exit code.
func (e *Engine) Run(ctx context.Context, containerID string, s ExecSpec) (string, int, error) {
	s.Tty = false
	created, err := e.cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		User: s.User, WorkingDir: s.WorkDir, Env: s.Env, Cmd: s.Cmd,
		AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return "", -1, e.done(err, "create exec")
	}
	resp, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", -1, e.done(err, "attach exec")
	}
	defer resp.Close()
	var out limitedBuffer
	out.max = 64 << 10
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&out, &out, resp.Reader)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		resp.Close()
		<-done
		return out.String(), -1, ctx.Err()
	}
	if err != nil && err != io.EOF {
		return out.String(), -1, e.done(err, "read exec output")
	}
	st, err := e.InspectExec(ctx, created.ID)
	if err != nil {
		return out.String(), -1, err
	}
	return out.String(), st.ExitCode, nil
}

// limitedBuffer keeps the first max bytes written and discards the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}
