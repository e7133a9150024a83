package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"aicode/services/engine"
	"aicode/testutil"
)

// logContainer starts a busybox container running script, with dir
// mounted at /workspace; it is removed when the test ends.
func logContainer(t *testing.T, eng *engine.Engine, script, dir string) string {
	t.Helper()
	ctx := context.Background()
	id, err := eng.CreateContainer(ctx, engine.ContainerSpec{
		Name:        testutil.UniqueName("aicode-logs-test"),
		Image:       testutil.BusyboxImage(t),
		Cmd:         []string{"/bin/sh", "-c", script},
		WorkDir:     "/workspace",
		Labels:      map[string]string{"io.aicode.test": "logs"},
		BindSource:  dir,
		BindTarget:  "/workspace",
		MemoryBytes: 64 << 20,
		NanoCPUs:    500_000_000,
		PidsLimit:   32,
		NetworkMode: "none",
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { _ = eng.RemoveContainer(context.Background(), id) })
	if err := eng.StartContainer(ctx, id); err != nil {
		t.Fatalf("start container: %v", err)
	}
	return id
}

func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The container's user (1000) must be able to look inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// collect reads a stream to its end (or until ctx's deadline).
func collect(t *testing.T, eng *engine.Engine, id string, o engine.LogOptions) ([]engine.LogLine, *engine.LogStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := eng.Logs(ctx, id, o)
	if err != nil {
		t.Fatalf("logs %+v: %v", o, err)
	}
	defer st.Close()
	var out []engine.LogLine
	for {
		l, err := st.Next()
		if errors.Is(err, io.EOF) {
			return out, st
		}
		if err != nil {
			t.Fatalf("read logs %+v: %v (after %d lines)", o, err, len(out))
		}
		out = append(out, l)
	}
}

func lineTexts(ls []engine.LogLine, s engine.Stream) []string {
	var out []string
	for _, l := range ls {
		if s == "" || l.Stream == s {
			out = append(out, l.Line)
		}
	}
	return out
}

func sameStrings(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// The demultiplexed output of a real container: streams told apart, odd
// bytes and long lines survive, tail, timestamps and since work, and a
// stopped container's stream ends after its last line.
func TestLogsFromRealContainer(t *testing.T) {
	eng := testutil.Engine(t)
	script := `echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2
printf 'bad-\377-utf8\n'
head -c 20000 /dev/zero | tr '\0' a; echo
echo '<b>not markup</b> & "quotes"'
sleep 0.3; echo last-1; sleep 0.1; echo last-2
exec sleep 3600`
	id := logContainer(t, eng, script, sharedDir(t))
	created := time.Now()

	// Wait for the script to have written everything.
	deadline := time.Now().Add(15 * time.Second)
	var all []engine.LogLine
	for {
		all, _ = collect(t, eng, id, engine.LogOptions{Tail: -1})
		if n := len(all); n > 0 && all[n-1].Line == "last-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's output never ended with last-2: %q", lineTexts(all, ""))
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("demux", func(t *testing.T) {
		out := lineTexts(all, engine.Stdout)
		if len(out) != 7 || out[0] != "out-1" || out[1] != "out-2" || out[5] != "last-1" || out[6] != "last-2" {
			t.Fatalf("stdout lines: %q", out)
		}
		if errs := lineTexts(all, engine.Stderr); !sameStrings(errs, []string{"err-1", "err-2"}) {
			t.Fatalf("stderr lines: %q", errs)
		}
		if !utf8.ValidString(out[2]) || !strings.HasPrefix(out[2], "bad-") || !strings.HasSuffix(out[2], "-utf8") || !strings.Contains(out[2], "\uFFFD") {
			t.Errorf("invalid UTF-8 line read as %q", out[2])
		}
		var long engine.LogLine
		for _, l := range all {
			if strings.HasPrefix(l.Line, "aaaa") {
				long = l
			}
		}
		if !long.Truncated || len(long.Line) != engine.MaxLogLine || strings.Trim(long.Line, "a") != "" {
			t.Errorf("20000-byte line: truncated %v, %d bytes", long.Truncated, len(long.Line))
		}
		if out[4] != `<b>not markup</b> & "quotes"` {
			t.Errorf("line with markup read as %q", out[4])
		}
		for _, l := range all {
			if !l.Time.IsZero() {
				t.Fatalf("time set without timestamps: %+v", l)
			}
		}
	})

	t.Run("tail", func(t *testing.T) {
		got, _ := collect(t, eng, id, engine.LogOptions{Tail: 2})
		if texts := lineTexts(got, ""); !sameStrings(texts, []string{"last-1", "last-2"}) {
			t.Fatalf("tail 2: %q", texts)
		}
		got, _ = collect(t, eng, id, engine.LogOptions{Tail: 0})
		if len(got) != 0 {
			t.Fatalf("tail 0: %q", lineTexts(got, ""))
		}
	})

	t.Run("timestamps", func(t *testing.T) {
		stamped, _ := collect(t, eng, id, engine.LogOptions{Tail: -1, Timestamps: true})
		if !sameStrings(lineTexts(stamped, ""), lineTexts(all, "")) {
			t.Fatalf("with timestamps the lines differ:\n%q\n%q", lineTexts(stamped, ""), lineTexts(all, ""))
		}
		for _, l := range stamped {
			if l.Time.Before(created.Add(-time.Minute)) || l.Time.After(time.Now().Add(time.Minute)) || l.Time.Location() != time.UTC {
				t.Fatalf("line %q has time %v", l.Line, l.Time)
			}
		}
		if n := len(stamped); !stamped[n-1].Time.After(stamped[0].Time) {
			t.Errorf("times do not advance: %v .. %v", stamped[0].Time, stamped[n-1].Time)
		}
	})

	t.Run("since", func(t *testing.T) {
		// Its own read, so this subtest stands alone when run by itself.
		stamped, _ := collect(t, eng, id, engine.LogOptions{Tail: -1, Timestamps: true})
		if len(stamped) == 0 {
			t.Fatal("no lines with timestamps")
		}
		last := stamped[len(stamped)-1]
		got, _ := collect(t, eng, id, engine.LogOptions{Tail: -1, Since: last.Time, Timestamps: true})
		if texts := lineTexts(got, ""); len(texts) == 0 || texts[len(texts)-1] != "last-2" || strings.Contains(strings.Join(texts, " "), "out-1") {
			t.Fatalf("since the last line: %q", texts)
		}
	})

	t.Run("stopped container", func(t *testing.T) {
		if err := eng.StopContainer(context.Background(), id, time.Second); err != nil {
			t.Fatal(err)
		}
		// Following a stopped container gives its last output, then ends.
		got, st := collect(t, eng, id, engine.LogOptions{Tail: 3, Follow: true})
		if st.Running {
			t.Error("a stopped container's stream says it runs")
		}
		if texts := lineTexts(got, ""); len(texts) != 3 || texts[2] != "last-2" {
			t.Fatalf("stopped container's last lines: %q", texts)
		}
	})
}

// Following sees lines as they are written and ends when the container
// stops; cancelling the context ends a waiting read.
func TestLogsFollow(t *testing.T) {
	eng := testutil.Engine(t)
	dir := sharedDir(t)
	// Each file go-N the test creates makes the container print a pair.
	script := `i=0; while :; do if [ -e /workspace/go-$i ]; then echo line-$i; echo err-$i >&2; i=$((i+1)); fi; sleep 0.05; done`
	id := logContainer(t, eng, script, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := eng.Logs(ctx, id, engine.LogOptions{Tail: -1, Follow: true, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Running || st.TTY {
		t.Fatalf("running %v, tty %v", st.Running, st.TTY)
	}
	lines := make(chan engine.LogLine, 100)
	ended := make(chan error, 1)
	go func() {
		for {
			l, err := st.Next()
			if err != nil {
				ended <- err
				return
			}
			lines <- l
		}
	}()
	waitFor := func(want map[string]engine.Stream) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for len(want) > 0 {
			select {
			case l := <-lines:
				if s, ok := want[l.Line]; ok {
					if s != l.Stream {
						t.Errorf("%q on %s, want %s", l.Line, l.Stream, s)
					}
					delete(want, l.Line)
				}
			case err := <-ended:
				t.Fatalf("stream ended early: %v (still waiting for %v)", err, want)
			case <-timeout:
				t.Fatalf("lines never arrived: %v", want)
			}
		}
	}
	for i := range 2 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("go-%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(map[string]engine.Stream{fmt.Sprintf("line-%d", i): engine.Stdout, fmt.Sprintf("err-%d", i): engine.Stderr})
	}

	if err := eng.StopContainer(context.Background(), id, time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v, want io.EOF", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream did not end when the container stopped")
	}

	// A reader waiting on a quiet container returns when its context ends.
	for i := range 2 {
		_ = os.Remove(filepath.Join(dir, fmt.Sprintf("go-%d", i)))
	}
	if err := eng.StartContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	quiet, err := eng.Logs(cctx, id, engine.LogOptions{Tail: 0, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	got := make(chan error, 1)
	go func() {
		_, err := quiet.Next()
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ccancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the context did not end the read")
	}
}

func TestLogsMissingContainer(t *testing.T) {
	eng := testutil.Engine(t)
	_, err := eng.Logs(context.Background(), "aicode-no-such-container-"+testutil.UniqueName("x"), engine.LogOptions{Tail: 10})
	if !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("logs of a missing container: %v, want ErrNotFound", err)
	}
}
