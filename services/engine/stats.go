package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
)

// ErrNotRunning is the Kind of a one-shot stats request on a container
// that is not running: the engine then answers with an empty sample.
var ErrNotRunning = errors.New("container not running")

// Stats is one resource sample of a container, as the engine reports it:
// raw cumulative counters, no rates. Read is zero when the engine had
// nothing to report because the container is not running.
type Stats struct {
	ID string
	// Read is when the engine took the sample; PreRead when it took the
	// one PreCPU comes from (zero when there was none).
	Read, PreRead time.Time

	CPU    CPUStats
	PreCPU CPUStats // the engine's previous sample; zero on a stream's first

	Memory MemoryStats
	// Networks maps an interface name to its counters. It is empty for a
	// container without a network (network mode none).
	Networks map[string]NetIO
	// BlkRead and BlkWrite are bytes read and written, summed over all
	// devices.
	BlkRead, BlkWrite uint64

	Pids, PidsLimit uint64 // PidsLimit 0: none
}

// CPUStats is cumulative CPU time.
type CPUStats struct {
	TotalUsage  uint64 // nanoseconds used by the container
	PercpuCount int    // length of the per-CPU list; cgroup v2 has none
	SystemUsage uint64 // nanoseconds of host CPU time, all CPUs together
	OnlineCPUs  int    // 0 when the engine did not say
}

// MemoryStats is the memory cgroup's view.
type MemoryStats struct {
	Usage uint64
	Limit uint64
	// Stats is memory.stat: total_inactive_file, cache... on cgroup v1;
	// inactive_file, anon, file... on v2.
	Stats map[string]uint64
}

// NetIO is one interface's cumulative traffic.
type NetIO struct {
	RxBytes, TxBytes uint64
}

// StatsDecoder reads the engine's stats JSON, one object after another as
// the stats endpoint sends them.
type StatsDecoder struct {
	dec *json.Decoder
}

// DecodeStats reads stats objects from r (a recorded or live stats body).
func DecodeStats(r io.Reader) *StatsDecoder {
	return &StatsDecoder{dec: json.NewDecoder(r)}
}

// Next returns the next sample, or io.EOF after the last one.
func (d *StatsDecoder) Next() (Stats, error) {
	var raw container.StatsResponse
	if err := d.dec.Decode(&raw); err != nil {
		return Stats{}, err
	}
	return statsFrom(&raw), nil
}

func statsFrom(r *container.StatsResponse) Stats {
	s := Stats{
		ID:      r.ID,
		Read:    r.Read,
		PreRead: r.PreRead,
		CPU:     cpuFrom(r.CPUStats),
		PreCPU:  cpuFrom(r.PreCPUStats),
		Memory: MemoryStats{
			Usage: r.MemoryStats.Usage,
			Limit: r.MemoryStats.Limit,
			Stats: r.MemoryStats.Stats,
		},
		Pids:      r.PidsStats.Current,
		PidsLimit: r.PidsStats.Limit,
	}
	if len(r.Networks) > 0 {
		s.Networks = make(map[string]NetIO, len(r.Networks))
		for name, n := range r.Networks {
			s.Networks[name] = NetIO{RxBytes: n.RxBytes, TxBytes: n.TxBytes}
		}
	}
	// cgroup v1 spells the ops "Read"/"Write", v2 "read"/"write"; v1 also
	// lists "Sync", "Async" and "Total", which would count bytes twice.
	for _, e := range r.BlkioStats.IoServiceBytesRecursive {
		switch {
		case strings.EqualFold(e.Op, "read"):
			s.BlkRead += e.Value
		case strings.EqualFold(e.Op, "write"):
			s.BlkWrite += e.Value
		}
	}
	return s
}

func cpuFrom(c container.CPUStats) CPUStats {
	return CPUStats{
		TotalUsage:  c.CPUUsage.TotalUsage,
		PercpuCount: len(c.CPUUsage.PercpuUsage),
		SystemUsage: c.SystemUsage,
		OnlineCPUs:  int(c.OnlineCPUs),
	}
}

// StatsStream is an open stats stream of one container. The engine sends
// a sample about every second.
type StatsStream struct {
	e       *Engine
	ctx     context.Context
	body    io.ReadCloser
	dec     *StatsDecoder
	once    sync.Once
	closing atomic.Bool
	ended   bool // only Next touches it
}

// StatsStream opens a stats stream. It ends when ctx ends or Close is
// called.
func (e *Engine) StatsStream(ctx context.Context, containerID string) (*StatsStream, error) {
	resp, err := e.cli.ContainerStats(ctx, containerID, true)
	if err != nil {
		return nil, e.done(err, "container stats")
	}
	e.record(nil)
	return &StatsStream{e: e, ctx: ctx, body: resp.Body, dec: DecodeStats(resp.Body)}, nil
}

// Next blocks for the next sample. It returns io.EOF once the container
// is not running (it stopped, or it was not running to begin with), ctx's
// error once ctx ended, and an engine error when the connection broke.
func (s *StatsStream) Next() (Stats, error) {
	if s.ended {
		return Stats{}, io.EOF
	}
	st, err := s.dec.Next()
	if err == nil {
		if st.Read.IsZero() {
			// Engines up to at least 20.10 keep the stream open when the
			// container stops and send an empty sample every second, for
			// good. Ending here gives callers one signal on every version;
			// a container that restarts needs a new stream.
			s.ended = true
			return Stats{}, io.EOF
		}
		return st, nil
	}
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		return Stats{}, ctxErr
	}
	if s.closing.Load() {
		return Stats{}, io.ErrClosedPipe
	}
	if errors.Is(err, io.EOF) {
		return Stats{}, io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// Cut mid-sample: the engine went away rather than ending the
		// stream.
		return Stats{}, &Error{Op: "container stats", Kind: ErrUnavailable, Msg: "the engine dropped the stats stream"}
	}
	return Stats{}, s.e.wrap(err, "container stats")
}

// Close ends the stream; it is safe to call more than once and while Next
// blocks, which it then unblocks (Next then returns io.ErrClosedPipe).
func (s *StatsStream) Close() error {
	var err error
	s.once.Do(func() {
		s.closing.Store(true)
		err = s.body.Close()
	})
	return err
}

// StatsOnce takes one sample without waiting for the engine to prime the
// CPU counters: PreCPU is empty, so rates come from the caller's previous
// sample. A container that is not running yields ErrNotRunning.
func (e *Engine) StatsOnce(ctx context.Context, containerID string) (Stats, error) {
	resp, err := e.cli.ContainerStatsOneShot(ctx, containerID)
	if err != nil {
		return Stats{}, e.done(err, "container stats")
	}
	defer resp.Body.Close()
	st, err := DecodeStats(resp.Body).Next()
	if err != nil {
		if ctx.Err() != nil {
			return Stats{}, ctx.Err()
		}
		return Stats{}, e.done(err, "container stats")
	}
	e.record(nil)
	if st.Read.IsZero() {
		return Stats{}, &Error{Op: "container stats", Kind: ErrNotRunning, Msg: "the container is not running"}
	}
	return st, nil
}
