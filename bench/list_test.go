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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/testutil"
)

const (
	listWorkspaces  = 1000
	listConns       = 50 // concurrent connections, one goroutine each
	listWarmup      = 4  // requests per connection before measuring
	listPerConn     = 40 // measured requests per connection
	listRowsPerPage = 50 // the list's default page size
)

// BenchmarkListFragment measures the workspace-list fragment (GET
// /workspaces as htmx asks for it) with 1,000 workspaces in the store, as
// the admin (who sees all of them), from 50 concurrent keep-alive
// connections, on the default SQLite store.
//
// Prints list_fragment_p50_ms, list_fragment_p99_ms (target <= 20 ms on 2
// cores) and list_fragment_rps.
func BenchmarkListFragment(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	benchList(b, testutil.Options{}, "")
}

// BenchmarkListFragmentPostgres is the same measurement on PostgreSQL, in
// a schema of its own on the server AICODE_TEST_POSTGRES_URL names; it is
// skipped when the variable is unset. Prints list_fragment_p99_ms_postgres
// (and _p50_ms_postgres, _rps_postgres).
func BenchmarkListFragmentPostgres(b *testing.B) {
	if !firstRun(b.Name()) {
		return
	}
	dbURL := postgresSchemaURL(b)
	benchList(b, testutil.Options{DatabaseURL: dbURL}, "_postgres")
}

func benchList(b *testing.B, o testutil.Options, suffix string) {
	s := testutil.StartServer(b, o)
	admin := testutil.Setup(b, s.URL, adminUser, adminPW)
	seedWorkspaces(b, s, admin, listWorkspaces)

	// One client, enough idle connections per host for every goroutine to
	// keep its own; the admin's cookie jar carries the session.
	tr := &http.Transport{
		MaxIdleConns:        listConns * 2,
		MaxIdleConnsPerHost: listConns * 2,
		IdleConnTimeout:     time.Minute,
	}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Jar: admin.HTTP.Jar, Timeout: 30 * time.Second}

	var (
		mu    sync.Mutex
		lat   []float64
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}

	// Warm-up: open every connection and let the server, the store's pool
	// and the runtime reach a steady state.
	run := func(perConn int, record bool) (time.Duration, time.Duration) {
		var wg sync.WaitGroup
		cpu0 := processCPU()
		start := time.Now()
		for g := 0; g < listConns; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := make([]float64, 0, perConn)
				for i := 0; i < perConn; i++ {
					d, err := fetchFragment(hc, s.URL+"/workspaces")
					if err != nil {
						fail(err)
						return
					}
					mine = append(mine, ms(d))
				}
				if record {
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start), processCPU() - cpu0
	}
	run(listWarmup, false)
	if first != nil {
		b.Fatal(first)
	}
	elapsed, cpu := run(listPerConn, true)
	if first != nil {
		b.Fatal(first)
	}
	if len(lat) != listConns*listPerConn {
		b.Fatalf("recorded %d latencies, want %d", len(lat), listConns*listPerConn)
	}

	emit("list_fragment_p50_ms"+suffix, percentile(lat, 50), "ms")
	emit("list_fragment_p99_ms"+suffix, percentile(lat, 99), "ms")
	emit("list_fragment_rps"+suffix, float64(len(lat))/elapsed.Seconds(), "req/s")
	// CPU per request and cores used tell a slow server from a busy
	// machine: the load generator and the server share this process, so
	// both are counted; cores_used well below the machine's count while
	// requests queue means something else had the CPU.
	emit("list_fragment_cpu_per_req_ms"+suffix, ms(cpu)/float64(len(lat)), "ms")
	emit("list_fragment_cores_used"+suffix, float64(cpu)/float64(elapsed), "cores")
	emit("list_fragment_body_bytes"+suffix, float64(bodyBytes.Load()), "bytes")
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
