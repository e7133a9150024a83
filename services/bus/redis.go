package bus

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a bridge between replicas.
type RedisOptions struct {
	// Prefix namespaces the channels (e.g. "aicode:"), so several
	// deployments, or tests, share one Redis without hearing each other.
	Prefix string
	// Origin names this replica: its own messages coming back from Redis
	// are ignored (they were delivered locally already). Required; it must
	// not contain a newline.
	Origin string
	// Queue bounds the messages waiting to go out (default 8192). When it
	// is full, because Redis is slow or down, messages are dropped and
	// counted: a publisher never waits.
	Queue int
	// MaxMessage bounds one encoded message (default 1 MiB); bigger ones
	// stay local and are counted as dropped.
	MaxMessage int
	Log        *slog.Logger
}

// RedisStats are a bridge's counters since it started.
type RedisStats struct {
	Sent       uint64 // messages published to Redis
	Dropped    uint64 // messages that could not be published (queue full, Redis down, too big)
	Received   uint64 // messages from other replicas delivered locally
	Invalid    uint64 // messages from Redis that could not be decoded
	Reconnects uint64 // subscriptions re-established after a loss
	Connected  bool   // subscribed right now
}

// RedisBridge carries the bus's messages to the other replicas through
// Redis pub/sub and delivers theirs locally. Each topic with a codec is
// the channel Prefix+"bus:"+topic; a message is the origin's name, a
// newline and the encoded message.
type RedisBridge struct {
	bus     *Bus
	client  redis.UniversalClient
	opts    RedisOptions
	prefix  string // channel prefix: Prefix + "bus:"
	origin  []byte // Origin + "\n"
	queue   chan outgoing
	ps      *redis.PubSub
	fwd     *forwarder
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool

	sent, dropped, received, invalid, reconnects atomic.Uint64
	connected                                    atomic.Bool
	// subscribed is closed the first time the subscription is confirmed.
	subscribed     chan struct{}
	subscribedOnce sync.Once
}

type outgoing struct {
	topic string
	msg   any
	codec Codec
}

// Bounds of the bridge's loops.
const (
	publishBatch   = 256
	publishTimeout = 2 * time.Second
	receiveTimeout = 10 * time.Second // a quiet link is pinged after that
	retryMin       = 100 * time.Millisecond
	retryMax       = 2 * time.Second
)

// NewRedisBridge prepares a bridge for b over client; Start attaches it.
func NewRedisBridge(b *Bus, client redis.UniversalClient, o RedisOptions) (*RedisBridge, error) {
	if o.Origin == "" || strings.ContainsAny(o.Origin, "\n") {
		return nil, errors.New("bus: a Redis bridge needs an origin name without newlines")
	}
	if o.Queue <= 0 {
		o.Queue = 8192
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 1 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &RedisBridge{
		bus: b, client: client, opts: o,
		prefix:     o.Prefix + "bus:",
		origin:     []byte(o.Origin + "\n"),
		queue:      make(chan outgoing, o.Queue),
		subscribed: make(chan struct{}),
	}, nil
}

// Start subscribes to the other replicas' messages and starts forwarding
// this bus's. It returns at once: when Redis is unreachable the bridge
// keeps trying in the background, and messages published meanwhile are
// dropped (local delivery is unaffected).
func (r *RedisBridge) Start(ctx context.Context) {
	if r.started.Swap(true) {
		return
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.ps = r.client.PSubscribe(r.ctx, escapeGlob(r.prefix)+"*")
	r.fwd = &forwarder{send: r.enqueue}
	r.bus.forward.Store(r.fwd)
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.publishLoop() }()
	go func() { defer r.wg.Done(); r.receiveLoop() }()
}

// Close detaches the bridge from the bus and stops it; messages still
// queued are dropped.
func (r *RedisBridge) Close() error {
	if !r.started.Load() {
		return nil
	}
	r.bus.forward.CompareAndSwap(r.fwd, nil)
	r.cancel()
	err := r.ps.Close()
	r.wg.Wait()
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}

// WaitSubscribed waits until the subscription was confirmed once, so
// messages other replicas publish from then on arrive.
func (r *RedisBridge) WaitSubscribed(ctx context.Context) error {
	select {
	case <-r.subscribed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the bridge's counters.
func (r *RedisBridge) Stats() RedisStats {
	return RedisStats{
		Sent: r.sent.Load(), Dropped: r.dropped.Load(), Received: r.received.Load(),
		Invalid: r.invalid.Load(), Reconnects: r.reconnects.Load(), Connected: r.connected.Load(),
	}
}

// enqueue is the bus's forwarder: topics without a codec stay local; the
// rest wait in a bounded queue, never blocking the publisher.
func (r *RedisBridge) enqueue(topic string, msg any) {
	c, ok := r.bus.codecFor(topic)
	if !ok {
		return
	}
	select {
	case r.queue <- outgoing{topic: topic, msg: msg, codec: c}:
	default:
		r.dropped.Add(1)
	}
}

// publishLoop encodes queued messages and publishes them in pipelined
// batches, in order. A failed batch is dropped: Redis pub/sub keeps
// nothing for later either, and viewers resync when they lag.
func (r *RedisBridge) publishLoop() {
	batch := make([]outgoing, 0, publishBatch)
	failing := false
	for {
		select {
		case <-r.ctx.Done():
			return
		case m := <-r.queue:
			batch = append(batch[:0], m)
		}
	fill:
		for len(batch) < publishBatch {
			select {
			case m := <-r.queue:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		pipe := r.client.Pipeline()
		n := 0
		for _, m := range batch {
			data, err := m.codec.Encode(m.msg)
			if err != nil || len(data)+len(r.origin) > r.opts.MaxMessage {
				r.dropped.Add(1)
				if err != nil {
					r.opts.Log.Warn("bus: message not sent to other replicas", "topic", m.topic, "err", err)
				}
				continue
			}
			payload := make([]byte, 0, len(r.origin)+len(data))
			payload = append(append(payload, r.origin...), data...)
			pipe.Publish(r.ctx, r.prefix+m.topic, payload)
			n++
		}
		if n == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, publishTimeout)
		cmds, err := pipe.Exec(ctx)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		ok := 0
		for _, c := range cmds {
			if c.Err() == nil {
				ok++
			}
		}
		r.sent.Add(uint64(ok))
		r.dropped.Add(uint64(n - ok))
		switch {
		case err != nil && !failing:
			failing = true
			r.opts.Log.Warn("bus: cannot publish to Redis; other replicas miss this one's events until it is back", "err", err)
		case err == nil && failing:
			failing = false
			r.opts.Log.Info("bus: publishing to Redis again")
		}
	}
}

// receiveLoop delivers the other replicas' messages locally. go-redis
// re-dials and re-subscribes a broken subscription on the next receive;
// this loop keeps receiving, backing off while Redis is away.
func (r *RedisBridge) receiveLoop() {
	backoff := retryMin
	everConnected := false
	for {
		m, err := r.ps.ReceiveTimeout(r.ctx, receiveTimeout)
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && r.connected.Load() {
				// Quiet link: a ping finds out whether it is still there
				// (a failed write makes go-redis reconnect).
				_ = r.ps.Ping(r.ctx)
				continue
			}
			if r.connected.Swap(false) {
				r.opts.Log.Warn("bus: lost the Redis subscription; reconnecting", "err", err)
			}
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "psubscribe" {
				continue
			}
			if !r.connected.Swap(true) {
				if everConnected {
					r.reconnects.Add(1)
					r.opts.Log.Info("bus: Redis subscription restored")
					// What other replicas published meanwhile is gone.
					r.bus.markLagged()
				}
				everConnected = true
			}
			r.subscribedOnce.Do(func() { close(r.subscribed) })
		case *redis.Message:
			r.handle(m.Channel, m.Payload)
		}
	}
}

// handle decodes one message and delivers it, unless this replica sent it.
func (r *RedisBridge) handle(channel, payload string) {
	topic, ok := strings.CutPrefix(channel, r.prefix)
	if !ok {
		return
	}
	origin, data, ok := strings.Cut(payload, "\n")
	if !ok {
		r.invalid.Add(1)
		return
	}
	if origin == r.opts.Origin {
		return
	}
	c, ok := r.bus.codecFor(topic)
	if !ok {
		// A replica with a newer codec set; this one cannot read it.
		r.invalid.Add(1)
		return
	}
	msg, err := c.Decode([]byte(data))
	if err != nil {
		r.invalid.Add(1)
		r.opts.Log.Warn("bus: undecodable message from another replica", "topic", topic, "origin", origin, "err", err)
		return
	}
	r.received.Add(1)
	r.bus.deliver(topic, msg)
}

// escapeGlob quotes the characters Redis patterns treat specially.
func escapeGlob(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
