// Command eventwriter stands in for the Claude Code CLI in the task
// latency benchmark (bench/tasks_test.go): installed as `claude` in a
// workspace container, it prints stream-json lines as the CLI does, each
// assistant message carrying the time it was printed, so a viewer can
// tell how long the line took to reach it.
//
//	eventwriter            (arguments are the CLI's and are ignored)
//
// It waits EVENTWRITER_DELAY (default 2s) so viewers are connected, then
// writes an init event, N (EVENTWRITER_N, default 2000) assistant
// messages at RATE a second (EVENTWRITER_RATE, default 200), one line at
// a time, and a result. Text reads "t=<unix nanoseconds> i=<index>".
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"time"
)

func env(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func main() {
	n := env("EVENTWRITER_N", 2000)
	rate := env("EVENTWRITER_RATE", 200)
	delay := time.Duration(env("EVENTWRITER_DELAY_MS", 2000)) * time.Millisecond
	w := bufio.NewWriter(os.Stdout)
	line := func(s string) {
		w.WriteString(s)
		w.WriteByte('\n')
		w.Flush()
	}
	time.Sleep(delay)
	line(`{"type":"system","subtype":"init","session_id":"bench-session","model":"bench","cwd":"/workspace","tools":[],"permissionMode":"acceptEdits"}`)
	every := time.Second / time.Duration(rate)
	next := time.Now()
	for i := 0; i < n; i++ {
		next = next.Add(every)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		line(fmt.Sprintf(`{"type":"assistant","message":{"id":"msg_%d","role":"assistant","model":"bench","content":[{"type":"text","text":"t=%d i=%d"}]},"session_id":"bench-session"}`,
			i, time.Now().UnixNano(), i))
	}
	line(`{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"done","total_cost_usd":0,"duration_ms":1,"usage":{"input_tokens":0,"output_tokens":0},"session_id":"bench-session"}`)
}
