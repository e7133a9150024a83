package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Stream names the output a log line was written to.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// MaxLogLine bounds one log line in bytes; the rest of a longer line is
// dropped and the line marked Truncated. The engine's own log drivers
// split lines at 16 KiB, which this reassembles up to the bound.
const MaxLogLine = 16 << 10

// LogOptions select what Logs returns.
type LogOptions struct {
	// Tail is how many of the last lines to start with; negative means all.
	Tail int
	// Since, when set, skips lines written before it.
	Since time.Time
	// Follow keeps the stream open for new lines until the container stops.
	Follow bool
	// Timestamps asks the engine for each line's time (LogLine.Time).
	Timestamps bool
}

// LogLine is one line a container wrote.
type LogLine struct {
	Stream Stream
	// Time is when the engine received the line (with Timestamps only).
	Time time.Time
	// Line is valid UTF-8 (invalid bytes become U+FFFD), without the line
	// ending.
	Line string
	// Truncated: the line was longer than MaxLogLine.
	Truncated bool
}

// LogStream reads a container's output line by line. It is not safe for
// concurrent use; Close (or the context given to Logs) ends a blocked Next.
type LogStream struct {
	// Running reports whether the container ran when the stream opened; a
	// stopped container's stream ends after its stored output.
	Running bool
	// TTY: the container has a terminal, so its output is one stream and
	// all of it is reported as stdout.
	TTY bool

	ctx        context.Context
	rc         io.ReadCloser
	br         *bufio.Reader
	timestamps bool

	hdr     [8]byte
	chunk   []byte
	lines   []LogLine // complete lines not yet returned
	pending [2]partial
	// lineStart: the next raw (TTY) byte begins a line, so carries a
	// timestamp when timestamps were asked for.
	lineStart bool
	err       error
}

// partial is a line of one stream still waiting for its newline.
type partial struct {
	buf       []byte
	time      time.Time
	truncated bool
	open      bool
}

// Logs opens a container's output. Without a TTY the engine multiplexes
// stdout and stderr in frames, which LogStream takes apart again. A
// missing container is ErrNotFound.
func (e *Engine) Logs(ctx context.Context, containerID string, o LogOptions) (*LogStream, error) {
	info, err := e.cli.ContainerInspect(ctx, containerID)
	if err = e.done(err, "inspect container"); err != nil {
		return nil, err
	}
	opts := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     o.Follow,
		Timestamps: o.Timestamps,
		Tail:       "all",
	}
	if o.Tail >= 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	if !o.Since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", o.Since.Unix(), o.Since.Nanosecond())
	}
	rc, err := e.cli.ContainerLogs(ctx, containerID, opts)
	if err = e.done(err, "read logs"); err != nil {
		return nil, err
	}
	s := &LogStream{
		ctx:        ctx,
		rc:         rc,
		br:         bufio.NewReaderSize(rc, 32<<10),
		timestamps: o.Timestamps,
		lineStart:  true,
	}
	if info.Config != nil {
		s.TTY = info.Config.Tty
	}
	if info.State != nil {
		s.Running = info.State.Running
	}
	return s, nil
}

// Close ends the stream.
func (s *LogStream) Close() error { return s.rc.Close() }

// Next returns the next line. At the end of the output (the container
// stopped, or without Follow everything was read) it returns io.EOF; a
// cancelled context returns the context's error.
func (s *LogStream) Next() (LogLine, error) {
	for len(s.lines) == 0 {
		if s.err != nil {
			return LogLine{}, s.err
		}
		if err := s.read(); err != nil {
			// Whatever was written without a final newline is a line too.
			s.flush(Stdout)
			s.flush(Stderr)
			s.err = s.readError(err)
		}
	}
	l := s.lines[0]
	s.lines[0] = LogLine{}
	s.lines = s.lines[1:]
	return l, nil
}

func (s *LogStream) readError(err error) error {
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	var ours *Error
	if errors.As(err, &ours) {
		return err
	}
	return &Error{Op: "read logs", Msg: Readable(err)}
}

// read consumes one frame (or, with a TTY, one chunk of raw output).
func (s *LogStream) read() error {
	if s.TTY {
		data, err := s.br.ReadSlice('\n')
		if len(data) > 0 {
			start := s.lineStart
			s.lineStart = data[len(data)-1] == '\n'
			s.feed(Stdout, data, start)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil
		}
		return err
	}
	if _, err := io.ReadFull(s.br, s.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return io.EOF
		}
		return err
	}
	size := int(binary.BigEndian.Uint32(s.hdr[4:]))
	var stream Stream
	switch s.hdr[0] {
	case 1:
		stream = Stdout
	case 2:
		stream = Stderr
	case 3:
		// The engine reports its own failure in-band.
		msg, _ := io.ReadAll(io.LimitReader(s.br, int64(min(size, 4096))))
		return &Error{Op: "read logs", Msg: strings.TrimSpace(string(msg))}
	default:
		return &Error{Op: "read logs", Msg: fmt.Sprintf("unexpected stream %d in the log stream", s.hdr[0])}
	}
	// One frame is one message from the engine; only its start carries a
	// timestamp. Frames larger than the chunk are fed piecewise.
	first := true
	for size > 0 {
		n := min(size, 32<<10)
		if cap(s.chunk) < n {
			s.chunk = make([]byte, n)
		}
		buf := s.chunk[:n]
		if _, err := io.ReadFull(s.br, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			return err
		}
		s.feed(stream, buf, first)
		first = false
		size -= n
	}
	return nil
}

// feed adds output of one stream; start says data begins a message (and
// so, with timestamps, starts with one).
func (s *LogStream) feed(stream Stream, data []byte, start bool) {
	var at time.Time
	if start && s.timestamps {
		at, data = cutTimestamp(data)
	}
	p := &s.pending[streamIndex(stream)]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		part := data
		if i >= 0 {
			part = data[:i]
		}
		if !p.open {
			p.open, p.time = true, at
		}
		if room := MaxLogLine - len(p.buf); len(part) > room {
			p.buf = append(p.buf, part[:max(room, 0)]...)
			p.truncated = true
		} else {
			p.buf = append(p.buf, part...)
		}
		if i < 0 {
			return
		}
		s.flush(stream)
		data = data[i+1:]
	}
}

// flush turns a stream's pending bytes into a line.
func (s *LogStream) flush(stream Stream) {
	p := &s.pending[streamIndex(stream)]
	if !p.open {
		return
	}
	line := bytes.TrimSuffix(p.buf, []byte("\r"))
	s.lines = append(s.lines, LogLine{
		Stream:    stream,
		Time:      p.time,
		Line:      strings.ToValidUTF8(string(line), "\uFFFD"),
		Truncated: p.truncated,
	})
	p.buf, p.time, p.truncated, p.open = p.buf[:0], time.Time{}, false, false
	if cap(p.buf) > 2*MaxLogLine {
		p.buf = nil
	}
}

func streamIndex(s Stream) int {
	if s == Stderr {
		return 1
	}
	return 0
}

// cutTimestamp splits the engine's "RFC3339Nano " prefix off a message.
func cutTimestamp(data []byte) (time.Time, []byte) {
	sp := bytes.IndexByte(data, ' ')
	if sp < 0 || sp > 40 {
		return time.Time{}, data
	}
	t, err := time.Parse(time.RFC3339Nano, string(data[:sp]))
	if err != nil {
		return time.Time{}, data
	}
	return t.UTC(), data[sp+1:]
}
