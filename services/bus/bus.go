// Package bus is the in-process publish/subscribe hub that carries domain
// events (workspace status changes, later task events) to live viewers.
//
// Every subscriber has a bounded queue. When it is full the oldest message
// is dropped and the subscription is marked lagged, so a slow viewer loses
// its own backlog (and can resync) but never blocks a publisher or the
// other viewers.
package bus

import (
	"sync"
	"sync/atomic"
)

// Bus fans messages out by topic.
type Bus struct {
	mu    sync.RWMutex
	subs  map[string]map[*Subscription]struct{}
	hooks map[string][]func(any)

	// codecs and forward carry messages to other replicas (codec.go,
	// redis.go); without a bridge the bus is purely in-process.
	codecs  codecs
	forward atomic.Pointer[forwarder]
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{subs: map[string]map[*Subscription]struct{}{}, hooks: map[string][]func(any){}}
}

// OnPublish registers fn to run synchronously inside every Publish on
// topic, before Publish returns. It is for cheap bookkeeping that must not
// lag behind the event, such as invalidating a cache; fn must not block.
func (b *Bus) OnPublish(topic string, fn func(msg any)) {
	b.mu.Lock()
	b.hooks[topic] = append(b.hooks[topic], fn)
	b.mu.Unlock()
}

// Subscription receives the messages of one topic.
type Subscription struct {
	bus    *Bus
	topic  string
	ch     chan any
	mu     sync.Mutex // serialises the drop-oldest-then-send of publishers
	lagged atomic.Bool
	once   sync.Once
}

// Subscribe registers a subscriber with a queue of size buffer (min 1).
func (b *Bus) Subscribe(topic string, buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{bus: b, topic: topic, ch: make(chan any, buffer)}
	b.mu.Lock()
	if b.subs[topic] == nil {
		b.subs[topic] = map[*Subscription]struct{}{}
	}
	b.subs[topic][s] = struct{}{}
	b.mu.Unlock()
	return s
}

// C delivers messages. It is never closed; select on your own context.
func (s *Subscription) C() <-chan any { return s.ch }

// Lagged reports, and clears, whether messages were dropped since the last
// call. A viewer that lagged should reload its full state.
func (s *Subscription) Lagged() bool { return s.lagged.Swap(false) }

// Close unregisters the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs[s.topic], s)
		if len(s.bus.subs[s.topic]) == 0 {
			delete(s.bus.subs, s.topic)
		}
		s.bus.mu.Unlock()
	})
}

// Publish delivers msg to every subscriber of topic without blocking and,
// when a bridge is attached and the topic has a codec, hands it to the
// bridge for the other replicas (also without blocking).
func (b *Bus) Publish(topic string, msg any) {
	b.deliver(topic, msg)
	if f := b.forward.Load(); f != nil {
		f.send(topic, msg)
	}
}

// deliver runs the hooks and offers msg to the local subscribers.
func (b *Bus) deliver(topic string, msg any) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, fn := range b.hooks[topic] {
		fn(msg)
	}
	for s := range b.subs[topic] {
		s.offer(msg)
	}
}

// Subscribers counts the subscribers of topic.
func (b *Bus) Subscribers(topic string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs[topic])
}

func (s *Subscription) offer(msg any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		select {
		case s.ch <- msg:
			return
		default:
		}
		select {
		case <-s.ch:
			s.lagged.Store(true)
		default:
		}
	}
}
