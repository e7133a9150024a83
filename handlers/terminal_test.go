package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"aicode/services/store"
	"aicode/testutil"
)

// openTerminal opens a terminal through the form and returns its id.
func openTerminal(t *testing.T, c *testutil.Client, wsID string, cols, rows int) string {
	t.Helper()
	c.Get("/workspaces/" + wsID + "/terminal")
	r := c.Post("/workspaces/"+wsID+"/terminals", url.Values{"cols": {itoa(cols)}, "rows": {itoa(rows)}}, false)
	loc := r.Header.Get("Location")
	if r.Status != http.StatusSeeOther || !strings.Contains(loc, "?t=") {
		t.Fatalf("open terminal: %d %s %.300s", r.Status, loc, r.Body)
	}
	return loc[strings.Index(loc, "?t=")+3:]
}

func itoa(n int) string { return strconv.Itoa(n) }

func termPath(wsID, tid string) string { return "/workspaces/" + wsID + "/terminals/" + tid + "/ws" }

func dial(t *testing.T, c *testutil.Client, s *testutil.Server, wsID, tid string) *testutil.Term {
	t.Helper()
	tm, err := testutil.DialTerminal(t, c, termPath(wsID, tid), s.URL)
	if err != nil {
		t.Fatalf("dial terminal: %v", err)
	}
	return tm
}

// The full round: echo, resize, reattach with the screen restored, two
// viewers on one shell, and a closed tab that leaves the shell running.
func TestTerminalEchoResizeReattachAndViewers(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("term")}})
	tid := openTerminal(t, admin, w.ID, 100, 30)

	tm := dial(t, admin, s, w.ID, tid)
	hello := tm.WaitControl("hello", 10*time.Second)
	if hello["canWrite"] != true {
		t.Fatalf("owner attached read-only: %v", hello)
	}
	tm.WaitControl("resync", 5*time.Second)

	// Echo: the shell (sh in the busybox image: bash is missing, so the
	// fallback is exercised) runs in /workspace as the non-root user.
	tm.Type("echo hello-$((6*7)) $(pwd) $(id -u)\r")
	tm.WaitOutput("hello-42 /workspace 1000", 10*time.Second)

	// The size given at open, then a resize from the browser.
	tm.Type("stty size\r")
	tm.WaitOutput("30 100", 5*time.Second)
	if err := tm.Send(map[string]any{"type": "resize", "cols": 132, "rows": 43}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	tm.Type("stty size\r")
	tm.WaitOutput("43 132", 5*time.Second)

	// Closing the tab keeps the shell; reattaching replays the screen.
	tm.Type("export KEPT=still-here\r")
	tm.Conn.Close()
	time.Sleep(200 * time.Millisecond)
	if n := len(s.App.Console.Manager().List(w.ID)); n != 1 {
		t.Fatalf("%d sessions after the tab closed, want 1", n)
	}
	again := dial(t, admin, s, w.ID, tid)
	again.WaitControl("resync", 5*time.Second)
	again.WaitOutput("hello-42 /workspace 1000", 5*time.Second)
	again.Type("echo $KEPT\r")
	again.WaitOutput("still-here\r\n", 5*time.Second)

	// A second viewer (another admin session) sees the same bytes.
	admin2 := testutil.Login(t, s.URL, "admin", adminPW)
	other := dial(t, admin2, s, w.ID, tid)
	other.WaitControl("resync", 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	again.Type("for i in 1 2 3 4 5; do echo same-$i; done\r")
	again.WaitOutput("same-5\r\n", 5*time.Second)
	other.WaitOutput("same-5\r\n", 5*time.Second)
	a, b := again.Output(), other.Output()
	marker := "for i in 1 2 3 4 5"
	if strings.Index(a, marker) < 0 || strings.Index(b, marker) < 0 {
		t.Fatal("the command echo is missing")
	}
	// From the command to its last line: what follows (the next prompt)
	// may have reached one viewer and not yet the other.
	span := func(out string) string {
		out = out[strings.LastIndex(out, marker):]
		return out[:strings.Index(out, "same-5\r\n")+len("same-5\r\n")]
	}
	if x, y := span(a), span(b); x != y {
		t.Fatalf("viewers got different bytes:\n%q\n%q", x, y)
	}

	// The terminal tab page lists it with its viewers.
	page := admin.Get("/workspaces/" + w.ID + "/terminal?t=" + tid)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `data-terminal-id="`+tid+`"`) {
		t.Fatalf("terminal tab: %d", page.Status)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'nonce-") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("terminal page CSP: %s", csp)
	}

	// Rename and close from the tab.
	if r := admin.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/rename", url.Values{"name": {"build box"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.Status)
	}
	if got := s.App.Console.Manager().List(w.ID); len(got) != 1 || got[0].Name != "build box" {
		t.Fatalf("after rename: %+v", got)
	}
	if r := admin.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/close", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("close: %d", r.Status)
	}
	ex := again.WaitControl("exit", 5*time.Second)
	if !strings.Contains(ex["reason"].(string), "closed by admin") {
		t.Errorf("exit reason %v", ex["reason"])
	}
	other.WaitControl("exit", 5*time.Second)

	// Opened, attached and closed are audited; typing is not.
	events, _ := s.App.Store.ListAudit(context.Background(), store.AuditFilter{Action: "terminal.", Limit: 50})
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Action] = true
		if strings.Contains(e.Detail, "KEPT") || strings.Contains(e.Detail, "echo") {
			t.Errorf("audit recorded input: %+v", e)
		}
	}
	for _, a := range []string{"terminal.open", "terminal.attach", "terminal.rename", "terminal.close"} {
		if !seen[a] {
			t.Errorf("audit lacks %s (has %v)", a, seen)
		}
	}
}

// Sharing and the WebSocket's defences.
func TestTerminalSharingAndRefusals(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_TERMINAL_OPEN_PER_MINUTE": "4"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("owner", adminPW, "member")
	admin.CreateUser("guest", adminPW, "member")
	admin.CreateUser("stranger", adminPW, "member")
	owner := testutil.Login(t, s.URL, "owner", adminPW)
	guest := testutil.Login(t, s.URL, "guest", adminPW)
	stranger := testutil.Login(t, s.URL, "stranger", adminPW)
	w := createWorkspace(t, s, owner, url.Values{"name": {testutil.UniqueName("shared")}})
	tid := openTerminal(t, owner, w.ID, 80, 24)
	path := termPath(w.ID, tid)

	// Not shared yet: the guest cannot see the workspace at all.
	if _, err := testutil.DialTerminal(t, guest, path, s.URL); err == nil || err.(*testutil.DialError).Status != http.StatusNotFound {
		t.Fatalf("unshared guest dialled: %v", err)
	}
	// Share read-only.
	owner.Get("/workspaces/" + w.ID)
	if r := owner.Post("/workspaces/"+w.ID+"/shares", url.Values{"username": {"guest"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("share: %d %s", r.Status, r.Body)
	}
	if r := guest.Get("/workspaces"); !strings.Contains(r.Body, w.Name) {
		t.Error("shared workspace missing from the guest's list")
	}
	ownerTerm := dial(t, owner, s, w.ID, tid)
	ownerTerm.WaitControl("resync", 5*time.Second)
	watcher := dial(t, guest, s, w.ID, tid)
	if hello := watcher.WaitControl("hello", 5*time.Second); hello["canWrite"] != false {
		t.Fatalf("read-only share attached with write: %v", hello)
	}
	// The watcher's typing is refused and never reaches the shell.
	watcher.Type("echo sneaky-$((1+1))\r")
	watcher.WaitControl("error", 5*time.Second)
	ownerTerm.Type("echo owner-$((2+2))\r")
	ownerTerm.WaitOutput("owner-4", 5*time.Second)
	watcher.WaitOutput("owner-4", 5*time.Second)
	if strings.Contains(ownerTerm.Output(), "sneaky") {
		t.Fatal("read-only input reached the shell")
	}
	// The guest cannot open, rename or close terminals either.
	guest.Get("/workspaces/" + w.ID + "/terminal")
	if r := guest.Post("/workspaces/"+w.ID+"/terminals", nil, false); r.Status != http.StatusForbidden {
		t.Errorf("read-only guest opened a terminal: %d", r.Status)
	}
	if r := guest.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/close", nil, false); r.Status != http.StatusForbidden {
		t.Errorf("read-only guest closed a terminal: %d", r.Status)
	}

	// Write granted: the guest types.
	if r := owner.Post("/workspaces/"+w.ID+"/shares", url.Values{"username": {"guest"}, "can_write": {"1"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("grant write: %d", r.Status)
	}
	writer := dial(t, guest, s, w.ID, tid)
	if hello := writer.WaitControl("hello", 5*time.Second); hello["canWrite"] != true {
		t.Fatalf("write share attached read-only: %v", hello)
	}
	writer.Type("echo guest-$((3+3))\r")
	ownerTerm.WaitOutput("guest-6", 5*time.Second)

	// Someone else's workspace, a cross-site page, and no session at all.
	if _, err := testutil.DialTerminal(t, stranger, path, s.URL); err == nil || err.(*testutil.DialError).Status != http.StatusNotFound {
		t.Errorf("stranger: %v", err)
	}
	if _, err := testutil.DialTerminal(t, owner, path, "https://evil.example"); err == nil || err.(*testutil.DialError).Status != http.StatusForbidden {
		t.Errorf("cross-site handshake: %v", err)
	}
	if _, err := testutil.DialTerminal(t, testutil.NewClient(t, s.URL), path, s.URL); err == nil || err.(*testutil.DialError).Status != http.StatusUnauthorized {
		t.Errorf("anonymous handshake: %v", err)
	}
	// A terminal that does not exist: told so, then closed.
	if gone, err := testutil.DialTerminal(t, owner, termPath(w.ID, "nosuchterminal"), s.URL); err != nil {
		t.Errorf("dial a missing terminal: %v", err)
	} else {
		if m := gone.WaitControl("error", 5*time.Second); m["fatal"] != true {
			t.Errorf("missing terminal: %v", m)
		}
		gone.WaitFor("connection closed", 5*time.Second, func(tm *testutil.Term) bool { return tm.Closed() })
	}

	// Malformed and out-of-range control messages are answered, and the
	// session carries on.
	ownerTerm.Conn.WriteMessage(websocket.TextMessage, []byte("{not json"))
	ownerTerm.Send(map[string]any{"type": "resize", "cols": 0, "rows": 99999})
	ownerTerm.Send(map[string]any{"type": "teleport"})
	ownerTerm.Type("echo still-$((5+5))\r")
	ownerTerm.WaitOutput("still-10", 5*time.Second)
	errs := 0
	for _, m := range ownerTerm.Controls() {
		if m["type"] == "error" {
			errs++
		}
	}
	if errs < 3 {
		t.Errorf("bad control messages were not answered: %v", ownerTerm.Controls())
	}
	// A message over the limit drops that connection, not the session.
	huge := strings.Repeat("x", 70<<10)
	ownerTerm.Conn.WriteMessage(websocket.BinaryMessage, []byte(huge))
	ownerTerm.WaitFor("connection closed", 5*time.Second, func(tm *testutil.Term) bool { return tm.Closed() })
	back := dial(t, owner, s, w.ID, tid)
	back.Type("echo survived-$((7+7))\r")
	back.WaitOutput("survived-14", 5*time.Second)

	// Opening is rate-limited per user (4 a minute here; one opened above).
	for i := 0; i < 3; i++ {
		openTerminal(t, owner, w.ID, 80, 24)
	}
	if r := owner.Post("/workspaces/"+w.ID+"/terminals", nil, false); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("fifth open in a minute: %d", r.Status)
	}
}

// Stopping the container ends its terminals, saying why.
func TestTerminalEndsWhenContainerStops(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("stops")}})
	// A shell that exits ends its terminal, saying so.
	quitter := dial(t, admin, s, w.ID, openTerminal(t, admin, w.ID, 80, 24))
	quitter.WaitControl("resync", 5*time.Second)
	quitter.Type("exit\r")
	if ex := quitter.WaitControl("exit", 10*time.Second); ex["reason"] != "the shell exited" {
		t.Errorf("exit reason after `exit`: %v", ex["reason"])
	}

	tid := openTerminal(t, admin, w.ID, 80, 24)
	tm := dial(t, admin, s, w.ID, tid)
	tm.WaitControl("resync", 5*time.Second)
	tm.Type("echo ready\r")
	tm.WaitOutput("ready", 5*time.Second)

	if r := admin.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status != http.StatusOK {
		t.Fatalf("stop: %d", r.Status)
	}
	ex := tm.WaitControl("exit", 15*time.Second)
	if reason, _ := ex["reason"].(string); !strings.Contains(reason, "container stopped") {
		t.Errorf("exit reason %q", reason)
	}
	tm.WaitFor("connection closed", 5*time.Second, func(tm *testutil.Term) bool { return tm.Closed() })
	if n := len(s.App.Console.Manager().List(w.ID)); n != 0 {
		t.Errorf("%d sessions left after the container stopped", n)
	}
	// A stopped workspace offers no new terminal.
	admin.Get("/workspaces/" + w.ID + "/terminal")
	if r := admin.Post("/workspaces/"+w.ID+"/terminals", nil, false); r.Status != http.StatusConflict {
		t.Errorf("open in a stopped workspace: %d", r.Status)
	}
}

// 100 open/attach/close cycles leave no exec running, no goroutines and
// no file descriptors behind.
func TestTerminalOpenCloseCyclesLeakNothing(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_TERMINAL_OPEN_PER_MINUTE": "1000"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("cycles")}})
	ctx := context.Background()

	cycle := func(i int) {
		tid := openTerminal(t, admin, w.ID, 80, 24)
		tm := dial(t, admin, s, w.ID, tid)
		tm.Type("echo cycle-" + itoa(i) + "-done\r")
		tm.WaitOutput("cycle-"+itoa(i)+"-done\r\n", 10*time.Second)
		// Every other one leaves something running that ignores its input,
		// so closing must kill rather than hang up.
		if i%2 == 0 {
			tm.Type("sleep 300\r")
		}
		if r := admin.Post("/workspaces/"+w.ID+"/terminals/"+tid+"/close", nil, false); r.Status != http.StatusSeeOther {
			t.Fatalf("close %d: %d", i, r.Status)
		}
		tm.WaitControl("exit", 10*time.Second)
		tm.Conn.Close()
	}
	cycle(0) // warm up pools before the baseline
	// Counts settle once the last cycles' handlers have finished tearing
	// down, which on a loaded machine can take a while: a leak stays, so
	// waiting for the counts to come back cannot hide one.
	sample := func() (int, int) {
		runtime.GC()
		return terminalGoroutines(), openFDs()
	}
	g0, f0 := sample()
	for stable, i := 0, 0; stable < 5 && i < 200; i++ {
		time.Sleep(50 * time.Millisecond)
		g, f := sample()
		if g == g0 && f == f0 {
			stable++
		} else {
			g0, f0, stable = g, f, 0
		}
	}
	for i := 1; i <= 100; i++ {
		cycle(i)
	}
	g1, f1 := sample()
	for deadline := time.Now().Add(20 * time.Second); (g1 > g0+5 || f1 > f0+5) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		g1, f1 = sample()
	}
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d over 100 cycles", g0, g1)
	}
	if f1 > f0+5 {
		t.Errorf("file descriptors grew from %d to %d over 100 cycles", f0, f1)
	}
	execs, err := s.App.Engine.ContainerExecs(ctx, w.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range execs {
		if x.Running {
			t.Errorf("exec %s still running", x.ID)
		}
	}
	// And nothing of the sessions is left in the container.
	out := execWrite(t, rawDocker(t), w.ContainerID, "ps -o pid,args")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "sleep 300") || strings.Contains(line, "-l") && !strings.Contains(line, "ps -o") {
			t.Errorf("leftover process: %q", line)
		}
	}
	if n, v := s.App.Console.Manager().Count(); n != 0 || v != 0 {
		t.Errorf("%d sessions and %d viewers left", n, v)
	}
}

func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// In the default workspace image: bash, UTF-8 both ways, 256 colours, and
// full-screen programs (vim, less) that switch to the alternate screen.
func TestTerminalInDefaultImage(t *testing.T) {
	image := os.Getenv("AICODE_TEST_WORKSPACE_IMAGE")
	if image == "" {
		image = "aicode-workspace:latest"
	}
	s := testutil.StartServer(t, testutil.Options{Image: image})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("fullterm")}})
	tid := openTerminal(t, admin, w.ID, 100, 30)
	tm := dial(t, admin, s, w.ID, tid)
	tm.WaitControl("resync", 10*time.Second)

	tm.Type("echo shell=$0 term=$TERM colors=$(tput colors) user=$(whoami)\r")
	tm.WaitOutput("shell=bash term=xterm-256color colors=256 user=dev", 10*time.Second)
	tm.Type("echo 'héllo 中文 ✓' | od -An -tx1 | tr -d ' \\n'; echo\r")
	tm.WaitOutput("68c3a96c6c6f20e4b8ade6968720e29c930a", 10*time.Second)
	tm.Type("printf '\\033[31mred\\033[0m\\n'\r")
	tm.WaitOutput("\x1b[31mred\x1b[0m", 5*time.Second)

	tm.Type("vi -c 'set nocompatible' /workspace/notes.txt\r")
	tm.WaitOutput("\x1b[?1049h", 10*time.Second) // alternate screen
	tm.Type("ihello from vim\x1b:wq\r")
	tm.WaitOutput("\x1b[?1049l", 10*time.Second)
	tm.Type("cat /workspace/notes.txt\r")
	tm.WaitOutput("hello from vim\r\n", 5*time.Second)

	tm.Type("seq 1 500 | less\r")
	tm.WaitOutput("\x1b[?1049h", 10*time.Second)
	tm.Type("q")
	tm.Type("echo after-less\r")
	tm.WaitOutput("after-less\r\n", 5*time.Second)
}

// The server pings the browser at the configured interval, so proxies keep
// idle terminals open.
func TestTerminalKeepAlivePings(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_TERMINAL_PING_INTERVAL": "1s"}})
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("pings")}})
	tm := dial(t, admin, s, w.ID, openTerminal(t, admin, w.ID, 80, 24))
	pings := make(chan struct{}, 16)
	tm.Conn.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return tm.Conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	tm.WaitControl("resync", 5*time.Second)
	deadline := time.After(4 * time.Second)
	got := 0
	for got < 2 {
		select {
		case <-pings:
			got++
		case <-deadline:
			t.Fatalf("%d pings in 4 s with a 1 s interval", got)
		}
	}
	// Still alive afterwards.
	tm.Type("echo alive\r")
	tm.WaitOutput("alive\r\n", 5*time.Second)
}

// terminalGoroutines counts the process's goroutines but the task queue's:
// River starts its maintenance goroutines when it wins leadership, which
// may happen at any time during a test and says nothing about terminals.
func terminalGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "github.com/riverqueue/") {
			n++
		}
	}
	return n
}
