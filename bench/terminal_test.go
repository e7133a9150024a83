package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"aicode/testutil"
)

// termServerEnv is the terminal benchmarks' server environment: the app
// as deployed (default log level), with the app's default CPU allowance
// for workspaces (testutil caps them at half a CPU, which would throttle
// the producer of the output rather than measure the path under test).
var termServerEnv = map[string]string{
	"AICODE_LOG_LEVEL":                "info",
	"AICODE_WORKSPACE_CPUS":           "2",
	"AICODE_TERMINAL_OPEN_PER_MINUTE": "1000",
}

// termFixture is the app running as a process of its own, as deployed
// (its scheduler is not shared with the measuring clients), with one
// running workspace and one terminal attached at its prompt, plus an SDK
// client for the raw side.
type termFixture struct {
	s       *extServer
	admin   *testutil.Client
	ws, cid string
	term    *termWS
	cli     *client.Client
	hc      *http.Client
}

// appBinary builds cmd/aicli once per benchmark process.
var appBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "aicode-bench-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "aicli")
	return bin, goBuild("./cmd/aicli", bin)
})

func newTermFixture(b *testing.B, prefix string) *termFixture {
	b.Helper()
	bin, err := appBinary()
	if err != nil {
		b.Fatal(err)
	}
	env := map[string]string{"AICODE_WORKSPACE_IMAGE": testutil.BusyboxImage(b)}
	for k, v := range termServerEnv {
		env[k] = v
	}
	s := startExtServer(b, bin, env)
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("server log (tail):\n%s", s.logTail())
		}
	})
	admin := testutil.Setup(b, s.URL, adminUser, adminPW)
	hc := noRedirect(admin)
	name := testutil.UniqueName(prefix)
	s.track(name)
	id, err := createWorkspaceID(hc, s.URL, admin.CSRF, name)
	if err != nil {
		b.Fatal(err)
	}
	cli := rawDocker(b)
	cid, err := workspaceContainer(cli, id)
	if err != nil {
		b.Fatal(err)
	}
	tid, err := openTermID(hc, s.URL, admin.CSRF, id, 80, 24)
	if err != nil {
		b.Fatal(err)
	}
	t, err := attachTerm(s.URL, admin.HTTP.Jar, id, tid)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { t.Close() })
	return &termFixture{s: s, admin: admin, ws: id, cid: cid, term: t, cli: cli, hc: hc}
}

// workspaceContainer finds a workspace's container by the app's label.
func workspaceContainer(cli *client.Client, workspaceID string) (string, error) {
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "io.aicode.workspace-id="+workspaceID)),
	})
	if err != nil {
		return "", err
	}
	if len(list) != 1 {
		return "", fmt.Errorf("workspace %s: %d running containers, want 1", workspaceID, len(list))
	}
	return list[0].ID, nil
}

// envInt reads a positive integer knob for trying smaller runs by hand;
// `make bench` uses the defaults.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

const (
	throughputBytes  = 200_000_000
	throughputRounds = 5
	throughputWarmup = 5_000_000 // one round each side of this size, not counted
)

// BenchmarkTerminalThroughput streams 200 MB of terminal output from a
// workspace container to a WebSocket client through the app, and the same
// output read straight from the engine through the SDK, in rounds.
//
// "The same output" is the same command typed into the same kind of
// shell: a login shell in an exec with a TTY, attached through the SDK as
// the app attaches a terminal's, read to an end marker. Each round also
// times the command run as an exec of its own (sh -c, read to EOF). The
// engine alone moves that one often faster than the same command typed
// into a shell, with no app involved: by round, the shell ran at 0.72 to
// 1.10 of the exec on this machine, most often near 0.9. Comparing the
// app's terminal with the exec alone would charge that to the app; its
// ratio is printed too.
//
// The shell times run from typing the command to its end marker; the
// exec's from the attach (which starts it) to the last byte. Nothing is
// subtracted. The app's client acknowledges every message as it reads it,
// as the browser does, and keeps no output. The three run one after
// another, in an order that rotates from round to round.
//
// Prints terminal_throughput_ratio (median over rounds of app throughput
// over raw shell throughput; target >= 0.9), the same against the exec
// (terminal_throughput_ratio_vs_exec), the engine's own shell/exec ratio,
// and each side's median MB/s. Five rounds: on this shared 2-core machine
// single rounds range from 0.75 to 1.13.
func BenchmarkTerminalThroughput(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	f := newTermFixture(b, "tput")
	size := envInt("AICODE_BENCH_TERMINAL_TPUT_BYTES", throughputBytes)
	raw, _, _, err := openRawShell(f.cli, f.cid)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	var ratios, vsExec, shellVsExec, rawMBs, appMBs, execMBs []float64
	var drops int
	for r := -1; r < throughputRounds; r++ {
		n := size
		if r < 0 {
			n = min(size, throughputWarmup)
		}
		var rawD, appD, execD time.Duration
		var xs int64
		var d int
		sides := []func(){
			func() {
				c0 := sampleCPU(f.s.Pid())
				rawD, _, _ = typedThroughput(b, "raw shell", raw, n, 1000+r+1)
				if r >= 0 {
					b.Logf("round %d: raw shell side CPU %s", r, sampleCPU(f.s.Pid()).sub(c0))
				}
			},
			func() {
				c0 := sampleCPU(f.s.Pid())
				appD, xs, d = typedThroughput(b, "app", wsSource{f.term}, n, 1000+r+1)
				if r >= 0 {
					b.Logf("round %d: app side CPU %s", r, sampleCPU(f.s.Pid()).sub(c0))
				}
			},
			func() { execD = f.rawThroughput(b, n) },
		}
		for i := range sides {
			sides[(i+max(r, 0))%len(sides)]()
		}
		if r < 0 {
			continue
		}
		drops += d
		if xs < int64(n) {
			b.Logf("round %d: the client got %d of %d bytes of output (%d resyncs)", r, xs, n, d)
		}
		rawMB := float64(n) / 1e6 / rawD.Seconds()
		appMB := float64(n) / 1e6 / appD.Seconds()
		execMB := float64(n) / 1e6 / execD.Seconds()
		b.Logf("round %d: raw shell %s (%.1f MB/s), app %s (%.1f MB/s), exec %s (%.1f MB/s)", r,
			rawD.Round(time.Millisecond), rawMB, appD.Round(time.Millisecond), appMB, execD.Round(time.Millisecond), execMB)
		ratios = append(ratios, appMB/rawMB)
		vsExec = append(vsExec, appMB/execMB)
		shellVsExec = append(shellVsExec, rawMB/execMB)
		rawMBs = append(rawMBs, rawMB)
		appMBs = append(appMBs, appMB)
		execMBs = append(execMBs, execMB)
	}
	// Every round's ratios, on stdout: the benchmark log is cut short.
	fmt.Printf("terminal_throughput app/raw shell by round: %.3f\n", ratios)
	fmt.Printf("terminal_throughput app/exec by round: %.3f\n", vsExec)
	fmt.Printf("terminal_throughput raw shell/exec by round: %.3f\n", shellVsExec)
	emit("terminal_throughput_ratio", median(ratios), "ratio")
	emit("terminal_throughput_ratio_vs_exec", median(vsExec), "ratio")
	emit("terminal_throughput_raw_shell_vs_exec", median(shellVsExec), "ratio")
	emit("terminal_throughput_app_mbps", median(appMBs), "MB/s")
	emit("terminal_throughput_raw_mbps", median(rawMBs), "MB/s")
	emit("terminal_throughput_exec_mbps", median(execMBs), "MB/s")
	// Output the app dropped for the client (it resyncs from the ring
	// instead): 0 unless the client fell behind.
	emit("terminal_throughput_app_resyncs", float64(drops), "count")
}

// producer is the shell command writing exactly n bytes of 'x' (no
// newline, so the TTY passes them unchanged).
func producer(n int) string {
	return fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x`, n)
}

// rawThroughput runs the producer in an exec of its own and reads it to
// EOF; it returns attach-to-last-byte.
func (f *termFixture) rawThroughput(b *testing.B, n int) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, start, err := rawExec(ctx, f.cli, f.cid, []string{"/bin/sh", "-c", producer(n)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	// 32 KiB: between the app session's own 16 KiB buffer and the 128 KiB
	// one it reads a flood into.
	buf := make([]byte, 32<<10)
	var got int64
	var last time.Time
	for {
		m, err := h.Reader.Read(buf)
		if m > 0 {
			got += int64(m)
			last = time.Now()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatalf("raw read after %d bytes: %v", got, err)
		}
	}
	if got != int64(n) {
		b.Fatalf("raw exec produced %d bytes, want %d", got, n)
	}
	return last.Sub(start)
}

// typedThroughput types the producer followed by a unique end marker into
// a shell and reads until the marker, acknowledging output as the browser
// does (the raw side has no one to acknowledge to). It returns the time
// from typing to the marker, how many 'x' bytes arrived, and how many
// resyncs (drops) happened meanwhile. The app and the raw shell are
// measured by this same code.
func typedThroughput(b *testing.B, side string, src loadSource, n, tag int) (time.Duration, int64, int) {
	b.Helper()
	// The marker the shell prints (TPEND-<tag>) is not in the echoed
	// command line, which holds the unevaluated arithmetic.
	cmd := fmt.Sprintf("%s; echo TPEND-$((%d+1))\r", producer(n), tag-1)
	scan := newMarkerScan(fmt.Sprintf("TPEND-%d", tag))
	drops0 := src.drops()
	var xs int64
	var at time.Time
	start := time.Now()
	err := withTimeout(10*time.Minute, src, func() error {
		if err := src.typeIn(cmd); err != nil {
			return err
		}
		for {
			data, resync, err := src.next()
			if err != nil {
				return err
			}
			if resync {
				scan.reset()
			}
			found := scan.feed(data)
			now := time.Now()
			xs += int64(bytes.Count(data, []byte{'x'}))
			if err := src.ack(len(data)); err != nil {
				return err
			}
			if found {
				at = now
				return nil
			}
		}
	})
	if err != nil {
		b.Fatalf("%s throughput: %v", side, err)
	}
	// The echoed command line holds one 'x' ("tr '\0' x").
	return at.Sub(start), xs - 1, src.drops() - drops0
}

const (
	echoSamples = 1000 // per side
	echoBlock   = 100  // interleaved blocks of this many
	echoWarmup  = 50   // per side, not counted
	echoKill    = 40   // keystrokes between line kills (Ctrl-U)
)

// BenchmarkTerminalEcho measures 1,000 single-keystroke round trips
// through the app (a binary WebSocket message with 'a' until its echo
// comes back in a binary message) against the same through the engine
// alone (a byte written to an attached exec with a TTY until its echo is
// read back), in interleaved blocks of 100. Both sides run cat in
// canonical mode, so the echo is the TTY's own and no process wake-up in
// the container is in the loop; Ctrl-U every 40 keys keeps the line short.
//
// Prints terminal_echo_p99_raw_ms, terminal_echo_p99_app_ms and
// terminal_echo_p99_added_ms (app - raw; target <= 1 ms), and the p50s.
func BenchmarkTerminalEcho(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	f := newTermFixture(b, "echo")
	t := f.term
	// cat in the terminal: once the shell has echoed the line it has put
	// the TTY back into canonical mode, so later keys are echoed by the
	// TTY whether or not cat has started yet.
	if err := withTimeout(30*time.Second, t, func() error {
		if err := t.typeIn("cat\r"); err != nil {
			return err
		}
		_, err := t.waitFor("\n")
		return err
	}); err != nil {
		b.Fatalf("start cat in the terminal: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	raw, _, err := rawExec(ctx, f.cli, f.cid, []string{"cat"})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	// A second raw exec, measured the same way, tells how far two runs of
	// the very same path differ: the noise floor of the p99 comparison.
	raw2, _, err := rawExec(ctx, f.cli, f.cid, []string{"cat"})
	if err != nil {
		b.Fatal(err)
	}
	defer raw2.Close()
	time.Sleep(300 * time.Millisecond)

	rawKeyOf := func(h hijacked) func(byte) (time.Duration, error) {
		buf := make([]byte, 4096)
		return func(key byte) (time.Duration, error) {
			start := time.Now()
			if _, err := h.Conn.Write([]byte{key}); err != nil {
				return 0, err
			}
			if key != 'a' {
				return 0, nil
			}
			for {
				n, err := h.Reader.Read(buf)
				if bytes.IndexByte(buf[:n], 'a') >= 0 {
					return time.Since(start), nil
				}
				if err != nil {
					return 0, err
				}
			}
		}
	}
	rawKey, raw2Key := rawKeyOf(raw), rawKeyOf(raw2)
	appKey := func(key byte) (time.Duration, error) {
		start := time.Now()
		if err := t.typeIn(string(key)); err != nil {
			return 0, err
		}
		if key != 'a' {
			return 0, nil
		}
		at, err := t.waitFor("a")
		return at.Sub(start), err
	}
	// run types n keys on one side, killing the line every echoKill keys.
	typed := map[string]int{}
	run := func(side string, key func(byte) (time.Duration, error), closer io.Closer, n int, out *[]float64) {
		err := withTimeout(time.Minute, closer, func() error {
			for i := 0; i < n; i++ {
				if typed[side]++; typed[side]%echoKill == 0 {
					if _, err := key(0x15); err != nil {
						return err
					}
				}
				d, err := key('a')
				if err != nil {
					return err
				}
				if out != nil {
					*out = append(*out, ms(d))
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("%s echo: %v", side, err)
		}
	}
	waitQuiet(b, 30*time.Second)
	run("raw", rawKey, raw, echoWarmup, nil)
	run("app", appKey, t, echoWarmup, nil)
	run("raw2", raw2Key, raw2, echoWarmup, nil)
	var rawMS, appMS, raw2MS []float64
	for i := 0; i < echoSamples/echoBlock; i++ {
		run("raw", rawKey, raw, echoBlock, &rawMS)
		run("app", appKey, t, echoBlock, &appMS)
		run("raw2", raw2Key, raw2, echoBlock, &raw2MS)
	}
	rawP99, appP99 := percentile(rawMS, 99), percentile(appMS, 99)
	emit("terminal_echo_p99_raw_ms", rawP99, "ms")
	emit("terminal_echo_p99_app_ms", appP99, "ms")
	emit("terminal_echo_p99_added_ms", appP99-rawP99, "ms")
	emit("terminal_echo_p50_raw_ms", percentile(rawMS, 50), "ms")
	emit("terminal_echo_p50_app_ms", percentile(appMS, 50), "ms")
	// The same comparison between the two raw execs: what "added" reads
	// when nothing is added.
	emit("terminal_echo_p99_raw_vs_raw_ms", percentile(raw2MS, 99)-rawP99, "ms")
}

// The load run: 200 terminals over 10 workspaces, each printing 40 KB/s for
// a minute.
const (
	loadTerminals  = 200
	loadWorkspaces = 10
	loadRate       = 40_000 // bytes a second per terminal
	loadSeconds    = 60
	loadSampleAt   = 45 * time.Second
	loadRingKiB    = 256 // AICODE_TERMINAL_SCROLLBACK_KB default
	// The ratewriter's line format (bench/ratewriter/main.go).
	rwLineLen = 100
	rwFiller  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234567-"
)

// loadServer is where the load run's app runs: a process of its own (so
// its RSS is the server's alone) or, for profiling by hand
// (AICODE_BENCH_TERMINAL_INPROCESS=1, with -cpuprofile), this process.
type loadServer struct {
	URL, Root string
	Pid       int
	track     func(name string)
}

// BenchmarkTerminalLoad runs the app as a separate process with 200
// terminals in 10 workspaces, each running bench/ratewriter (40 KB/s of
// numbered lines for 60 s, no forking), watched by 200 WebSocket clients
// in this process that acknowledge as they read and check every line.
//
// Prints terminal_200x40kbs_delivered_pct (distinct lines received /
// lines written; target >= 99), terminal_200x40kbs_disconnect_pct
// (connections lost before the producer's final marker; target < 1), the
// server's RSS before the terminals were opened and 45 s into the run,
// terminal_rss_per_session_kib (the difference / 200) and
// terminal_rss_per_session_beyond_ring_kib (minus the scrollback ring
// each session then holds; target <= 300).
func BenchmarkTerminalLoad(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	terms := envInt("AICODE_BENCH_TERMINAL_LOAD_TERMS", loadTerminals)
	secs := envInt("AICODE_BENCH_TERMINAL_LOAD_SECONDS", loadSeconds)
	sampleAt := min(loadSampleAt, time.Duration(secs)*time.Second*3/4)
	image := testutil.BusyboxImage(b)
	dir := b.TempDir()
	rw := filepath.Join(dir, "ratewriter")
	bin := filepath.Join(dir, "aicli")
	inProcess := os.Getenv("AICODE_BENCH_TERMINAL_INPROCESS") != ""

	// Build the producer (and the app) while nothing is measured.
	var wg sync.WaitGroup
	var rwErr, binErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		rwErr = goBuild("./bench/ratewriter", rw, "CGO_ENABLED=0")
	}()
	if !inProcess {
		binErr = goBuild("./cmd/aicli", bin)
	}
	wg.Wait()
	if rwErr != nil || binErr != nil {
		b.Fatal(rwErr, binErr)
	}
	checkRatewriter(b, rw)

	perWS := (terms + loadWorkspaces - 1) / loadWorkspaces
	env := map[string]string{
		"AICODE_WORKSPACE_IMAGE":            image,
		"AICODE_WORKSPACE_NETWORK":          "none",
		"AICODE_WORKSPACE_PIDS":             "1024",
		"AICODE_WORKSPACE_MEMORY_MB":        "1024",
		"AICODE_TERMINAL_MAX_PER_WORKSPACE": strconv.Itoa(max(perWS, 20)),
		"AICODE_TERMINAL_OPEN_PER_MINUTE":   "10000",
		"AICODE_LOG_LEVEL":                  "warn",
		"AICODE_LOGIN_RATE_LIMIT":           "1000",
	}
	var srv loadServer
	if inProcess {
		env["AICODE_WORKSPACES_ROOT"] = filepath.Join(dir, "ws")
		if err := os.MkdirAll(env["AICODE_WORKSPACES_ROOT"], 0o755); err != nil {
			b.Fatal(err)
		}
		s := testutil.StartServer(b, testutil.Options{Image: image, Env: env})
		srv = loadServer{URL: s.URL, Root: s.WorkspacesRoot(), Pid: os.Getpid(), track: func(string) {}}
	} else {
		s := startExtServer(b, bin, env)
		srv = loadServer{URL: s.URL, Root: s.Root, Pid: s.Pid(), track: s.track}
		defer func() {
			if b.Failed() {
				b.Logf("server log (tail):\n%s", s.logTail())
			}
		}()
	}
	rssLog := func(when string) {
		if r, err := vmRSSKiB(srv.Pid); err == nil {
			b.Logf("server RSS %s: %.0f KiB", when, r)
		}
	}
	rssLog("at start")
	admin := testutil.Setup(b, srv.URL, adminUser, adminPW)
	hc := noRedirect(admin)
	csrf := admin.CSRF

	// Workspaces, a few at a time, with the producer in each project
	// directory (mounted at /workspace).
	setup := time.Now()
	suffix := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	ids := make([]string, loadWorkspaces)
	errs := make([]error, loadWorkspaces)
	sem := make(chan struct{}, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("tload-%s-%02d", suffix, i)
			srv.track(name)
			ids[i], errs[i] = createWorkspaceID(hc, srv.URL, csrf, name)
			if errs[i] == nil {
				errs[i] = copyExecutable(rw, filepath.Join(srv.Root, name, "ratewriter"))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d workspaces in %s", loadWorkspaces, time.Since(setup).Round(time.Millisecond))
	rssLog("with the workspaces running")

	// Warm-up: one terminal through the whole path, then closed.
	warm, _, _, err := openLoadClient(hc, srv.URL, csrf, admin.HTTP.Jar, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	if err := warm.start(1000, 1); err != nil {
		b.Fatal(err)
	}
	_ = withTimeout(time.Minute, warm.src, func() error { warm.run(); return nil })
	if !warm.done || warm.lines != 10 {
		b.Fatalf("warm-up terminal: done %v, %d lines, err %v", warm.done, warm.lines, warm.err)
	}
	warm.src.Close()
	if st, _, body, err := postForm(hc, srv.URL, "/workspaces/"+ids[0]+"/terminals/"+warm.tid+"/close", csrf, url.Values{}); err != nil || st != http.StatusSeeOther {
		b.Fatalf("close the warm-up terminal: %d %v %.200s", st, err, body)
	}
	time.Sleep(2 * time.Second)
	if inProcess {
		runtime.GC()
	}
	rssBefore, err := vmRSSKiB(srv.Pid)
	if err != nil {
		b.Fatal(err)
	}

	// Open and attach every terminal, each workspace's in turn, the
	// workspaces in parallel.
	// For comparison by hand (AICODE_BENCH_TERMINAL_LOAD_RAW=1): the same
	// shells started straight through the SDK and read without the app.
	rawMode := os.Getenv("AICODE_BENCH_TERMINAL_LOAD_RAW") != ""
	figSuffix := ""
	var cli *client.Client
	cids := make([]string, loadWorkspaces)
	if rawMode {
		figSuffix = "_raw"
		cli = rawDocker(b)
		for i, id := range ids {
			if cids[i], err = workspaceContainer(cli, id); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Each client reads (and answers pings) from the moment it is
	// attached, as a browser tab does.
	opened := time.Now()
	clients := make([]*loadClient, terms)
	var readers sync.WaitGroup
	var tmu sync.Mutex
	var openMS, attachMS []float64
	for w := 0; w < loadWorkspaces; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < terms; i += loadWorkspaces {
				var c *loadClient
				var o, a time.Duration
				if rawMode {
					c, o, a, errs[w] = openRawLoadClient(cli, cids[w])
				} else {
					c, o, a, errs[w] = openLoadClient(hc, srv.URL, csrf, admin.HTTP.Jar, ids[w])
				}
				if errs[w] != nil {
					return
				}
				tmu.Lock()
				clients[i] = c
				openMS, attachMS = append(openMS, ms(o)), append(attachMS, ms(a))
				tmu.Unlock()
				readers.Add(1)
				go func() {
					defer readers.Done()
					c.run()
				}()
			}
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != nil {
			defer c.src.Close()
		}
	}
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d terminals opened and attached in %s (open request median %.0f ms, p90 %.0f ms; attach to prompt median %.0f ms, p90 %.0f ms)",
		terms, time.Since(opened).Round(time.Millisecond), median(openMS), percentile(openMS, 90), median(attachMS), percentile(attachMS, 90))
	rssLog("with the terminals open")

	// Go: every terminal starts its producer; the clients read until the
	// final marker or their connection fails.
	start := time.Now()
	cpu0 := sampleCPU(srv.Pid)
	for _, c := range clients {
		if err := c.start(loadRate, secs); err != nil {
			b.Fatal(err)
		}
	}
	var cpu1 cpuSample
	finished := make(chan struct{})
	go func() {
		readers.Wait()
		close(finished)
	}()
	var rssDuring, ringKiB float64
	var peak float64
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	sample := time.After(sampleAt)
	deadline := time.After(time.Duration(secs)*time.Second + time.Minute)
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-tick.C:
			if r, err := vmRSSKiB(srv.Pid); err == nil {
				peak = max(peak, r)
			}
		case <-sample:
			if inProcess {
				runtime.GC()
			}
			cpu1 = sampleCPU(srv.Pid)
			if rssDuring, err = vmRSSKiB(srv.Pid); err != nil {
				b.Fatalf("server RSS: %v", err)
			}
			// The ring holds the last 256 KiB of each session's output
			// once it has printed that much.
			var sum float64
			for _, c := range clients {
				sum += min(float64(c.received.Load())/1024, loadRingKiB)
			}
			ringKiB = sum / float64(len(clients))
			if p := os.Getenv("AICODE_BENCH_TERMINAL_HEAPPROFILE"); p != "" {
				writeHeapProfile(b, p)
			}
			b.Logf("at %s: server RSS %.0f KiB (before %.0f), ring %.0f KiB a session", time.Since(start).Round(time.Second), rssDuring, rssBefore, ringKiB)
		case <-deadline:
			for _, c := range clients {
				c.src.Close()
			}
			<-finished
			break wait
		}
	}
	b.Logf("run ended after %s (producers: %d s); peak server RSS %.0f KiB", time.Since(start).Round(time.Millisecond), secs, peak)
	if cpu1.at.IsZero() {
		cpu1 = sampleCPU(srv.Pid)
	}
	b.Logf("CPU until the memory sample: %s", cpu1.sub(cpu0))

	var lines, produced, disconnects, bad, drops int64
	for _, c := range clients {
		lines += int64(c.lines)
		bad += int64(c.bad)
		drops += int64(c.src.drops())
		p := c.produced
		if !c.done {
			disconnects++
			// Its producer writes the same as every other one.
			p = int64(loadRate/10/rwLineLen*10*secs) * rwLineLen
			if disconnects <= 5 {
				b.Logf("terminal %s lost after %d lines: %v", c.tid, c.lines, c.err)
			}
		}
		produced += p
	}
	if rssDuring == 0 {
		b.Fatal("the run ended before the memory sample")
	}
	perSession := (rssDuring - rssBefore) / float64(terms)
	emit("terminal_200x40kbs_delivered_pct"+figSuffix, 100*float64(lines*rwLineLen)/float64(produced), "%")
	emit("terminal_200x40kbs_disconnect_pct"+figSuffix, 100*float64(disconnects)/float64(terms), "%")
	emit("terminal_rss_before_kib"+figSuffix, rssBefore, "KiB")
	emit("terminal_rss_during_kib"+figSuffix, rssDuring, "KiB")
	emit("terminal_rss_per_session_kib"+figSuffix, perSession, "KiB")
	emit("terminal_rss_per_session_beyond_ring_kib"+figSuffix, perSession-ringKiB, "KiB")
	emit("terminal_200x40kbs_resyncs"+figSuffix, float64(drops), "count")
	if bad > 0 {
		b.Errorf("%d output lines arrived corrupted", bad)
	}
}

// checkRatewriter runs the producer here briefly and parses its output
// with the benchmark's parser, so the two cannot drift apart unnoticed.
func checkRatewriter(b *testing.B, path string) {
	b.Helper()
	out, err := exec.Command(path, "1000", "1").Output()
	if err != nil {
		b.Fatalf("ratewriter: %v", err)
	}
	var c loadClient
	c.parse(out)
	if !c.done || c.lines != 10 || c.bad != 0 || c.produced != 1000 {
		b.Fatalf("ratewriter output does not parse: done %v, %d lines, %d bad, %d bytes\n%q", c.done, c.lines, c.bad, c.produced, out)
	}
}

func copyExecutable(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

func writeHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Logf("heap profile: %v", err)
	}
}

// loadClient watches one terminal of the load run.
type loadClient struct {
	ws, tid string
	src     loadSource

	seen     []uint64 // bitmap of line numbers received
	lines    int      // distinct lines received intact
	bad      int      // lines with the producer's prefix but wrong content
	produced int64    // bytes the producer reports having written
	done     bool     // the final marker arrived
	err      error    // why reading stopped before the marker
	partial  []byte
	received atomic.Int64 // output bytes so far (sampled while running)
}

// openLoadClient opens a terminal and attaches to it; it returns how long
// the open request and the attach (until the prompt showed) took.
func openLoadClient(hc *http.Client, base, csrf string, jar http.CookieJar, ws string) (*loadClient, time.Duration, time.Duration, error) {
	t0 := time.Now()
	tid, err := openTermID(hc, base, csrf, ws, 120, 40)
	if err != nil {
		return nil, 0, 0, err
	}
	t1 := time.Now()
	t, err := attachTerm(base, jar, ws, tid)
	if err != nil {
		return nil, 0, 0, err
	}
	return &loadClient{ws: ws, tid: tid, src: wsSource{t}}, t1.Sub(t0), time.Since(t1), nil
}

func (c *loadClient) start(rate, secs int) error {
	return c.src.typeIn(fmt.Sprintf("/workspace/ratewriter %d %d\r", rate, secs))
}

// run reads until the producer's final marker or a connection failure.
func (c *loadClient) run() {
	for !c.done {
		data, resync, err := c.src.next()
		if err != nil {
			c.err = err
			return
		}
		if resync {
			// A snapshot starts at a line start; what was pending is gone.
			c.partial = c.partial[:0]
		}
		c.received.Add(int64(len(data)))
		c.parse(data)
		if err := c.src.ack(len(data)); err != nil {
			c.err = err
			return
		}
	}
}

// parse takes output in pieces and checks every complete line.
func (c *loadClient) parse(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(c.partial)+len(data) <= 4096 {
				c.partial = append(c.partial, data...)
			}
			return
		}
		line := data[:i]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, line...)
			line = c.partial
		}
		c.line(bytes.TrimSuffix(line, []byte{'\r'}))
		c.partial = c.partial[:0]
		data = data[i+1:]
	}
}

func (c *loadClient) line(l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("RWL")):
		if len(l) != rwLineLen-1 || l[11] != ' ' || string(l[12:]) != rwFiller {
			c.bad++
			return
		}
		seq, err := strconv.Atoi(string(l[3:11]))
		if err != nil {
			c.bad++
			return
		}
		w := seq / 64
		for len(c.seen) <= w {
			c.seen = append(c.seen, 0)
		}
		if bit := uint64(1) << (seq % 64); c.seen[w]&bit == 0 {
			c.seen[w] |= bit
			c.lines++
		}
	case bytes.HasPrefix(l, []byte("RWDONE ")):
		var n, total int64
		if _, err := fmt.Sscanf(string(l), "RWDONE lines=%d bytes=%d", &n, &total); err == nil {
			c.produced = total
			c.done = true
		}
	}
}

// loadSource is where a load client's terminal output comes from: the
// app's WebSocket, or (for comparison) an exec attached straight to the
// engine.
type loadSource interface {
	// next returns the next piece of output (valid until the next call)
	// and whether it is a resync snapshot.
	next() ([]byte, bool, error)
	ack(n int) error
	typeIn(s string) error
	drops() int
	Close() error
}

type wsSource struct{ *termWS }

func (w wsSource) next() ([]byte, bool, error) {
	data, err := w.read()
	return data, w.lastResync, err
}

// rawSource is a shell in an exec attached through the SDK, as the app
// starts one, read with a 32 KiB buffer (between the app session's own
// 16 KiB one and the 128 KiB one it reads a flood into).
type rawSource struct {
	h   hijacked
	buf []byte
}

func (r *rawSource) next() ([]byte, bool, error) {
	n, err := r.h.Reader.Read(r.buf)
	if n > 0 {
		return r.buf[:n], false, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return nil, false, err
}

func (r *rawSource) ack(int) error { return nil }
func (r *rawSource) drops() int    { return 0 }
func (r *rawSource) Close() error  { return r.h.Close() }
func (r *rawSource) typeIn(s string) error {
	_, err := r.h.Conn.Write([]byte(s))
	return err
}

// openRawLoadClient starts a login shell in the container through the SDK
// and waits for its prompt.
func openRawLoadClient(cli *client.Client, containerID string) (*loadClient, time.Duration, time.Duration, error) {
	src, attach, prompt, err := openRawShell(cli, containerID)
	if err != nil {
		return nil, 0, 0, err
	}
	return &loadClient{ws: containerID, tid: "raw", src: src}, attach, prompt, nil
}

// openRawShell starts a login shell in the container straight through the
// SDK, as the app starts a terminal's, and waits for its prompt; it
// returns how long the attach and the prompt took.
func openRawShell(cli *client.Client, containerID string) (*rawSource, time.Duration, time.Duration, error) {
	t0 := time.Now()
	h, _, err := rawExec(context.Background(), cli, containerID, []string{"/bin/sh", "-l"})
	if err != nil {
		return nil, 0, 0, err
	}
	t1 := time.Now()
	src := &rawSource{h: h, buf: make([]byte, 32<<10)}
	scan := newMarkerScan("$ ")
	err = withTimeout(30*time.Second, src, func() error {
		for {
			data, _, err := src.next()
			if err != nil {
				return err
			}
			if scan.feed(data) {
				return nil
			}
		}
	})
	if err != nil {
		h.Close()
		return nil, 0, 0, fmt.Errorf("raw shell: no prompt: %w", err)
	}
	return src, t1.Sub(t0), time.Since(t1), nil
}
