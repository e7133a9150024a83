package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/testutil"
)

// captureContainer starts an idle busybox container without a network,
// removed when the test ends.
func captureContainer(t *testing.T, eng *engine.Engine) string {
	t.Helper()
	return testutil.RunContainer(t, eng, engine.ContainerSpec{
		Cmd:    []string{"sleep", "3600"},
		Labels: map[string]string{"io.aicode.test": "engine-capture"},
	})
}

func TestCapture(t *testing.T) {
	eng := testutil.Engine(t)
	id := captureContainer(t, eng)
	sh := func(script string) engine.ExecSpec {
		return engine.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, WorkDir: "/tmp"}
	}

	t.Run("stdin round trip", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Larger than any pipe or socket buffer: input and output flow at
		// the same time or this deadlocks.
		in := bytes.Repeat([]byte("line of input ✓\n"), 200_000)
		res, err := eng.Capture(ctx, id, engine.ExecSpec{Cmd: []string{"cat"}}, bytes.NewReader(in), 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Stdout, in) || res.StdoutTruncated || len(res.Stderr) != 0 || res.ExitCode != 0 {
			t.Fatalf("got %d bytes (truncated %v), stderr %q, exit %d; want the %d bytes sent back", len(res.Stdout), res.StdoutTruncated, res.Stderr, res.ExitCode, len(in))
		}
	})

	t.Run("stdin closed after copy", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := eng.Capture(ctx, id, sh(`n=$(wc -c); echo "got $n"`), strings.NewReader("12345"), 1024)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(res.Stdout)); got != "got 5" {
			t.Fatalf("stdout %q", got)
		}
	})

	t.Run("separate streams and exit code", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := eng.Capture(ctx, id, sh(`echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 7`), nil, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "out1\nout2\n" || string(res.Stderr) != "err1\nerr2\n" || res.ExitCode != 7 {
			t.Fatalf("stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
		}
		if res.StdoutTruncated || res.StderrTruncated {
			t.Fatalf("truncated: %+v", res)
		}
	})

	t.Run("truncation keeps reading", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// 5 MiB of x's. The final stderr line is written only after all of stdout went
		// through: it arrives only if the dropped output was drained.
		res, err := eng.Capture(ctx, id, sh(`head -c 5242880 /dev/zero | tr '\0' x; echo done >&2; exit 3`), nil, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stdout) != 64<<10 || !res.StdoutTruncated {
			t.Fatalf("stdout %d bytes, truncated %v; want %d, true", len(res.Stdout), res.StdoutTruncated, 64<<10)
		}
		if strings.Trim(string(res.Stdout), "x") != "" {
			t.Fatalf("stdout holds more than the program's x's")
		}
		if string(res.Stderr) != "done\n" || res.StderrTruncated || res.ExitCode != 3 {
			t.Fatalf("stderr %q (truncated %v), exit %d", res.Stderr, res.StderrTruncated, res.ExitCode)
		}
	})

	t.Run("process ignores its input", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// An endless input must not keep Capture waiting once the process
		// is gone.
		res, err := eng.Capture(ctx, id, sh(`echo bye; exit 2`), zeroReader{}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "bye\n" || res.ExitCode != 2 {
			t.Fatalf("stdout %q exit %d", res.Stdout, res.ExitCode)
		}
	})

	t.Run("failing input", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		boom := errors.New("boom")
		_, err := eng.Capture(ctx, id, engine.ExecSpec{Cmd: []string{"cat"}}, io.MultiReader(strings.NewReader("part"), errReader{boom}), 1024)
		if !errors.Is(err, boom) {
			t.Fatalf("err %v, want the input's failure", err)
		}
	})

	t.Run("context ends first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		res, err := eng.Capture(ctx, id, sh(`echo started; exec sleep 30`), nil, 1024)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the deadline", err)
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Fatalf("returned after %v", took)
		}
		if res.ExitCode != -1 || string(res.Stdout) != "started\n" {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("missing container", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := eng.Capture(ctx, "aicode-no-such-container", engine.ExecSpec{Cmd: []string{"true"}}, nil, 1024)
		if !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("err %v, want ErrNotFound", err)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
