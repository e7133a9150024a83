// Package stats turns the engine's raw container counters into the figures
// people read on a chart (CPU %, memory in use, I/O rates) and shares one
// engine stream per container among every viewer through a Hub.
package stats

import (
	"time"

	"aicode/services/engine"
)

// Sample is one point of a container's resource chart.
type Sample struct {
	Time time.Time
	// CPUPercent is read as `docker stats` does: 100 is one CPU fully
	// busy, so a container may show up to OnlineCPUs*100.
	CPUPercent float64
	OnlineCPUs int
	// MemUsed excludes page cache the kernel can reclaim at once, as
	// `docker stats` does; MemPercent is of MemLimit.
	MemUsed, MemLimit uint64
	MemPercent        float64
	// Rates are bytes per second since the previous sample.
	NetRxBps, NetTxBps, BlkReadBps, BlkWriteBps float64
	// Cumulative bytes since the container started.
	NetRx, NetTx, BlkRead, BlkWrite uint64
	Pids, PidsLimit                 uint64
}

// Compute derives a Sample from cur, with prev the previous sample of the
// same container (nil for the first: rates are then 0).
func Compute(prev *engine.Stats, cur engine.Stats) Sample {
	s := Sample{
		Time:       cur.Read,
		OnlineCPUs: onlineCPUs(cur.CPU),
		MemLimit:   cur.Memory.Limit,
		MemUsed:    memUsed(cur.Memory),
		BlkRead:    cur.BlkRead,
		BlkWrite:   cur.BlkWrite,
		Pids:       cur.Pids,
		PidsLimit:  cur.PidsLimit,
	}
	s.NetRx, s.NetTx = netTotals(cur.Networks)
	if s.MemLimit > 0 {
		s.MemPercent = float64(s.MemUsed) / float64(s.MemLimit) * 100
	}

	// The engine pairs each streamed sample with the one before it, over
	// the engine's own interval; only a stream's first sample and one-shot
	// samples lack it, and then our previous sample stands in.
	switch {
	case cur.PreCPU.SystemUsage > 0:
		s.CPUPercent = cpuPercent(cur.PreCPU, cur.CPU, s.OnlineCPUs)
	case prev != nil:
		s.CPUPercent = cpuPercent(prev.CPU, cur.CPU, s.OnlineCPUs)
	}

	if prev == nil {
		return s
	}
	secs := cur.Read.Sub(prev.Read).Seconds()
	if secs <= 0 {
		// Clock step or a repeated sample: no honest rate.
		return s
	}
	prevRx, prevTx := netTotals(prev.Networks)
	s.NetRxBps = rate(prevRx, s.NetRx, secs)
	s.NetTxBps = rate(prevTx, s.NetTx, secs)
	s.BlkReadBps = rate(prev.BlkRead, s.BlkRead, secs)
	s.BlkWriteBps = rate(prev.BlkWrite, s.BlkWrite, secs)
	return s
}

// onlineCPUs is what the engine says, or on old cgroup v1 engines that do
// not say, the number of per-CPU counters.
func onlineCPUs(c engine.CPUStats) int {
	if c.OnlineCPUs > 0 {
		return c.OnlineCPUs
	}
	return c.PercpuCount
}

// cpuPercent is the docker CLI's formula: the container's share of all
// host CPU time over the interval, scaled so one busy CPU is 100.
func cpuPercent(prev, cur engine.CPUStats, online int) float64 {
	// Counters restart with the container; a negative delta is no usage.
	if cur.TotalUsage <= prev.TotalUsage || cur.SystemUsage <= prev.SystemUsage {
		return 0
	}
	cpuDelta := float64(cur.TotalUsage - prev.TotalUsage)
	sysDelta := float64(cur.SystemUsage - prev.SystemUsage)
	return cpuDelta / sysDelta * float64(online) * 100
}

// memUsed subtracts the inactive file cache, which the kernel drops
// before it would ever kill the container, so a container that merely
// read many files does not look close to its limit.
func memUsed(m engine.MemoryStats) uint64 {
	reclaimable, ok := m.Stats["total_inactive_file"] // cgroup v1
	if !ok {
		reclaimable, ok = m.Stats["inactive_file"] // cgroup v2
	}
	if !ok {
		// Very old v1 kernels report only the whole page cache.
		reclaimable = m.Stats["cache"]
	}
	if reclaimable >= m.Usage {
		return 0
	}
	return m.Usage - reclaimable
}

func netTotals(nets map[string]engine.NetIO) (rx, tx uint64) {
	for _, n := range nets {
		rx += n.RxBytes
		tx += n.TxBytes
	}
	return rx, tx
}

// rate is bytes per second; a counter that went backwards was reset (the
// container restarted, an interface went away) and gives no rate.
func rate(prev, cur uint64, secs float64) float64 {
	if cur < prev {
		return 0
	}
	return float64(cur-prev) / secs
}
