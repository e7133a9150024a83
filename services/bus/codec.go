package bus

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Codec turns one topic's messages into bytes for the other replicas and
// back. Only topics with a codec leave the process; the rest stay local.
type Codec struct {
	Encode func(msg any) ([]byte, error)
	Decode func(data []byte) (any, error)
}

// JSON is the codec of a topic whose messages are values of type T: they
// travel as JSON and arrive as T again (not *T, not a map).
func JSON[T any]() Codec {
	return Codec{
		Encode: func(msg any) ([]byte, error) {
			v, ok := msg.(T)
			if !ok {
				var want T
				return nil, fmt.Errorf("bus: message is %T, the topic's codec takes %T", msg, want)
			}
			return json.Marshal(v)
		},
		Decode: func(data []byte) (any, error) {
			var v T
			if err := json.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			return v, nil
		},
	}
}

// codecs maps topics to codecs: exact topics, then prefixes.
type codecs struct {
	mu       sync.RWMutex
	exact    map[string]Codec
	prefixes []prefixCodec
}

type prefixCodec struct {
	prefix string
	codec  Codec
}

// RegisterCodec says how the messages of pattern travel between replicas.
// pattern is a topic ("workspace.status") or a prefix ending in "*"
// ("task:*"); an exact topic wins over a prefix, a longer prefix over a
// shorter one. The owning service registers its topics at wiring time.
func (b *Bus) RegisterCodec(pattern string, c Codec) {
	if c.Encode == nil || c.Decode == nil {
		panic("bus: codec for " + pattern + " lacks Encode or Decode")
	}
	b.codecs.mu.Lock()
	defer b.codecs.mu.Unlock()
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		for i, e := range b.codecs.prefixes {
			if e.prefix == p {
				b.codecs.prefixes[i].codec = c
				return
			}
		}
		b.codecs.prefixes = append(b.codecs.prefixes, prefixCodec{prefix: p, codec: c})
		return
	}
	if b.codecs.exact == nil {
		b.codecs.exact = map[string]Codec{}
	}
	b.codecs.exact[pattern] = c
}

// codecFor returns the codec of topic, if it has one.
func (b *Bus) codecFor(topic string) (Codec, bool) {
	b.codecs.mu.RLock()
	defer b.codecs.mu.RUnlock()
	if c, ok := b.codecs.exact[topic]; ok {
		return c, true
	}
	best, found := -1, Codec{}
	for _, e := range b.codecs.prefixes {
		if len(e.prefix) > best && strings.HasPrefix(topic, e.prefix) {
			best, found = len(e.prefix), e.codec
		}
	}
	return found, best >= 0
}

// forwarder takes published messages to other replicas; send must not
// block.
type forwarder struct {
	send func(topic string, msg any)
}

// markLagged flags every subscription of a bridged topic as lagged: after
// the link to the other replicas was down, their messages of that time
// are lost, and viewers should resync at their next message.
func (b *Bus) markLagged() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for topic, subs := range b.subs {
		if _, ok := b.codecFor(topic); !ok {
			continue
		}
		for s := range subs {
			s.lagged.Store(true)
		}
	}
}
