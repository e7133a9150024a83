package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"aicode/services/engine"
)

// delayRec is one "sample" event as a viewer got it.
type delayRec struct {
	at    int64   // arrival, unix nanoseconds
	delay float32 // arrival minus the engine's read time, ms
}

// statsViewer is one open Monitor tab: it reads the workspace's monitor
// stream as the browser does (the whole stream, every event) and notes,
// for every "sample" event, when it arrived and how long after the
// engine read the figures.
type statsViewer struct {
	ws      string
	body    io.ReadCloser
	cancel  context.CancelFunc
	samples atomic.Int64
	closing atomic.Bool
	done    chan struct{}

	mu   sync.Mutex
	recs []delayRec
	err  error // why reading stopped on its own
}

// openStatsViewer connects to a workspace's monitor stream with hc (which
// carries a signed-in session) and starts reading it.
func openStatsViewer(hc *http.Client, base, ws string) (*statsViewer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/workspaces/"+ws+"/monitor/stream", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("monitor stream of %s: %w", ws, err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("monitor stream of %s: %d %s %.300s", ws, resp.StatusCode, ct, body)
	}
	v := &statsViewer{ws: ws, body: resp.Body, cancel: cancel, done: make(chan struct{}), recs: make([]delayRec, 0, 256)}
	go v.run()
	return v, nil
}

var sampleT = []byte(`"t":`)

// run parses the event stream until it ends or the viewer is closed.
func (v *statsViewer) run() {
	defer close(v.done)
	sc := bufio.NewScanner(v.body)
	// The history event holds up to ten minutes of points on one line.
	sc.Buffer(make([]byte, 8<<10), 4<<20)
	var event []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			event = event[:0]
		case bytes.HasPrefix(line, []byte("event:")):
			event = append(event[:0], bytes.TrimSpace(line[len("event:"):])...)
		case bytes.HasPrefix(line, []byte("data:")) && string(event) == "sample":
			now := time.Now()
			t, err := sampleTime(line[len("data:"):])
			if err != nil {
				v.stop(err)
				return
			}
			d := float32(float64(now.UnixNano()-t*int64(time.Millisecond)) / float64(time.Millisecond))
			v.mu.Lock()
			v.recs = append(v.recs, delayRec{at: now.UnixNano(), delay: d})
			v.mu.Unlock()
			v.samples.Add(1)
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	v.stop(fmt.Errorf("monitor stream of %s ended: %w", v.ws, err))
}

// sampleTime reads "t" (unix ms) from a sample event's JSON.
func sampleTime(data []byte) (int64, error) {
	i := bytes.Index(data, sampleT)
	if i < 0 {
		return 0, fmt.Errorf("sample without t: %.200s", data)
	}
	rest := data[i+len(sampleT):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	t, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil || t <= 0 {
		return 0, fmt.Errorf("sample with a bad t: %.200s", data)
	}
	return t, nil
}

func (v *statsViewer) stop(err error) {
	if v.closing.Load() {
		return
	}
	v.mu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.mu.Unlock()
}

// Err is why the stream stopped before the viewer was closed, if it did.
func (v *statsViewer) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *statsViewer) Close() {
	v.closing.Store(true)
	v.cancel()
	v.body.Close()
	<-v.done
}

// window returns the delays of the samples that arrived in [from, to).
func (v *statsViewer) window(from, to time.Time, out []float64) []float64 {
	f, t := from.UnixNano(), to.UnixNano()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range v.recs {
		if r.at >= f && r.at < t {
			out = append(out, float64(r.delay))
		}
	}
	return out
}

// viewerClient is an HTTP client for many long-lived event streams with
// the session of jar.
func viewerClient(jar http.CookieJar) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		ReadBufferSize:      16 << 10,
		WriteBufferSize:     4 << 10,
	}
	return &http.Client{
		Transport: tr,
		Jar:       jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// naiveStream is one viewer of the naive design: an engine stats stream
// of its own, opened with the SDK and decoded sample by sample.
type naiveStream struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	samples atomic.Int64
	closing atomic.Bool
	done    chan struct{}
	err     atomic.Pointer[error]

	mu   sync.Mutex
	recs []delayRec // arrival against the engine's read time
}

func openNaiveStream(cli *client.Client, containerID string) (*naiveStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := cli.ContainerStats(ctx, containerID, true)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("engine stats stream of %.12s: %w", containerID, err)
	}
	n := &naiveStream{body: resp.Body, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		dec := engine.DecodeStats(resp.Body)
		for {
			st, err := dec.Next()
			if err != nil {
				if !n.closing.Load() {
					n.err.Store(&err)
				}
				return
			}
			now := time.Now()
			if !st.Read.IsZero() {
				n.mu.Lock()
				n.recs = append(n.recs, delayRec{at: now.UnixNano(), delay: float32(ms(now.Sub(st.Read)))})
				n.mu.Unlock()
			}
			n.samples.Add(1)
		}
	}()
	return n, nil
}

// window returns the delays of the samples that arrived in [from, to).
func (n *naiveStream) window(from, to time.Time, out []float64) []float64 {
	f, t := from.UnixNano(), to.UnixNano()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.recs {
		if r.at >= f && r.at < t {
			out = append(out, float64(r.delay))
		}
	}
	return out
}

func (n *naiveStream) Err() error {
	if p := n.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (n *naiveStream) Close() {
	n.closing.Store(true)
	n.cancel()
	n.body.Close()
	<-n.done
}

var hostStreamsRe = regexp.MustCompile(`data-testid="host-streams"[^>]*data-streams="(\d+)"`)

// serverUpstreams reads from the fleet page how many engine stats streams
// the server holds right now.
func serverUpstreams(hc *http.Client, base string) (int, error) {
	resp, err := hc.Get(base + "/fleet")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /fleet: %d", resp.StatusCode)
	}
	m := hostStreamsRe.FindSubmatch(body)
	if m == nil {
		return 0, errors.New("GET /fleet: no host-streams figure on the page")
	}
	return strconv.Atoi(string(m[1]))
}

// stalledViewer is a monitor stream that is never read: not its headers,
// not its body, as from a browser tab that froze. Its socket asks for a
// small receive buffer, a receive window clamped to about 1 KB and a
// 400-byte segment size (the server sizes its send buffer from that): on
// loopback's defaults the kernel would otherwise take in some 200 KB
// before the server's writes block, a minute and more at a few KB a
// second; this way about 21 KB, and it stays there (a tiny segment size
// makes the server's send buffer grow again and again instead).
type stalledViewer struct {
	conn      net.Conn
	localPort int
}

func openStalledViewer(base string, jar http.CookieJar, ws string) (*stalledViewer, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range [][3]int{
				{syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048},
				{syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 400},
				{syscall.IPPROTO_TCP, syscall.TCP_WINDOW_CLAMP, 1152},
			} {
				if serr = syscall.SetsockoptInt(int(fd), o[0], o[1], o[2]); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var cookies []string
	for _, ck := range jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	req := "GET /workspaces/" + ws + "/monitor/stream HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAccept: text/event-stream\r\nCookie: " + strings.Join(cookies, "; ") + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	return &stalledViewer{conn: conn, localPort: conn.LocalAddr().(*net.TCPAddr).Port}, nil
}

func (s *stalledViewer) Close() { s.conn.Close() }

// tcpQueues returns the send and receive queues (bytes) of the IPv4
// connection from localPort to remotePort, from /proc/net/tcp.
func tcpQueues(localPort, remotePort int) (tx, rx int64, ok bool) {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, 0, false
	}
	port := func(addr string) int {
		_, p, found := strings.Cut(addr, ":")
		if !found {
			return -1
		}
		v, err := strconv.ParseInt(p, 16, 32)
		if err != nil {
			return -1
		}
		return int(v)
	}
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || port(f[1]) != localPort || port(f[2]) != remotePort {
			continue
		}
		t, r, found := strings.Cut(f[4], ":")
		if !found {
			return 0, 0, false
		}
		txv, err1 := strconv.ParseInt(t, 16, 64)
		rxv, err2 := strconv.ParseInt(r, 16, 64)
		return txv, rxv, err1 == nil && err2 == nil
	}
	return 0, 0, false
}

// waitStalled waits until the server's writes to a stalled viewer block:
// its send queue to the viewer is not empty and has not moved while
// samples kept coming, so many (at least n, counted by progress, a reading
// viewer of the same workspace) that the app's own buffering between the
// stream handler and the socket (fasthttp's pipe, four writes deep) is
// full too. It returns the send queue then, or an error after timeout.
func waitStalled(serverPort int, sv *stalledViewer, progress func() int64, n int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	var mark int64
	for {
		tx, _, ok := tcpQueues(serverPort, sv.localPort)
		switch {
		case !ok:
			last = -1
		case tx != last:
			last, mark = tx, progress()
		case tx > 0 && progress()-mark >= n:
			return tx, nil
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("the stalled viewer's connection did not fill within %s (server send queue %d bytes)", timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// engineTicks is the CPU time of the engine's processes (dockerd,
// containerd and the containerd shims) in a sample.
func engineTicks(c cpuSample) int64 {
	var t int64
	for comm, v := range c.byComm {
		if comm == "dockerd" || strings.HasPrefix(comm, "containerd") {
			t += v
		}
	}
	return t
}

// pctOfCore converts clock ticks (10 ms) used over wall time into a share
// of one core, in %.
func pctOfCore(ticks int64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(ticks) / 100 / wall.Seconds() * 100
}
