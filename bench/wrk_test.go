package bench

import (
	"bufio"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"aicode/testutil"
)

// wrkOptions configure one run of wrk (Debian package wrk; scripts/test-env.sh
// installs it for `make bench`).
type wrkOptions struct {
	URL      string
	Conns    int
	Threads  int
	Duration time.Duration
	Headers  []string
}

// wrkResult is what wrk printed, latencies in milliseconds.
type wrkResult struct {
	P50, P90, P99 float64
	RPS           float64
	Requests      int
	Non2xx        int
	Errors        int
}

func runWrk(b *testing.B, o wrkOptions) wrkResult {
	b.Helper()
	path, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("the list benchmark needs wrk (Debian: apt-get install wrk; scripts/test-env.sh installs it)")
	}
	args := []string{"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Conns), "-d", o.Duration.String(), "--latency", "--timeout", "10s"}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	args = append(args, o.URL)
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	return parseWrk(b, string(out))
}

var (
	wrkPct      = regexp.MustCompile(`^\s*(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkRequests = regexp.MustCompile(`^\s*(\d+) requests in`)
	wrkRPS      = regexp.MustCompile(`^Requests/sec:\s+([\d.]+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(b *testing.B, out string) wrkResult {
	b.Helper()
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkPct.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			switch m[3] {
			case "us":
				v /= 1000
			case "s":
				v *= 1000
			}
			switch m[1] {
			case "50":
				r.P50 = v
			case "90":
				r.P90 = v
			case "99":
				r.P99 = v
			}
		}
		if m := wrkRequests.FindStringSubmatch(line); m != nil {
			r.Requests, _ = strconv.Atoi(m[1])
		}
		if m := wrkRPS.FindStringSubmatch(line); m != nil {
			r.RPS, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			r.Non2xx, _ = strconv.Atoi(m[1])
		}
		if m := wrkSockErr.FindStringSubmatch(line); m != nil {
			for _, g := range m[1:] {
				n, _ := strconv.Atoi(g)
				r.Errors += n
			}
		}
	}
	if r.Requests == 0 || r.P99 == 0 {
		b.Fatalf("could not read wrk's output:\n%s", out)
	}
	return r
}

// sessionCookie returns the admin client's session token for wrk.
func sessionCookie(b *testing.B, c *testutil.Client, base string) string {
	b.Helper()
	u, _ := url.Parse(base)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == "aicode_session" {
			return ck.Value
		}
	}
	b.Fatal("admin has no session cookie")
	return ""
}
