// Package bench holds the figures `make bench` prints. Each benchmark boots
// the real application (testutil.StartServer) against the real Docker
// engine, measures once regardless of b.N, and prints its results as lines
//
//	BENCH <name> <value> <unit>
//
// on stdout. A missed target still prints its figure; only functional
// failures (wrong status, wrong content, a container not running) fail.
package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for schema set-up
)

const (
	adminUser = "admin"
	adminPW   = "correct-horse-battery"

	// postgresEnv names the server the PostgreSQL variants run against;
	// they are skipped when it is unset (SQLite is what `make bench`
	// measures by default).
	postgresEnv = "AICODE_TEST_POSTGRES_URL"
)

// emit prints one figure in the format `make bench` greps for.
func emit(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.3f %s\n", name, value, unit)
}

// ms converts a duration to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (0..100) of xs by the
// nearest-rank method; xs need not be sorted and is not modified.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s))+0.999999999) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

// median is the middle value (the mean of the two middle ones for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

var (
	onceMu sync.Mutex
	ran    = map[string]bool{}
)

// firstRun reports whether the named measurement has not run yet in this
// process, so a benchmark measures once even if the framework calls it
// again with a larger b.N (with -benchtime 1x it calls it once).
func firstRun(name string) bool {
	onceMu.Lock()
	defer onceMu.Unlock()
	if ran[name] {
		return false
	}
	ran[name] = true
	return true
}

// rawDocker is an SDK client talking to the engine directly, with API
// version negotiation, as the app's engine adapter does.
func rawDocker(b *testing.B) *client.Client {
	b.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatalf("docker client: %v", err)
	}
	b.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Settle the negotiated version now, so the first timed call does not
	// pay for the ping.
	if _, err := cli.Ping(ctx); err != nil {
		b.Fatalf("docker ping: %v", err)
	}
	cli.NegotiateAPIVersion(ctx)
	return cli
}

// postgresSchemaURL creates an empty schema on the server named by
// AICODE_TEST_POSTGRES_URL and returns a URL selecting it through the
// search_path runtime parameter (as the store tests do); the schema is
// dropped when the benchmark ends. It skips when the variable is unset.
func postgresSchemaURL(b *testing.B) string {
	b.Helper()
	base := os.Getenv(postgresEnv)
	if base == "" {
		b.Skipf("%s is not set; skipping the PostgreSQL variant", postgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		b.Fatalf("%s must be a postgres:// URL, got %q", postgresEnv, base)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		b.Fatalf("open admin connection: %v", err)
	}
	admin.SetMaxOpenConns(1)
	b.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "bench_" + hex.EncodeToString(r[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		b.Fatalf("create schema %s: %v", schema, err)
	}
	// Cleanups run last-registered first: the caller starts its server
	// after this returns, so the server stops before the schema goes.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
