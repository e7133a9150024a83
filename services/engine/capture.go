package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// CaptureResult is what a finished Capture produced. Each stream keeps at
// most the maxOut bytes it was given; the Truncated flags say more came.
type CaptureResult struct {
	Stdout, Stderr                   []byte
	ExitCode                         int
	StdoutTruncated, StderrTruncated bool
}

// Capture runs a command to completion without a TTY, feeding it stdin
// (when not nil; the process sees EOF once it is copied) and keeping its
// stdout and stderr apart, each bounded by maxOut. Output beyond the bound
// is still read, and dropped, so a chatty process is never stalled by a
// full pipe. When ctx ends first, the output so far comes back with
// ExitCode -1 and ctx's error; the process itself is left to finish.
//
// stdin is read until it ends or the process has finished; a reader that
// blocks after that holds Capture until ctx ends.
func (e *Engine) Capture(ctx context.Context, containerID string, s ExecSpec, stdin io.Reader, maxOut int) (CaptureResult, error) {
	res := CaptureResult{ExitCode: -1}
	created, err := e.cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		User: s.User, WorkingDir: s.WorkDir, Env: s.Env, Cmd: s.Cmd,
		AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return res, e.done(err, "create exec")
	}
	resp, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return res, e.done(err, "attach exec")
	}
	defer resp.Close()

	stdout := &boundedBuffer{max: maxOut}
	stderr := &boundedBuffer{max: maxOut}
	outDone := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, resp.Reader)
		outDone <- err
	}()
	var inDone chan error
	if stdin != nil {
		inDone = make(chan error, 1)
		go func() {
			src := &readErrReader{r: stdin}
			_, _ = io.Copy(resp.Conn, src)
			// A write failure only means the process stopped reading (or
			// exited) early, which its exit code tells; what matters is
			// whether all of the input could be produced.
			_ = resp.CloseWrite()
			inDone <- src.err
		}()
	}

	collect := func() {
		res.Stdout, res.StdoutTruncated = stdout.Bytes(), stdout.truncated
		res.Stderr, res.StderrTruncated = stderr.Bytes(), stderr.truncated
	}
	select {
	case err = <-outDone:
	case <-ctx.Done():
		resp.Close()
		<-outDone
		collect()
		return res, ctx.Err()
	}
	// Unblocks a stdin copy still writing to a process that has finished.
	resp.Close()
	collect()
	if err != nil && !errors.Is(err, io.EOF) {
		return res, e.done(err, "read exec output")
	}
	if inDone != nil {
		select {
		case inErr := <-inDone:
			if inErr != nil {
				return res, fmt.Errorf("read stdin for exec: %w", inErr)
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	st, err := e.finishedExec(ctx, created.ID)
	if err != nil {
		return res, err
	}
	res.ExitCode = st.ExitCode
	e.record(nil)
	return res, nil
}

// finishedExec inspects an exec whose output has ended. The engine may
// close the streams a moment before it records the exit, so a still
// "running" exec is asked again briefly rather than reported with a
// made-up exit code.
func (e *Engine) finishedExec(ctx context.Context, execID string) (ExecState, error) {
	delay := 5 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.InspectExec(ctx, execID)
		if err != nil || !st.Running {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, &Error{Op: "inspect exec", Msg: "the process closed its output but the engine still reports it running"}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// boundedBuffer keeps the first max bytes written, drops the rest and
// remembers that it did.
type boundedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.Len()
	if room < 0 {
		room = 0
	}
	if len(p) > room {
		b.truncated = true
		b.Buffer.Write(p[:room])
	} else {
		b.Buffer.Write(p)
	}
	return len(p), nil
}

// readErrReader remembers a read failure of its source, which io.Copy
// would otherwise not tell apart from a failed write.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
