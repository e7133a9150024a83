package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenListGetRenameAcrossWorkspaces(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)

	var size Size
	f := newFake()
	a1, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A", CreatedBy: "u1", CreatedByName: "alice"}, startWith(f, &size))
	if err != nil {
		t.Fatal(err)
	}
	if size != (Size{80, 24}) || a1.Info().Size != (Size{80, 24}) {
		t.Fatalf("default size: started %v, info %v", size, a1.Info().Size)
	}
	a2, _ := open(t, m, "A")
	b1, _ := open(t, m, "B")
	custom, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A", Name: "  build  ", Size: Size{Cols: 5000}}, startWith(newFake(), &size))
	if err != nil {
		t.Fatal(err)
	}
	if size != (Size{1000, 24}) {
		t.Fatalf("size not clamped and defaulted: %v", size)
	}

	names := func(ws string) []string {
		var out []string
		for _, i := range m.List(ws) {
			out = append(out, i.Name)
		}
		return out
	}
	if got := fmt.Sprint(names("A")); got != "[Terminal 1 Terminal 2 build]" {
		t.Fatalf("A lists %s", got)
	}
	if got := fmt.Sprint(names("B")); got != "[Terminal 1]" {
		t.Fatalf("B lists %s", got)
	}
	if len(m.List("nope")) != 0 {
		t.Fatal("unknown workspace lists sessions")
	}
	in := a1.Info()
	if in.ID != a1.ID() || in.WorkspaceID != "A" || in.CreatedBy != "u1" || in.CreatedByName != "alice" || in.CreatedAt.IsZero() || in.Ended {
		t.Fatalf("info %+v", in)
	}
	if len(a1.ID()) < 32 || a1.ID() == a2.ID() {
		t.Fatalf("ids %q %q", a1.ID(), a2.ID())
	}

	if s, err := m.Get("A", a2.ID()); err != nil || s != a2 {
		t.Fatalf("get: %v", err)
	}
	if _, err := m.Get("B", a2.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get from another workspace: %v", err)
	}
	if _, err := m.Get("A", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}

	info, err := m.Rename("A", custom.ID(), "  deploy logs ")
	if err != nil || info.Name != "deploy logs" || custom.Info().Name != "deploy logs" {
		t.Fatalf("rename: %v %+v", err, info)
	}
	if _, err := m.Rename("B", custom.ID(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename in another workspace: %v", err)
	}
	if err := m.Close(context.Background(), "B", a1.ID(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("close from another workspace: %v", err)
	}
	if a1.Info().Ended {
		t.Fatal("another workspace closed the session")
	}
	_ = b1
}

func TestNameValidation(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, _ := open(t, m, "A")

	ok := []string{"x", strings.Repeat("é", MaxNameLen), "  padded  ", "日本語 ターミナル", "emoji 😀"}
	for _, name := range ok {
		if _, err := m.Rename("A", s.ID(), name); err != nil {
			t.Errorf("rename %q: %v", name, err)
		}
	}
	bad := []string{"", "   ", strings.Repeat("a", MaxNameLen+1), "tab\there", "new\nline", "esc\x1b[31m", "nul\x00", "c1\u0085x", "bidi\u202Eevil", "\xff\xfe"}
	for _, name := range bad {
		if _, err := m.Rename("A", s.ID(), name); !errors.Is(err, ErrBadName) {
			t.Errorf("rename %q: %v, want ErrBadName", name, err)
		}
		if name == "" || strings.TrimSpace(name) == "" {
			continue // empty means the default name on Open
		}
		if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A", Name: name}, startWith(newFake(), nil)); !errors.Is(err, ErrBadName) {
			t.Errorf("open %q: %v, want ErrBadName", name, err)
		}
	}
	if got := s.Info().Name; got != "emoji 😀" {
		t.Fatalf("a bad name changed the session: %q", got)
	}
	if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A", Name: "   "}, startWith(newFake(), nil)); err != nil {
		t.Fatalf("blank name on open should take the default: %v", err)
	}
}

func TestDefaultNamesCountEverOpened(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s1, _ := open(t, m, "A")
	open(t, m, "A")
	if err := m.Close(context.Background(), "A", s1.ID(), "bye"); err != nil {
		t.Fatal(err)
	}
	// A failed start opens nothing and so uses no number.
	_, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, func(context.Context, Size) (Process, error) {
		return nil, errors.New("exec failed")
	})
	if err == nil || !strings.Contains(err.Error(), "exec failed") {
		t.Fatalf("start error: %v", err)
	}
	s3, _ := open(t, m, "A")
	if got := s3.Info().Name; got != "Terminal 3" {
		t.Fatalf("third session is %q", got)
	}
}

func TestMaxPerWorkspace(t *testing.T) {
	m := NewManager(Options{MaxPerWorkspace: 2}, nil)
	defer shutdown(t, m)

	// Shells that are still starting hold their slot.
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	slow := func(ctx context.Context, s Size) (Process, error) {
		started <- struct{}{}
		<-release
		return newFake(), nil
	}
	var wg sync.WaitGroup
	opened := make(chan *Session, 2)
	for range 2 {
		wg.Go(func() {
			s, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, slow)
			if err != nil {
				t.Error(err)
			}
			opened <- s
		})
	}
	<-started
	<-started
	if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, startWith(newFake(), nil)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third open while two start: %v", err)
	}
	close(release)
	wg.Wait()
	s1 := <-opened
	if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, startWith(newFake(), nil)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third open: %v", err)
	}
	open(t, m, "B") // another workspace has its own limit

	// A failed start gives its slot back.
	if err := m.Close(context.Background(), "A", s1.ID(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, func(context.Context, Size) (Process, error) {
		return nil, errors.New("nope")
	}); err == nil {
		t.Fatal("failed start returned no error")
	}
	open(t, m, "A")
	if n := len(m.List("A")); n != 2 {
		t.Fatalf("A has %d sessions", n)
	}
}

func TestCloseIdempotentAndRaceFree(t *testing.T) {
	var ends endLog
	m := NewManager(Options{OnEnd: ends.onEnd}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	f.closeDelay = 20 * time.Millisecond
	v := attach(t, s, true)
	firstResync(t, v)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- m.Close(context.Background(), "A", s.ID(), "closed by alice") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Callers that find the session wait for its end; later ones no
		// longer find it.
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("close: %v", err)
		}
	}
	waitDone(t, s, time.Second)
	if !f.isClosed() {
		t.Fatal("process not closed")
	}
	if err := m.Close(context.Background(), "A", s.ID(), "again"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second close: %v", err)
	}
	calls := ends.all()
	if len(calls) != 1 || calls[0].reason != "closed by alice" || !calls[0].info.Ended || calls[0].info.EndReason != "closed by alice" {
		t.Fatalf("OnEnd calls %+v", calls)
	}
	if fr := next(t, v); !fr.Exit || fr.Reason != "closed by alice" {
		t.Fatalf("viewer got %+v", fr)
	}
	if _, err := v.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("next after exit: %v", err)
	}
	if in := s.Info(); !in.Ended || in.EndReason != "closed by alice" {
		t.Fatalf("info %+v", in)
	}
	if _, err := s.Attach(true); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach to ended: %v", err)
	}
	if err := v.Input([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("input to ended: %v", err)
	}
	if err := v.Resize(context.Background(), Size{10, 10}); !errors.Is(err, ErrClosed) {
		t.Fatalf("resize of ended: %v", err)
	}
	if _, err := m.Rename("A", s.ID(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename ended: %v", err)
	}
	v.Detach()
	v.Detach()
}

func TestCloseWaitsForAnEndInProgress(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	f.closeDelay = 100 * time.Millisecond
	f.exit() // the reader ends the session; Close takes 100ms
	eventually(t, time.Second, "the end to start", func() bool { return s.Info().Ended })
	if err := m.Close(context.Background(), "A", s.ID(), "late"); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if !f.isClosed() {
		t.Fatal("Close returned before the process was gone")
	}
	if r := s.Info().EndReason; r != "the shell exited" {
		t.Fatalf("reason %q", r)
	}
}

func TestCloseWorkspace(t *testing.T) {
	var ends endLog
	m := NewManager(Options{OnEnd: ends.onEnd}, nil)
	defer shutdown(t, m)
	a1, fa1 := open(t, m, "A")
	a2, fa2 := open(t, m, "A")
	b1, fb1 := open(t, m, "B")
	v := attach(t, a1, false)
	firstResync(t, v)

	m.CloseWorkspace(context.Background(), "A", "the container stopped")
	for _, s := range []*Session{a1, a2} {
		waitDone(t, s, time.Second)
	}
	if !fa1.isClosed() || !fa2.isClosed() || fb1.isClosed() {
		t.Fatal("wrong processes closed")
	}
	if len(m.List("A")) != 0 || len(m.List("B")) != 1 || b1.Info().Ended {
		t.Fatal("wrong sessions closed")
	}
	if fr := next(t, v); !fr.Exit || fr.Reason != "the container stopped" {
		t.Fatalf("viewer got %+v", fr)
	}
	if n := len(ends.all()); n != 2 {
		t.Fatalf("%d OnEnd calls", n)
	}
}

func TestShutdownClosesAllAndWaits(t *testing.T) {
	var ends endLog
	m := NewManager(Options{OnEnd: ends.onEnd}, nil)
	var fakes []*fakeProc
	var viewers []*Viewer
	for i := range 5 {
		s, f := open(t, m, fmt.Sprint("ws", i%2))
		f.closeDelay = 100 * time.Millisecond
		fakes = append(fakes, f)
		v := attach(t, s, true)
		firstResync(t, v)
		viewers = append(viewers, v)
	}
	// One has already ended on its own and is still closing.
	fakes[0].exit()

	started := time.Now()
	shutdown(t, m)
	// The processes close in parallel, not one after the other (500ms).
	if d := time.Since(started); d > 350*time.Millisecond {
		t.Fatalf("shutdown took %v", d)
	}
	for i, f := range fakes {
		if !f.isClosed() {
			t.Fatalf("process %d not closed", i)
		}
	}
	if n := len(ends.all()); n != 5 {
		t.Fatalf("OnEnd ran %d times before Shutdown returned", n)
	}
	if s, v := m.Count(); s != 0 || v != 0 {
		t.Fatalf("count after shutdown %d %d", s, v)
	}
	for _, v := range viewers {
		if _, fr := readToExit(t, v); fr.Reason == "" {
			t.Fatal("exit without a reason")
		}
		v.Detach()
	}
	if _, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, startWith(newFake(), nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("open after shutdown: %v", err)
	}
	shutdown(t, m) // again: nothing to do
}

func TestShutdownDuringStartClosesTheNewProcess(t *testing.T) {
	m := NewManager(Options{}, nil)
	f := newFake()
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, func(context.Context, Size) (Process, error) {
			<-release
			return f, nil
		})
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	shutdown(t, m)
	close(release)
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("open racing shutdown: %v", err)
	}
	if !f.isClosed() {
		t.Fatal("the late process was left running")
	}
}

func TestCount(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	s1, _ := open(t, m, "A")
	s2, _ := open(t, m, "B")
	attach(t, s1, true)
	v := attach(t, s1, false)
	attach(t, s2, false)
	if s, n := m.Count(); s != 2 || n != 3 {
		t.Fatalf("count %d %d", s, n)
	}
	if in := s1.Info(); in.Viewers != 2 || in.Writers != 1 {
		t.Fatalf("info %+v", in)
	}
	v.Detach()
	v.Detach()
	if s, n := m.Count(); s != 2 || n != 2 {
		t.Fatalf("count after detach %d %d", s, n)
	}
}

func TestGraceExpiryClosesTheProcess(t *testing.T) {
	var ends endLog
	m := NewManager(Options{Grace: 50 * time.Millisecond, OnEnd: ends.onEnd}, nil)
	defer shutdown(t, m)

	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)
	time.Sleep(100 * time.Millisecond)
	if s.Info().Ended {
		t.Fatal("ended while a viewer was attached")
	}
	v.Detach()
	waitDone(t, s, 2*time.Second)
	if !f.isClosed() {
		t.Fatal("process not closed")
	}
	if c := ends.forID(s.ID()); len(c) != 1 || c[0].reason != "no one was attached for 50ms" {
		t.Fatalf("OnEnd %+v", c)
	}
	if _, err := m.Get("A", s.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after expiry: %v", err)
	}

	// A session no one ever attached to expires too.
	s2, f2 := open(t, m, "A")
	waitDone(t, s2, 2*time.Second)
	if !f2.isClosed() {
		t.Fatal("unattached process not closed")
	}
}

func TestReattachWithinGraceCancelsExpiry(t *testing.T) {
	// Timings leave a wide margin for a loaded CI host: the detached
	// pauses add up to well past the grace, but each is far shorter.
	m := NewManager(Options{Grace: 200 * time.Millisecond}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	for range 8 {
		v := attach(t, s, true)
		v.Detach()
		time.Sleep(40 * time.Millisecond)
	}
	v := attach(t, s, true)
	time.Sleep(400 * time.Millisecond)
	if s.Info().Ended || f.isClosed() {
		t.Fatal("reattaching did not cancel the grace timer")
	}
	v.Detach()
	waitDone(t, s, 2*time.Second)
}

func TestIdleTimeout(t *testing.T) {
	var ends endLog
	m := NewManager(Options{IdleTimeout: 250 * time.Millisecond, OnEnd: ends.onEnd}, nil)
	defer shutdown(t, m)
	s, f := open(t, m, "A")
	v := attach(t, s, true)
	firstResync(t, v)

	// Output keeps it alive, then input does; together well past the
	// timeout.
	for range 10 {
		if err := f.out([]byte(".")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	for range 10 {
		if err := v.Input([]byte("k")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if s.Info().Ended {
		t.Fatalf("ended despite activity: %s", s.Info().EndReason)
	}
	waitDone(t, s, 2*time.Second)
	screen, fr := readToExit(t, v)
	if string(screen) != ".........." || fr.Reason != "idle for 250ms" {
		t.Fatalf("screen %q exit %+v", screen, fr)
	}
	if !f.isClosed() || len(ends.all()) != 1 {
		t.Fatal("idle session not closed properly")
	}
}

func TestProcessExitEndsSessionForAllViewers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(f *fakeProc)
		reason string
	}{
		{"eof", func(f *fakeProc) { f.exit() }, "the shell exited"},
		{"error", func(f *fakeProc) { f.pw.CloseWithError(errors.New("exec stream reset")) }, "exec stream reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ends endLog
			m := NewManager(Options{OnEnd: ends.onEnd}, nil)
			defer shutdown(t, m)
			s, f := open(t, m, "A")
			v1 := attach(t, s, true)
			v2 := attach(t, s, false)
			if err := f.out([]byte("logout\r\n")); err != nil {
				t.Fatal(err)
			}
			tc.end(f)
			for _, v := range []*Viewer{v1, v2} {
				screen, fr := readToExit(t, v)
				if string(screen) != "logout\r\n" || fr.Reason != tc.reason || fr.Data != nil {
					t.Fatalf("screen %q exit %+v", screen, fr)
				}
				if _, err := v.Next(context.Background()); !errors.Is(err, ErrClosed) {
					t.Fatalf("next after exit: %v", err)
				}
			}
			waitDone(t, s, time.Second)
			if len(m.List("A")) != 0 {
				t.Fatal("ended session still listed")
			}
			if _, err := m.Get("A", s.ID()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get: %v", err)
			}
			if c := ends.all(); len(c) != 1 || c[0].reason != tc.reason || c[0].info.Viewers != 2 {
				t.Fatalf("OnEnd %+v", c)
			}
			if !f.isClosed() {
				t.Fatal("process not closed after it exited")
			}
			// Viewers leaving an ended session start nothing.
			v1.Detach()
			v2.Detach()
			time.Sleep(10 * time.Millisecond)
			if len(ends.all()) != 1 {
				t.Fatal("OnEnd ran again")
			}
		})
	}
}

func TestGoroutinesReturnToBaseline(t *testing.T) {
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	base := settle()
	m := NewManager(Options{Grace: 20 * time.Millisecond, IdleTimeout: time.Hour}, nil)
	for i := range 150 {
		s, f := open(t, m, fmt.Sprint("ws", i%3))
		v, err := s.Attach(true)
		if errors.Is(err, ErrClosed) {
			continue // the host was slow enough for the grace to expire: also a cycle
		} else if err != nil {
			t.Fatal(err)
		}
		firstResync(t, v)
		go f.out([]byte("hello\n")) // returns when the reader took it, or on close
		readN(t, v, 6)
		if err := v.Input([]byte("exit\n")); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			if err := m.Close(context.Background(), s.WorkspaceID(), s.ID(), "bye"); err != nil {
				t.Fatal(err)
			}
			v.Detach()
		case 1:
			f.exit()
			readToExit(t, v)
			v.Detach()
		case 2:
			v.Detach()
			waitDone(t, s, 2*time.Second)
		}
	}
	shutdown(t, m)
	deadline := time.Now().Add(3 * time.Second)
	n := settle()
	for n > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = settle()
	}
	if n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, baseline %d\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func TestHumanDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		50 * time.Millisecond:        "50ms",
		10 * time.Minute:             "10m",
		90 * time.Second:             "1m30s",
		time.Hour:                    "1h",
		2*time.Hour + 30*time.Minute: "2h30m",
		2*time.Hour + 5*time.Second:  "2h0m5s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// emptyReader returns (0, nil) forever, as a broken adapter might.
type emptyReader struct{ *fakeProc }

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderGivesUpOnEmptyReads(t *testing.T) {
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	f := newFake()
	s, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A"}, func(context.Context, Size) (Process, error) {
		return emptyReader{f}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, time.Second)
	if r := s.Info().EndReason; r != io.ErrNoProgress.Error() || !f.isClosed() {
		t.Fatalf("reason %q", r)
	}
}

// TestReaderBatchesFloodsOnly: the reader pauses between reads only once
// output has poured out for a while, takes a large buffer only while
// reads fill the small one, and treats one small read inside a flood as a
// lull, two as its end. Echoes, prompts and a redraw of a few reads never
// wait.
func TestReaderBatchesFloodsOnly(t *testing.T) {
	const k = 1 << 10
	m := NewManager(Options{}, nil)
	defer shutdown(t, m)
	p := &scriptedProc{reads: []int{
		100,                                             // an echo
		8 * k, 8 * k, 8 * k, 8 * k, 8 * k, 8 * k, 8 * k, // 56 KiB: a redraw or a flood's start
		8 * k,    // 64 KiB in a row: a flood
		16 * k,   // fills the small buffer
		40 * k,   // into the large one
		100,      // a lull
		12 * k,   // still the flood
		100, 100, // the end
		8 * k, // a new streak
	}}
	m.sleep = p.pause
	s, err := m.Open(context.Background(), OpenSpec{WorkspaceID: "A", CreatedBy: "u1"}, func(context.Context, Size) (Process, error) { return p, nil })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end at EOF")
	}
	want := []string{
		"read 100/16K",
		"read 8192/16K", "read 8192/16K", "read 8192/16K", "read 8192/16K", "read 8192/16K", "read 8192/16K", "read 8192/16K",
		"read 8192/16K", "pause 4ms",
		"read 16384/16K",
		"read 40960/128K", "pause 4ms",
		"read 100/128K",
		"read 12288/16K", "pause 4ms",
		"read 100/16K", "read 100/16K",
		"read 8192/16K",
	}
	p.mu.Lock()
	got := p.log
	p.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("reads and pauses:\n got %q\nwant %q", got, want)
	}
}
