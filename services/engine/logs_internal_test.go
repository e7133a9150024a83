package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// frame builds one multiplexed frame as the engine sends it.
func frame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

func testStream(raw []byte, tty, timestamps bool) *LogStream {
	// One byte per read: frames and lines split at every possible place.
	r := iotest.OneByteReader(bytes.NewReader(raw))
	return &LogStream{ctx: context.Background(), rc: io.NopCloser(r), br: bufio.NewReaderSize(r, 64), TTY: tty, timestamps: timestamps, lineStart: true}
}

func readAll(t *testing.T, s *LogStream) ([]LogLine, error) {
	t.Helper()
	var out []LogLine
	for {
		l, err := s.Next()
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
}

func TestUnitLogFramesDemultiplexed(t *testing.T) {
	const ts1, ts2 = "2026-01-02T03:04:05.000000001Z", "2026-01-02T03:04:06.500000000Z"
	var raw []byte
	raw = append(raw, frame(1, ts1+" hello\n")...)
	raw = append(raw, frame(2, ts1+" oops\r\n")...)
	// A long line the engine split into two messages, each with its time.
	raw = append(raw, frame(1, ts1+" first half, ")...)
	raw = append(raw, frame(2, ts2+" interleaved error\n")...)
	raw = append(raw, frame(1, ts2+" second half\n")...)
	raw = append(raw, frame(1, ts2+" bad \xff\xfe bytes\n")...)
	raw = append(raw, frame(1, ts2+" \n")...)
	raw = append(raw, frame(2, ts2+" no newline at the end")...)
	got, err := readAll(t, testStream(raw, false, true))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	t1, _ := time.Parse(time.RFC3339Nano, ts1)
	t2, _ := time.Parse(time.RFC3339Nano, ts2)
	want := []LogLine{
		{Stream: Stdout, Time: t1, Line: "hello"},
		{Stream: Stderr, Time: t1, Line: "oops"},
		{Stream: Stderr, Time: t2, Line: "interleaved error"},
		{Stream: Stdout, Time: t1, Line: "first half, second half"},
		{Stream: Stdout, Time: t2, Line: "bad \uFFFD bytes"},
		{Stream: Stdout, Time: t2, Line: ""},
		{Stream: Stderr, Time: t2, Line: "no newline at the end"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Stream != want[i].Stream || !got[i].Time.Equal(want[i].Time) || got[i].Line != want[i].Line || got[i].Truncated {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestUnitLogLongLinesAreCut(t *testing.T) {
	long := strings.Repeat("é", MaxLogLine) // two bytes each: cut mid-rune
	raw := append(frame(1, long+"\n"), frame(1, "next\n")...)
	got, err := readAll(t, testStream(raw, false, false))
	if !errors.Is(err, io.EOF) || len(got) != 2 {
		t.Fatalf("got %d lines, %v", len(got), err)
	}
	if !got[0].Truncated || len(got[0].Line) > MaxLogLine+3 || !utf8.ValidString(got[0].Line) {
		t.Errorf("long line: truncated %v, %d bytes, valid %v", got[0].Truncated, len(got[0].Line), utf8.ValidString(got[0].Line))
	}
	if got[1].Line != "next" || got[1].Truncated {
		t.Errorf("line after the long one: %+v", got[1])
	}
}

func TestUnitLogEngineErrorInBand(t *testing.T) {
	raw := append(frame(1, "fine\n"), frame(3, "log driver broke\n")...)
	got, err := readAll(t, testStream(raw, false, false))
	var e *Error
	if len(got) != 1 || !errors.As(err, &e) || !strings.Contains(e.Msg, "log driver broke") {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestUnitLogTTYIsOneStream(t *testing.T) {
	raw := []byte("2026-01-02T03:04:05Z one\r\n2026-01-02T03:04:06Z two\n2026-01-02T03:04:07Z " + strings.Repeat("x", 200) + "\n")
	got, err := readAll(t, testStream(raw, true, true))
	if !errors.Is(err, io.EOF) || len(got) != 3 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got[0].Line != "one" || got[1].Line != "two" || got[2].Line != strings.Repeat("x", 200) || got[1].Time.Second() != 6 {
		t.Errorf("tty lines: %+v", got)
	}
	for _, l := range got {
		if l.Stream != Stdout {
			t.Errorf("tty line on %s", l.Stream)
		}
	}
}

func TestUnitLogTruncatedStream(t *testing.T) {
	raw := frame(1, "complete\n")
	raw = append(raw, frame(2, "cut off")[:10]...)
	got, err := readAll(t, testStream(raw, false, false))
	if !errors.Is(err, io.EOF) || len(got) != 1 || got[0].Line != "complete" {
		t.Fatalf("got %+v, %v", got, err)
	}
}
