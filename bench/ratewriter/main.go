// Command ratewriter is the output producer of the terminal load
// benchmark (bench/terminal_test.go): it runs inside a workspace terminal
// and writes RATE bytes a second for SECONDS seconds, as a chunk every
// 100 ms, without forking anything, then a final marker with what it wrote.
//
//	ratewriter RATE SECONDS
//
// The output is lines of exactly LineLen bytes (newline included):
//
//	RWL<seq, 8 digits> <filler>\n
//
// where seq counts from 0 and filler is Filler, so a reader can check
// every line and tell exactly which ones it got. The last line is
//
//	RWDONE lines=<n> bytes=<n*LineLen>\n
//
// The benchmark builds it with CGO_ENABLED=0, so it runs in any image.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// LineLen and Filler must match the benchmark's parser.
const (
	LineLen = 100
	Filler  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234567-"
)

const ticksPerSecond = 10

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ratewriter RATE SECONDS")
		os.Exit(2)
	}
	rate, err1 := strconv.Atoi(os.Args[1])
	secs, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || rate < LineLen || secs < 1 {
		fmt.Fprintln(os.Stderr, "ratewriter: RATE (>= 100) and SECONDS (>= 1) are whole numbers")
		os.Exit(2)
	}
	if len(Filler) != LineLen-3-8-1-1 {
		panic("filler length")
	}
	// One thread is plenty and keeps 200 copies light.
	runtime.GOMAXPROCS(1)

	ticks := secs * ticksPerSecond
	perTick := rate / ticksPerSecond
	buf := make([]byte, 0, perTick+LineLen)
	start := time.Now()
	seq, budget := 0, 0
	for i := 0; i < ticks; i++ {
		// Scheduled from the start, not from the last write: a late tick
		// (a busy machine) is caught up at once, so the total and the
		// average rate hold.
		if d := time.Until(start.Add(time.Duration(i) * time.Second / ticksPerSecond)); d > 0 {
			time.Sleep(d)
		}
		budget += perTick
		buf = buf[:0]
		for budget >= LineLen {
			buf = append(buf, "RWL"...)
			buf = appendSeq(buf, seq)
			buf = append(buf, ' ')
			buf = append(buf, Filler...)
			buf = append(buf, '\n')
			seq++
			budget -= LineLen
		}
		if err := writeAll(buf); err != nil {
			os.Exit(1)
		}
	}
	if err := writeAll(fmt.Appendf(nil, "RWDONE lines=%d bytes=%d\n", seq, seq*LineLen)); err != nil {
		os.Exit(1)
	}
}

// appendSeq appends n as exactly 8 decimal digits.
func appendSeq(b []byte, n int) []byte {
	var d [8]byte
	for i := 7; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:]...)
}

func writeAll(b []byte) error {
	for len(b) > 0 {
		n, err := os.Stdout.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
