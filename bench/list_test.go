package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/services/workspace"
	"aicode/testutil"
	"aicode/testutil/pgtest"
)

const (
	listWorkspaces  = 1000
	listConns       = 50 // concurrent connections, one goroutine each
	listDuration    = 10 * time.Second
	listRowsPerPage = 50 // the list's default page size
)

// BenchmarkListFragment measures the workspace-list fragment (GET
// /workspaces as htmx asks for it) with 1,000 workspaces in the store, as
// the admin (who sees all of them), from 50 concurrent keep-alive
// connections, on the default SQLite store.
//
// Prints list_fragment_p50_ms, list_fragment_p99_ms (target <= 20 ms on 2
// cores) and list_fragment_rps. The app caches rendered fragments until a
// workspace changes, so under load this is mostly the cached path; the
// render path (a change before every request) is measured too, one request
// at a time: list_fragment_uncached_p50_ms / _p99_ms.
func BenchmarkListFragment(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	benchList(b, testutil.Options{}, "")
}

// BenchmarkListFragmentPostgres is the same measurement on PostgreSQL, in
// a schema of its own on the server AICODE_TEST_POSTGRES_URL names; its
// figures end in _postgres.
func BenchmarkListFragmentPostgres(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	benchList(b, testutil.Options{DatabaseURL: pgtest.URL(b)}, "_postgres")
}

func benchList(b *testing.B, o testutil.Options, suffix string) {
	o.Env = serverEnv
	s := testutil.StartServer(b, o)
	admin := testutil.Setup(b, s.URL, adminUser, adminPW)
	seedWorkspaces(b, s, admin, listWorkspaces)

	// Correctness first, with Go's client (which asks for gzip and
	// inflates, as browsers do): every answer is one page of the list.
	hc := &http.Client{Jar: admin.HTTP.Jar, Timeout: 30 * time.Second}
	for i := 0; i < 20; i++ {
		if _, err := fetchFragment(hc, s.URL+"/workspaces"); err != nil {
			b.Fatal(err)
		}
	}

	// The load comes from wrk, a separate process: 50 keep-alive
	// connections on 2 threads, each sending its next request as soon as
	// the last is answered. An in-process generator would spend as much
	// CPU as the server does (inflating and scanning every body) and
	// measure itself.
	cookie := sessionCookie(b, admin, s.URL)
	cpu0 := processCPU()
	res := runWrk(b, wrkOptions{
		URL:      s.URL + "/workspaces",
		Conns:    listConns,
		Threads:  2,
		Duration: listDuration,
		Headers: []string{
			"HX-Request: true",
			"Accept-Encoding: gzip",
			"Cookie: aicode_session=" + cookie,
		},
	})
	cpu := processCPU() - cpu0
	if res.Non2xx > 0 || res.Errors > 0 {
		b.Fatalf("wrk saw %d non-2xx answers and %d socket errors", res.Non2xx, res.Errors)
	}
	// And still correct after the load.
	if _, err := fetchFragment(hc, s.URL+"/workspaces"); err != nil {
		b.Fatal(err)
	}

	// The render path: a workspace change before each request empties the
	// cache, so every answer is a fresh query and render.
	var uncached []float64
	for i := 0; i < 100; i++ {
		s.App.Bus.Publish(workspace.TopicStatus, workspace.Change{})
		d, err := fetchFragment(hc, s.URL+"/workspaces")
		if err != nil {
			b.Fatal(err)
		}
		uncached = append(uncached, ms(d))
	}

	emit("list_fragment_p50_ms"+suffix, res.P50, "ms")
	emit("list_fragment_p99_ms"+suffix, res.P99, "ms")
	emit("list_fragment_rps"+suffix, res.RPS, "req/s")
	// Server CPU per request (this process; wrk runs outside it).
	emit("list_fragment_server_cpu_per_req_ms"+suffix, ms(cpu)/float64(res.Requests), "ms")
	emit("list_fragment_body_bytes"+suffix, float64(bodyBytes.Load()), "bytes")
	emit("list_fragment_uncached_p50_ms"+suffix, percentile(uncached, 50), "ms")
	emit("list_fragment_uncached_p99_ms"+suffix, percentile(uncached, 99), "ms")
}

// bodyBytes is the size of the last fragment received, as decoded by the
// client (the transport asks for gzip, as browsers do, and inflates it).
var bodyBytes atomic.Int64

// fetchFragment requests the list fragment and checks it: 200, one page of
// rows, and the full total. The latency covers sending the request until
// the whole body has been read; the checks run after the clock stops.
func fetchFragment(hc *http.Client, u string) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("HX-Request", "true")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d, want 200: %.300s", u, resp.StatusCode, body)
	}
	bodyBytes.Store(int64(len(body)))
	text := string(body)
	if n := strings.Count(text, `data-testid="workspace-row"`); n != listRowsPerPage {
		return 0, fmt.Errorf("GET %s: %d rows, want %d", u, n, listRowsPerPage)
	}
	if want := fmt.Sprintf(`data-total="%d"`, listWorkspaces); !strings.Contains(text, want) {
		return 0, fmt.Errorf("GET %s: fragment lacks %s", u, want)
	}
	if strings.Contains(text, "<html") {
		return 0, fmt.Errorf("GET %s: got a full page, not the fragment", u)
	}
	return d, nil
}

// seedWorkspaces inserts n workspaces straight into the server's store,
// spread over the admin, a member and a viewer: running, with made-up
// container ids on most (no containers exist; nothing in the list asks the
// engine).
func seedWorkspaces(b *testing.B, s *testutil.Server, admin *testutil.Client, n int) {
	b.Helper()
	ctx := context.Background()
	admin.CreateUser("bench-member", adminPW, string(store.RoleMember))
	admin.CreateUser("bench-viewer", adminPW, string(store.RoleViewer))
	var owners []string
	for _, name := range []string{adminUser, "bench-member", "bench-viewer"} {
		u, err := s.App.Store.GetUserByUsername(ctx, name)
		if err != nil {
			b.Fatalf("user %s: %v", name, err)
		}
		owners = append(owners, u.ID)
	}
	root := s.WorkspacesRoot()
	image := s.Opts.Image
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ws-%04d", i)
		w := &store.Workspace{
			Name:        name,
			OwnerID:     owners[i%len(owners)],
			ProjectPath: filepath.Join(root, name),
			CreatedDir:  true,
			Image:       image,
			Limits:      store.Limits{MemoryMB: 128 << (i % 3), CPUs: 0.5, PidsLimit: 64},
			Desired:     store.DesiredRunning,
			Status:      store.StatusRunning,
			ObservedAt:  &now,
		}
		if i%4 != 0 {
			w.ContainerID = fakeContainerID()
		}
		if err := s.App.Store.CreateWorkspace(ctx, w); err != nil {
			b.Fatalf("insert workspace %d: %v", i, err)
		}
	}
}

func fakeContainerID() string {
	var r [32]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}
