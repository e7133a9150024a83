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
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

const (
	adminUser = "admin"
	adminPW   = "correct-horse-battery"
)

// serverEnv runs benchmark servers as deployed: at the default log level.
var serverEnv = map[string]string{"AICODE_LOG_LEVEL": "info"}

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
