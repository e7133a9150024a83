package engine_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"aicode/services/engine"
	"aicode/testutil"
)

// cgroup v1 names blkio ops "Read", "Write", "Sync", "Async", "Total" (and
// "Discard"); only reads and writes count, or bytes would count twice.
const v1Sample = `{"read":"2026-11-27T15:10:01.123456789Z","preread":"2026-11-27T15:10:00.120000000Z",
"pids_stats":{"current":2,"limit":64},
"blkio_stats":{"io_service_bytes_recursive":[
 {"major":8,"minor":0,"op":"Read","value":1000},{"major":8,"minor":0,"op":"Write","value":200},
 {"major":8,"minor":0,"op":"Sync","value":1200},{"major":8,"minor":0,"op":"Async","value":0},
 {"major":8,"minor":0,"op":"Discard","value":0},{"major":8,"minor":0,"op":"Total","value":1200},
 {"major":253,"minor":0,"op":"Read","value":30},{"major":253,"minor":0,"op":"Write","value":4}]},
"cpu_stats":{"cpu_usage":{"total_usage":500,"percpu_usage":[100,150,250,0],"usage_in_kernelmode":10,"usage_in_usermode":490},"system_cpu_usage":9000,"online_cpus":4},
"precpu_stats":{"cpu_usage":{"total_usage":400,"percpu_usage":[80,120,200,0]},"system_cpu_usage":8000,"online_cpus":4},
"memory_stats":{"usage":1048576,"max_usage":2097152,"stats":{"cache":4096,"total_inactive_file":8192},"limit":268435456},
"name":"/x","id":"abc"}
{"read":"2026-11-27T15:10:02.123456789Z","preread":"2026-11-27T15:10:01.123456789Z",
"blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"read","value":7},{"major":8,"minor":0,"op":"write","value":9}]},
"cpu_stats":{"cpu_usage":{"total_usage":600},"system_cpu_usage":10000,"online_cpus":2},
"precpu_stats":{"cpu_usage":{"total_usage":500},"system_cpu_usage":9000,"online_cpus":2},
"memory_stats":{"usage":10,"stats":{"inactive_file":3},"limit":20},
"networks":{"eth0":{"rx_bytes":11,"tx_bytes":12},"eth1":{"rx_bytes":13,"tx_bytes":14}},
"name":"/x","id":"abc"}
{"read":"0001-01-01T00:00:00Z","preread":"0001-01-01T00:00:00Z","pids_stats":{},"blkio_stats":{"io_service_bytes_recursive":null},"cpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},"precpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},"memory_stats":{},"name":"/x","id":"abc"}
`

func TestDecodeStats(t *testing.T) {
	dec := engine.DecodeStats(strings.NewReader(v1Sample))
	v1, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 27, 15, 10, 1, 123456789, time.UTC); !v1.Read.Equal(want) {
		t.Errorf("read %v", v1.Read)
	}
	if v1.ID != "abc" || v1.PreRead.IsZero() {
		t.Errorf("id %q preread %v", v1.ID, v1.PreRead)
	}
	if v1.CPU != (engine.CPUStats{TotalUsage: 500, PercpuCount: 4, SystemUsage: 9000, OnlineCPUs: 4}) {
		t.Errorf("cpu %+v", v1.CPU)
	}
	if v1.PreCPU != (engine.CPUStats{TotalUsage: 400, PercpuCount: 4, SystemUsage: 8000, OnlineCPUs: 4}) {
		t.Errorf("precpu %+v", v1.PreCPU)
	}
	if v1.Memory.Usage != 1<<20 || v1.Memory.Limit != 256<<20 || v1.Memory.Stats["total_inactive_file"] != 8192 || v1.Memory.Stats["cache"] != 4096 {
		t.Errorf("memory %+v", v1.Memory)
	}
	if v1.BlkRead != 1030 || v1.BlkWrite != 204 {
		t.Errorf("blkio read %d write %d, want 1030 and 204", v1.BlkRead, v1.BlkWrite)
	}
	if v1.Pids != 2 || v1.PidsLimit != 64 {
		t.Errorf("pids %d/%d", v1.Pids, v1.PidsLimit)
	}
	if v1.Networks != nil {
		t.Errorf("networks without a network: %v", v1.Networks)
	}

	v2, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if v2.BlkRead != 7 || v2.BlkWrite != 9 {
		t.Errorf("v2 blkio read %d write %d", v2.BlkRead, v2.BlkWrite)
	}
	if v2.CPU.PercpuCount != 0 || v2.CPU.OnlineCPUs != 2 {
		t.Errorf("v2 cpu %+v", v2.CPU)
	}
	if len(v2.Networks) != 2 || v2.Networks["eth0"] != (engine.NetIO{RxBytes: 11, TxBytes: 12}) || v2.Networks["eth1"] != (engine.NetIO{RxBytes: 13, TxBytes: 14}) {
		t.Errorf("networks %+v", v2.Networks)
	}
	if v2.Pids != 0 || v2.PidsLimit != 0 {
		t.Errorf("absent pids %d/%d", v2.Pids, v2.PidsLimit)
	}

	// The engine's placeholder for a container that is not running.
	empty, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !empty.Read.IsZero() || !empty.PreRead.IsZero() || empty.CPU != (engine.CPUStats{}) {
		t.Errorf("empty sample %+v", empty)
	}

	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last sample: %v", err)
	}
	if _, err := engine.DecodeStats(strings.NewReader(`{"read":"2026-`)).Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("truncated sample: %v", err)
	}
}

// startContainer runs cmd in a busybox container without a network and
// removes it when the test ends.
func startContainer(t *testing.T, eng *engine.Engine, cmd ...string) string {
	t.Helper()
	return testutil.RunContainer(t, eng, engine.ContainerSpec{Cmd: cmd, Labels: map[string]string{"io.aicode.test": "engine-stats"}})
}

func TestStatsStreamEndsWhenContainerStops(t *testing.T) {
	eng := testutil.Engine(t)
	id := startContainer(t, eng, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := eng.StatsStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var last engine.Stats
	for i := range 2 {
		s, err := st.Next()
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if s.Read.IsZero() || s.Read.Sub(last.Read) <= 0 {
			t.Fatalf("sample %d read at %v after %v", i, s.Read, last.Read)
		}
		if i == 1 && s.PreCPU.SystemUsage == 0 {
			t.Errorf("second streamed sample without precpu: %+v", s.PreCPU)
		}
		last = s
	}
	if last.CPU.SystemUsage == 0 || (last.CPU.OnlineCPUs == 0 && last.CPU.PercpuCount == 0) {
		t.Errorf("cpu %+v", last.CPU)
	}
	if last.Memory.Usage == 0 || last.Memory.Limit != 128<<20 || len(last.Memory.Stats) == 0 {
		t.Errorf("memory usage %d limit %d stats %d keys", last.Memory.Usage, last.Memory.Limit, len(last.Memory.Stats))
	}
	if last.Pids < 1 || last.PidsLimit != 64 {
		t.Errorf("pids %d/%d", last.Pids, last.PidsLimit)
	}
	if len(last.Networks) != 0 {
		t.Errorf("networks under network mode none: %v", last.Networks)
	}

	if err := eng.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for {
		s, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after stop: %v, want io.EOF", err)
		}
		if s.Read.IsZero() {
			t.Fatal("an empty sample instead of the end")
		}
	}
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("the stream ended %v after the container stopped", d)
	}
	if _, err := st.Next(); err == nil {
		t.Fatal("a sample after the end")
	}
	if err := st.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	st.Close()
}

func TestStatsStreamCloseUnblocksNext(t *testing.T) {
	eng := testutil.Engine(t)
	id := startContainer(t, eng, "sleep", "3600")
	st, err := eng.StatsStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Next(); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	st.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("next after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("close did not unblock next")
	}

	// Ending the context does too.
	ctx, cancel := context.WithCancel(context.Background())
	st, err = eng.StatsStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	for {
		if _, err := st.Next(); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("next after cancel: %v", err)
			}
			break
		}
	}
}

func TestStatsOnce(t *testing.T) {
	eng := testutil.Engine(t)
	id := startContainer(t, eng, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s, err := eng.StatsOnce(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Read.IsZero() || s.Memory.Usage == 0 || s.CPU.SystemUsage == 0 {
		t.Errorf("one-shot sample %+v", s)
	}
	if time.Since(s.Read) > time.Minute || time.Until(s.Read) > time.Minute {
		t.Errorf("sample read at %v", s.Read)
	}

	if err := eng.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.StatsOnce(ctx, id); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("stopped container: %v, want ErrNotRunning", err)
	}
	// A stream of a stopped container ends at once.
	st, err := eng.StatsStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("stream of a stopped container: %v, want io.EOF", err)
	}
	if _, err := eng.StatsOnce(ctx, "aicode-no-such-container"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing container: %v, want ErrNotFound", err)
	}
	if _, err := eng.StatsStream(ctx, "aicode-no-such-container"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("stream of a missing container: %v, want ErrNotFound", err)
	}
}
