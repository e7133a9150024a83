package stats

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"testing"
	"time"

	"aicode/services/engine"
)

// load decodes every sample of a recorded stats body.
func load(t *testing.T, name string) []engine.Stats {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := engine.DecodeStats(f)
	var out []engine.Stats
	for {
		s, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
		out = append(out, s)
	}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// Recorded on this project's cgroup v1 engine (Docker 20.10, 2 CPUs) with
// ?stream=false from a busybox busy loop limited to 128 MiB and 64 pids,
// after it wrote a 16 MiB file (page cache: total_inactive_file) and
// 20 MiB to /dev/shm (tmpfs: counted in cache, but not reclaimable). The
// machine was heavily loaded, so the loop got little CPU. `docker stats`
// said "20.94MiB / 128MiB 16.36%" for it at the time.
func TestComputeCgroupV1Recorded(t *testing.T) {
	raw := load(t, "cgroup_v1_burner.json")
	if len(raw) != 2 {
		t.Fatalf("%d samples", len(raw))
	}
	a := Compute(nil, raw[0])
	equal(t, "online CPUs", a.OnlineCPUs, 2)
	// One-shot answers carry the engine's previous sample as precpu.
	near(t, "cpu %", a.CPUPercent, float64(1905284795-1767958010)/float64(33856480000000-33852050000000)*2*100) // 6.2
	equal(t, "mem used", a.MemUsed, uint64(38731776-16777216))                                                  // not minus cache (37752832): shm stays
	equal(t, "mem limit", a.MemLimit, uint64(128<<20))
	near(t, "mem %", a.MemPercent, float64(38731776-16777216)/134217728*100)
	if got := fmt.Sprintf("%.2fMiB %.2f%%", float64(a.MemUsed)/(1<<20), a.MemPercent); got != "20.94MiB 16.36%" {
		t.Errorf("as docker stats prints it: %s", got)
	}
	equal(t, "pids", a.Pids, uint64(2))
	equal(t, "pids limit", a.PidsLimit, uint64(64))
	if a.NetRx != 0 || a.NetTx != 0 || a.BlkRead != 0 || a.BlkWrite != 0 {
		t.Errorf("I/O without network or block I/O: %+v", a)
	}

	b := Compute(&raw[0], raw[1])
	near(t, "cpu %", b.CPUPercent, float64(2929271410-2451519810)/float64(33872000000000-33866360000000)*2*100) // 16.9
	equal(t, "mem used", b.MemUsed, uint64(38731776-16777216))
	if b.NetRxBps != 0 || b.NetTxBps != 0 || b.BlkReadBps != 0 || b.BlkWriteBps != 0 {
		t.Errorf("rates without I/O: %+v", b)
	}
	equal(t, "time", b.Time, raw[1].Read)
}

// Recorded with ?stream=true from a fresh busy loop: the first frame has no
// precpu, each later one carries the frame before.
func TestComputeCgroupV1RecordedStream(t *testing.T) {
	raw := load(t, "cgroup_v1_stream.json")
	if len(raw) != 4 {
		t.Fatalf("%d samples", len(raw))
	}
	if !raw[0].PreRead.IsZero() || raw[0].PreCPU.SystemUsage != 0 {
		t.Fatalf("first streamed frame has precpu: %+v", raw[0].PreCPU)
	}
	if s := Compute(nil, raw[0]); s.CPUPercent != 0 {
		t.Errorf("cpu from a first frame alone: %v", s.CPUPercent)
	}
	second := Compute(&raw[0], raw[1])
	near(t, "cpu %", second.CPUPercent, float64(3171176528-2296157760)/float64(33924330000000-33922370000000)*2*100) // 89.3
	near(t, "cpu % of frame 4", Compute(&raw[2], raw[3]).CPUPercent, float64(5080931220-4113492037)/float64(33928290000000-33926290000000)*2*100)
	equal(t, "mem used", second.MemUsed, uint64(466944))
	// The precpu block is the previous frame, so either way gives the same.
	noPre := raw[1]
	noPre.PreCPU = engine.CPUStats{}
	near(t, "cpu % from the previous frame", Compute(&raw[0], noPre).CPUPercent, second.CPUPercent)
	for i := 1; i < len(raw); i++ {
		if !raw[i].PreRead.Equal(raw[i-1].Read) {
			t.Errorf("frame %d preread %v, previous read %v", i, raw[i].PreRead, raw[i-1].Read)
		}
	}
}

// What the engine answers for a stopped container.
func TestComputeRecordedStoppedSample(t *testing.T) {
	raw := load(t, "cgroup_v1_stopped.json")
	if len(raw) != 1 || !raw[0].Read.IsZero() {
		t.Fatalf("stopped sample %+v", raw)
	}
	if s := Compute(nil, raw[0]); s != (Sample{}) {
		t.Errorf("sample of a stopped container: %+v", s)
	}
}

// A cgroup v2 stream as the Engine API documents it: no per-CPU list,
// online_cpus set, memory.stat with inactive_file, two interfaces and
// lower-case blkio ops. Expected values are worked out by hand below.
func TestComputeCgroupV2(t *testing.T) {
	raw := load(t, "cgroup_v2_stream.json")
	if len(raw) != 2 {
		t.Fatalf("%d samples", len(raw))
	}

	first := Compute(nil, raw[0])
	equal(t, "time", first.Time, time.Date(2026, 11, 27, 15, 10, 1, 5e8, time.UTC))
	equal(t, "online CPUs", first.OnlineCPUs, 8)
	// From the sample's own precpu block: (2.5e9-1.0e9)/(100e9-92e9) * 8 CPUs.
	near(t, "cpu %", first.CPUPercent, 1.5e9/8e9*8*100) // 150: one and a half CPUs
	// 200 MiB used, 50 MiB of it inactive file cache.
	equal(t, "mem used", first.MemUsed, uint64(150<<20))
	equal(t, "mem limit", first.MemLimit, uint64(512<<20))
	near(t, "mem %", first.MemPercent, 150.0/512*100)
	equal(t, "net rx", first.NetRx, uint64(10000+2000))
	equal(t, "net tx", first.NetTx, uint64(5000+1000))
	equal(t, "blk read", first.BlkRead, uint64(1048576+524288))
	equal(t, "blk write", first.BlkWrite, uint64(4096))
	equal(t, "pids", first.Pids, uint64(3))
	equal(t, "pids limit", first.PidsLimit, uint64(512))
	// No previous sample: no rates.
	if first.NetRxBps != 0 || first.NetTxBps != 0 || first.BlkReadBps != 0 || first.BlkWriteBps != 0 {
		t.Errorf("rates on the first sample: %+v", first)
	}

	second := Compute(&raw[0], raw[1])
	// precpu is the engine's sample a second before, not our previous one.
	near(t, "cpu %", second.CPUPercent, (2.9e9-2.7e9)/(116e9-108e9)*8*100) // 20
	equal(t, "mem used", second.MemUsed, uint64((220-40)<<20))
	near(t, "mem %", second.MemPercent, 180.0/512*100)
	// Two seconds between the samples.
	near(t, "net rx/s", second.NetRxBps, float64((30000+2000)-(10000+2000))/2)
	near(t, "net tx/s", second.NetTxBps, float64((9000+1000)-(5000+1000))/2)
	near(t, "blk read/s", second.BlkReadBps, float64((3145728+524288)-(1048576+524288))/2)
	near(t, "blk write/s", second.BlkWriteBps, float64(12288-4096)/2)
	equal(t, "pids", second.Pids, uint64(4))
}

func TestComputeEdgeCases(t *testing.T) {
	base := engine.Stats{
		Read: t0,
		CPU:  engine.CPUStats{TotalUsage: 10e9, SystemUsage: 1000e9, PercpuCount: 2},
		Memory: engine.MemoryStats{Usage: 100 << 20, Limit: 1 << 30, Stats: map[string]uint64{
			"cache": 30 << 20, "inactive_file": 20 << 20, "total_inactive_file": 25 << 20,
		}},
		Networks: map[string]engine.NetIO{"eth0": {RxBytes: 1000, TxBytes: 500}},
		BlkRead:  4096, BlkWrite: 8192,
	}
	first := Compute(nil, base)
	if first.CPUPercent != 0 {
		t.Errorf("cpu on a first sample without precpu: %v", first.CPUPercent)
	}
	equal(t, "online CPUs from the per-CPU list", first.OnlineCPUs, 2)
	equal(t, "v1 uses total_inactive_file", first.MemUsed, uint64(75<<20))

	t.Run("previous sample stands in for precpu", func(t *testing.T) {
		cur := base
		cur.Read = t0.Add(500 * time.Millisecond)
		cur.CPU.TotalUsage += 0.75e9 // 0.75 s of CPU
		cur.CPU.SystemUsage += 1e9   // 0.5 s on 2 CPUs
		s := Compute(&base, cur)
		near(t, "cpu %", s.CPUPercent, 0.75e9/1e9*2*100) // 150
	})
	t.Run("online_cpus wins over the per-CPU list", func(t *testing.T) {
		cur := base
		cur.CPU.OnlineCPUs = 4
		cur.PreCPU = engine.CPUStats{TotalUsage: 9e9, SystemUsage: 996e9}
		s := Compute(nil, cur)
		equal(t, "online", s.OnlineCPUs, 4)
		near(t, "cpu %", s.CPUPercent, 1e9/4e9*4*100) // 100
	})
	t.Run("counter reset gives no cpu", func(t *testing.T) {
		cur := base
		cur.Read = t0.Add(time.Second)
		cur.CPU.TotalUsage = 1e6 // restarted
		cur.CPU.SystemUsage += 2e9
		if s := Compute(&base, cur); s.CPUPercent != 0 {
			t.Errorf("cpu after a reset: %v", s.CPUPercent)
		}
	})
	t.Run("no system time passed", func(t *testing.T) {
		cur := base
		cur.PreCPU = base.CPU
		cur.CPU.TotalUsage += 1e9
		if s := Compute(nil, cur); s.CPUPercent != 0 || math.IsInf(s.CPUPercent, 0) || math.IsNaN(s.CPUPercent) {
			t.Errorf("cpu with no system delta: %v", s.CPUPercent)
		}
	})
	t.Run("v2 uses inactive_file", func(t *testing.T) {
		cur := base
		cur.Memory.Stats = map[string]uint64{"inactive_file": 20 << 20, "file": 30 << 20}
		equal(t, "used", Compute(nil, cur).MemUsed, uint64(80<<20))
	})
	t.Run("old v1 falls back to cache", func(t *testing.T) {
		cur := base
		cur.Memory.Stats = map[string]uint64{"cache": 30 << 20, "rss": 70 << 20}
		equal(t, "used", Compute(nil, cur).MemUsed, uint64(70<<20))
	})
	t.Run("memory never below zero", func(t *testing.T) {
		cur := base
		cur.Memory.Stats = map[string]uint64{"inactive_file": 200 << 20}
		s := Compute(nil, cur)
		equal(t, "used", s.MemUsed, uint64(0))
		near(t, "mem %", s.MemPercent, 0)
	})
	t.Run("no limit, no percent", func(t *testing.T) {
		cur := base
		cur.Memory.Limit = 0
		if s := Compute(nil, cur); s.MemPercent != 0 {
			t.Errorf("mem %% without a limit: %v", s.MemPercent)
		}
	})
	t.Run("rates over the read interval", func(t *testing.T) {
		cur := base
		cur.Read = t0.Add(4 * time.Second)
		cur.Networks = map[string]engine.NetIO{"eth0": {RxBytes: 5000, TxBytes: 900}, "eth1": {RxBytes: 4000, TxBytes: 100}}
		cur.BlkRead, cur.BlkWrite = 4096+40960, 8192+4096
		s := Compute(&base, cur)
		near(t, "rx/s", s.NetRxBps, (9000-1000)/4.0)
		near(t, "tx/s", s.NetTxBps, (1000-500)/4.0)
		near(t, "read/s", s.BlkReadBps, 40960/4.0)
		near(t, "write/s", s.BlkWriteBps, 4096/4.0)
		equal(t, "rx total", s.NetRx, uint64(9000))
	})
	t.Run("no network at all", func(t *testing.T) {
		prev, cur := base, base
		prev.Networks, cur.Networks = nil, nil
		cur.Read = t0.Add(time.Second)
		s := Compute(&prev, cur)
		if s.NetRx != 0 || s.NetTx != 0 || s.NetRxBps != 0 || s.NetTxBps != 0 {
			t.Errorf("network figures without a network: %+v", s)
		}
	})
	t.Run("counters going backwards give no rate", func(t *testing.T) {
		cur := base
		cur.Read = t0.Add(time.Second)
		cur.Networks = map[string]engine.NetIO{"eth0": {RxBytes: 10, TxBytes: 10}}
		cur.BlkRead, cur.BlkWrite = 0, 0
		s := Compute(&base, cur)
		if s.NetRxBps != 0 || s.NetTxBps != 0 || s.BlkReadBps != 0 || s.BlkWriteBps != 0 {
			t.Errorf("rates after a reset: %+v", s)
		}
	})
	t.Run("zero or negative interval gives no rate", func(t *testing.T) {
		for _, d := range []time.Duration{0, -time.Second} {
			cur := base
			cur.Read = t0.Add(d)
			cur.Networks = map[string]engine.NetIO{"eth0": {RxBytes: 9000, TxBytes: 9000}}
			cur.BlkRead = 1 << 30
			s := Compute(&base, cur)
			if s.NetRxBps != 0 || s.NetTxBps != 0 || s.BlkReadBps != 0 || math.IsInf(s.NetRxBps, 0) {
				t.Errorf("interval %v: rates %+v", d, s)
			}
		}
	})
}
