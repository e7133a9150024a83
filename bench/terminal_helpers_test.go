package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/fasthttp/websocket"

	"aicode/testutil"
)

// termDetachKeys mirrors the app's detach keys (detachKeys in
// services/engine/exec.go, unexported there), so a raw exec is attached
// exactly as the app attaches a terminal.
const termDetachKeys = "ctrl-],ctrl-@,ctrl-],ctrl-@"

// termUser is the workspace user the app runs terminals as (the default of
// AICODE_WORKSPACE_USER).
const termUser = "1000:1000"

// termEnv is the environment the app gives a terminal's shell (termexec),
// without its per-session marker.
var termEnv = []string{"TERM=xterm-256color", "COLORTERM=truecolor", "LANG=C.UTF-8"}

// termWS is a lean terminal WebSocket client: unlike testutil.Term it keeps
// nothing but a reusable read buffer, so 200 MB can stream through it, and
// it reads synchronously in the caller's goroutine (no hand-off between
// goroutines on the measured path). The caller acknowledges output with
// ack, as the browser does once xterm.js has written it.
type termWS struct {
	conn  *websocket.Conn
	wmu   sync.Mutex
	buf   []byte
	ackb  []byte
	hello bool
	// syncs counts resync messages; the first is the attach snapshot, any
	// later one means output was dropped for this viewer.
	syncs int
	// lastResync is set when the last binary message read was a resync
	// snapshot.
	lastResync  bool
	pendingSync bool
	// Output read and not yet acknowledged, and when the last ack went.
	unacked int
	ackedAt time.Time
}

// drops is how often the server dropped this viewer's queue.
func (t *termWS) drops() int { return max(0, t.syncs-1) }

// termControl is a control message from the server.
type termControl struct {
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	CanWrite bool   `json:"canWrite"`
}

// errTermExit is returned by reads once the session has ended.
type errTermExit struct{ reason string }

func (e *errTermExit) Error() string { return "terminal session ended: " + e.reason }

// dialTermWS opens the terminal WebSocket of terminal tid in workspace ws
// with the cookies of jar (a signed-in client's), as the browser does.
func dialTermWS(ctx context.Context, base string, jar http.CookieJar, ws, tid string) (*termWS, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	var cookies []string
	for _, ck := range jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	h.Set("Cookie", strings.Join(cookies, "; "))
	h.Set("Origin", base)
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 4 << 10}
	conn, resp, err := d.DialContext(ctx, "ws://"+u.Host+"/workspaces/"+ws+"/terminals/"+tid+"/ws", h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial terminal %s: %w (status %d)", tid, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial terminal %s: %w", tid, err)
	}
	return &termWS{conn: conn, buf: make([]byte, 64<<10), ackb: make([]byte, 0, 48)}, nil
}

func (t *termWS) Close() error { return t.conn.Close() }

// read returns the next output message (valid until the next call) and
// handles control messages on the way: hello and resync are noted, exit
// and fatal errors end the read with an error.
func (t *termWS) read() ([]byte, error) {
	for {
		kind, r, err := t.conn.NextReader()
		if err != nil {
			return nil, err
		}
		n, err := readInto(&t.buf, r)
		if err != nil {
			return nil, err
		}
		if kind == websocket.BinaryMessage {
			t.lastResync = t.pendingSync
			t.pendingSync = false
			return t.buf[:n], nil
		}
		var m termControl
		if err := json.Unmarshal(t.buf[:n], &m); err != nil {
			return nil, fmt.Errorf("bad control message %q: %w", t.buf[:n], err)
		}
		switch m.Type {
		case "hello":
			t.hello = true
		case "resync":
			t.syncs++
			t.pendingSync = true
		case "exit":
			return nil, &errTermExit{reason: m.Reason}
		case "error":
			return nil, fmt.Errorf("terminal error: %s", m.Message)
		}
	}
}

// readInto reads r to its end into *buf, growing it as needed.
func readInto(buf *[]byte, r io.Reader) (int, error) {
	n := 0
	for {
		if n == len(*buf) {
			nb := make([]byte, 2*len(*buf))
			copy(nb, *buf)
			*buf = nb
		}
		m, err := r.Read((*buf)[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// ack acknowledges n bytes of output as the browser does once xterm.js
// has written them (static/src/terminal.js): in batches of ackEvery bytes,
// and whatever is pending at least every ackFlush.
func (t *termWS) ack(n int) error {
	if n <= 0 {
		return nil
	}
	t.unacked += n
	if t.unacked < ackEvery && time.Since(t.ackedAt) < ackFlush {
		return nil
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	b := append(t.ackb[:0], `{"type":"ack","bytes":`...)
	b = strconv.AppendInt(b, int64(t.unacked), 10)
	b = append(b, '}')
	t.ackb = b
	t.unacked, t.ackedAt = 0, time.Now()
	return t.conn.WriteMessage(websocket.TextMessage, b)
}

// The browser's acknowledgement batching (ACK_EVERY and the flush timer in
// static/src/terminal.js).
const (
	ackEvery = 32 << 10
	ackFlush = 250 * time.Millisecond
)

// typeIn sends keystrokes.
func (t *termWS) typeIn(s string) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.conn.WriteMessage(websocket.BinaryMessage, []byte(s))
}

// markerScan finds a pattern in a stream that arrives in pieces, across
// piece boundaries, keeping only the last len(pattern)-1 bytes.
type markerScan struct {
	pat   []byte
	carry []byte
}

func newMarkerScan(p string) *markerScan {
	return &markerScan{pat: []byte(p), carry: make([]byte, 0, 2*len(p))}
}

// feed reports whether the pattern ends in data (or straddles into it).
func (m *markerScan) feed(data []byte) bool {
	k := len(m.pat) - 1
	found := bytes.Contains(data, m.pat)
	if !found && len(m.carry) > 0 {
		j := append(m.carry, data[:min(len(data), k)]...)
		found = bytes.Contains(j, m.pat)
		m.carry = j
	}
	// Keep the last k bytes of everything seen.
	if len(data) >= k {
		m.carry = append(m.carry[:0], data[len(data)-k:]...)
	} else {
		m.carry = append(m.carry, data...)
		if len(m.carry) > k {
			m.carry = append(m.carry[:0], m.carry[len(m.carry)-k:]...)
		}
	}
	return found
}

func (m *markerScan) reset() { m.carry = m.carry[:0] }

// waitFor reads (and acknowledges) output until pattern appears. It
// returns when the pattern was seen, taken before the acknowledgement is
// sent.
func (t *termWS) waitFor(pattern string) (time.Time, error) {
	scan := newMarkerScan(pattern)
	for {
		data, err := t.read()
		if err != nil {
			return time.Time{}, err
		}
		if t.lastResync {
			scan.reset()
		}
		found := scan.feed(data)
		at := time.Now()
		if err := t.ack(len(data)); err != nil {
			return time.Time{}, err
		}
		if found {
			return at, nil
		}
	}
}

// withTimeout runs fn, closing closer (which makes fn's blocking reads
// fail) if it has not returned after d.
func withTimeout(d time.Duration, closer io.Closer, fn func() error) error {
	timer := time.AfterFunc(d, func() { closer.Close() })
	err := fn()
	if !timer.Stop() {
		return fmt.Errorf("timed out after %s (%v)", d, err)
	}
	return err
}

// postForm posts a form as a page's form does (CSRF token in the body)
// with a client that may be shared between goroutines, and returns the
// status and the Location header.
func postForm(hc *http.Client, base, path, csrf string, vals url.Values) (int, string, string, error) {
	vals.Set("_csrf", csrf)
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(vals.Encode()))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header.Get("Location"), string(body), nil
}

// noRedirect is an HTTP client sharing c's cookies that returns
// redirects instead of following them.
func noRedirect(c *testutil.Client) *http.Client {
	return &http.Client{
		Jar:     c.HTTP.Jar,
		Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// createWorkspaceID creates a workspace through the (non-htmx) form and
// returns its id; the app answers once the container runs.
func createWorkspaceID(hc *http.Client, base, csrf, name string) (string, error) {
	st, loc, body, err := postForm(hc, base, "/workspaces", csrf, url.Values{"name": {name}})
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(loc, "/workspaces/")
	if st != http.StatusSeeOther || !ok || id == "" || strings.Contains(id, "/") {
		return "", fmt.Errorf("create workspace %s: %d %q %.300s", name, st, loc, body)
	}
	return id, nil
}

// openTermID opens a terminal through the form and returns its id.
func openTermID(hc *http.Client, base, csrf, ws string, cols, rows int) (string, error) {
	st, loc, body, err := postForm(hc, base, "/workspaces/"+ws+"/terminals", csrf,
		url.Values{"cols": {strconv.Itoa(cols)}, "rows": {strconv.Itoa(rows)}})
	if err != nil {
		return "", err
	}
	i := strings.Index(loc, "?t=")
	if st != http.StatusSeeOther || i < 0 {
		return "", fmt.Errorf("open terminal in %s: %d %q %.300s", ws, st, loc, body)
	}
	return loc[i+3:], nil
}

// attachTerm dials a terminal and reads until its shell prompt shows.
func attachTerm(base string, jar http.CookieJar, ws, tid string) (*termWS, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := dialTermWS(ctx, base, jar, ws, tid)
	if err != nil {
		return nil, err
	}
	if err := withTimeout(30*time.Second, t, func() error {
		_, err := t.waitFor("$ ")
		return err
	}); err != nil {
		t.Close()
		return nil, fmt.Errorf("terminal %s: no prompt: %w", tid, err)
	}
	if !t.hello {
		t.Close()
		return nil, fmt.Errorf("terminal %s: no hello", tid)
	}
	return t, nil
}

// rawExec starts a command with a TTY in a container straight through the
// SDK, attached as the app attaches a terminal (stdin too, the same detach
// keys, user and environment). start is when the attach call (which
// starts the exec) began.
func rawExec(ctx context.Context, cli *client.Client, containerID string, cmd []string) (resp hijacked, start time.Time, err error) {
	size := &[2]uint{24, 80}
	created, err := cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		User: termUser, WorkingDir: "/workspace", Env: termEnv, Cmd: cmd,
		Tty: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		DetachKeys: termDetachKeys, ConsoleSize: size,
	})
	if err != nil {
		return hijacked{}, time.Time{}, fmt.Errorf("exec create: %w", err)
	}
	start = time.Now()
	r, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: size})
	if err != nil {
		return hijacked{}, time.Time{}, fmt.Errorf("exec attach: %w", err)
	}
	return hijacked{Conn: r.Conn, Reader: r.Reader, close: r.Close}, start, nil
}

// hijacked is the attached stream of a raw exec.
type hijacked struct {
	Conn   net.Conn
	Reader io.Reader
	close  func()
}

func (h hijacked) Close() error {
	if h.close != nil {
		h.close()
	}
	return nil
}

// vmRSSKiB is a process's resident set size from /proc, in KiB.
func vmRSSKiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// goTool returns the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if gr := os.Getenv("GOROOT"); gr != "" {
		return filepath.Join(gr, "bin", "go")
	}
	return "go"
}

// goBuild builds a package of this module (pkg relative to the repository
// root, which is the parent of this package's directory) into out.
func goBuild(pkg, out string, env ...string) error {
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// extServer is the app running as a process of its own (built from
// cmd/aicli), so its memory can be measured apart from the clients'.
type extServer struct {
	URL  string
	Root string // workspaces root
	cmd  *exec.Cmd
	log  string
	// names are the workspaces created through it; their containers are
	// removed at cleanup.
	mu    sync.Mutex
	names map[string]bool
	cli   *client.Client
}

// startExtServer builds and starts the app with env added to the
// defaults below, waits until it answers, and arranges for it to be killed
// and its containers removed when the benchmark ends.
func startExtServer(b *testing.B, bin string, env map[string]string) *extServer {
	b.Helper()
	dir := b.TempDir()
	addr, err := freeAddr()
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "ws")
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	all := map[string]string{
		"AICODE_DATA_DIR":          filepath.Join(dir, "data"),
		"AICODE_LISTEN_ADDR":       addr,
		"AICODE_WORKSPACES_ROOT":   root,
		"AICODE_WORKSPACE_NETWORK": "none",
		"AICODE_LOG_LEVEL":         "warn",
		"AICODE_LOGIN_RATE_LIMIT":  "1000",
	}
	for k, v := range env {
		all[k] = v
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range all {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(dir, "server.log")
	lf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	lf.Close()
	s := &extServer{URL: "http://" + addr, Root: root, cmd: cmd, log: logPath, names: map[string]bool{}, cli: rawDocker(b)}
	b.Cleanup(s.stop)

	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := hc.Get(s.URL + "/healthz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the app did not answer /healthz within a minute; log:\n%s", s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func (s *extServer) Pid() int { return s.cmd.Process.Pid }

func (s *extServer) track(name string) {
	s.mu.Lock()
	s.names[name] = true
	s.mu.Unlock()
}

func (s *extServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop kills the app (a graceful shutdown would end 200 shells one by one
// through the slow engine) and force-removes the containers of the
// workspaces created through it, found by the app's labels.
func (s *extServer) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := s.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", "io.aicode.managed-by=aicode")),
	})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range list {
		s.mu.Lock()
		ours := s.names[c.Labels["io.aicode.workspace-name"]]
		s.mu.Unlock()
		if !ours {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}()
	}
	wg.Wait()
}

// cpuSample is the CPU time used so far by the server, by this process
// and by every other process grouped by command name (from /proc, in
// clock ticks of 10 ms), and the machine's busy and total time.
type cpuSample struct {
	at          time.Time
	server      int64
	self        int64
	byComm      map[string]int64
	busy, total int64
	serverPid   int
}

// procTicks returns a process's command name and user+system ticks.
func procTicks(pid string) (string, int64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if l < 0 || r < l || r+2 > len(s) {
		return "", 0, false
	}
	f := strings.Fields(s[r+2:])
	if len(f) < 13 {
		return "", 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return s[l+1 : r], ut + st, true
}

func sampleCPU(serverPid int) cpuSample {
	c := cpuSample{at: time.Now(), byComm: map[string]int64{}, serverPid: serverPid}
	ents, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		comm, t, ok := procTicks(pid)
		if !ok {
			continue
		}
		switch pid {
		case strconv.Itoa(serverPid):
			c.server = t
		case self:
			c.self = t
		default:
			c.byComm[comm] += t
		}
	}
	c.busy, c.total = machineTicks()
	return c
}

// machineTicks reads the busy and total CPU time of all CPUs from
// /proc/stat, in clock ticks.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// sub describes the CPU used between a and c, as a share of one core per
// process group, the biggest first.
func (c cpuSample) sub(a cpuSample) string {
	wall := c.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return "no interval"
	}
	pct := func(ticks int64) float64 { return float64(ticks) / 100 / wall * 100 }
	type row struct {
		name  string
		ticks int64
	}
	rows := []row{{"server", c.server - a.server}}
	if c.serverPid != os.Getpid() {
		rows = append(rows, row{"clients (this process)", c.self - a.self})
	}
	for k, v := range c.byComm {
		if d := v - a.byComm[k]; d > 0 {
			rows = append(rows, row{k, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ticks > rows[j].ticks })
	var sb strings.Builder
	fmt.Fprintf(&sb, "over %.1fs, machine busy %.0f%% of %d cores;", wall,
		100*float64(c.busy-a.busy)/float64(max(1, c.total-a.total)), runtime.NumCPU())
	for i, r := range rows {
		if i == 10 {
			break
		}
		fmt.Fprintf(&sb, " %s %.0f%%,", r.name, pct(r.ticks))
	}
	return strings.TrimSuffix(sb.String(), ",") + " (% of one core)"
}

// machineBusy returns the share of all CPUs busy over d.
func machineBusy(d time.Duration) float64 {
	b0, t0 := machineTicks()
	time.Sleep(d)
	b1, t1 := machineTicks()
	return float64(b1-b0) / float64(max(1, t1-t0))
}

// waitQuiet waits, for at most limit, until the machine is mostly idle
// (under a fifth of its CPUs busy over half a second): a latency figure
// taken while the previous benchmark's teardown still runs (containers
// being removed, a server exiting) measures that teardown.
func waitQuiet(b *testing.B, limit time.Duration) {
	b.Helper()
	start := time.Now()
	for {
		busy := machineBusy(500 * time.Millisecond)
		if busy < 0.2 {
			b.Logf("machine quiet (%.0f%% busy) after %s", 100*busy, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > limit {
			b.Logf("machine still %.0f%% busy after %s; measuring anyway", 100*busy, limit)
			return
		}
	}
}
