package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisLimiter is a fixed-window counter shared by every replica through
// Redis: a key's window starts at its first hit and its count expires with
// it. When Redis fails, the limiter falls back to counting in this
// process, so sign-ins and the rest keep working (limited per replica)
// rather than failing; it logs once per outage.
type RedisLimiter struct {
	client   redis.UniversalClient
	prefix   string
	window   time.Duration
	timeout  time.Duration
	fallback *MemoryLimiter
	log      *slog.Logger
	down     atomic.Bool
}

// hitScript counts one hit and starts the window with the first one (or
// repairs a key that somehow lost its expiry), atomically.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n`)

// NewRedisLimiter counts in windows of length window under keys starting
// with prefix (e.g. "aicode:rl:login:").
func NewRedisLimiter(client redis.UniversalClient, prefix string, window time.Duration, log *slog.Logger) *RedisLimiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RedisLimiter{
		client: client, prefix: prefix, window: window, timeout: 500 * time.Millisecond,
		fallback: NewMemoryLimiter(window), log: log,
	}
}

// maxKeyLen bounds keys kept as they are; longer ones (user-supplied
// names can be long) are hashed.
const maxKeyLen = 160

func (l *RedisLimiter) key(k string) string {
	if len(k) > maxKeyLen {
		sum := sha256.Sum256([]byte(k))
		k = "h:" + hex.EncodeToString(sum[:])
	}
	return l.prefix + k
}

func (l *RedisLimiter) Blocked(key string, limit int) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	k := l.key(key)
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, k)
		ttl = p.PTTL(ctx, k)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if l.failed(err) {
		return l.fallback.Blocked(key, limit)
	}
	n, err := get.Int()
	if err != nil { // no window open (redis.Nil) or not a count
		return false, 0
	}
	if n < limit {
		return false, 0
	}
	wait := ttl.Val()
	if wait <= 0 {
		wait = l.window
	}
	return true, wait
}

func (l *RedisLimiter) Hit(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	err := hitScript.Run(ctx, l.client, []string{l.key(key)}, l.window.Milliseconds()).Err()
	if l.failed(err) {
		l.fallback.Hit(key)
	}
}

func (l *RedisLimiter) Reset(key string) {
	l.fallback.Reset(key)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	l.failed(l.client.Del(ctx, l.key(key)).Err())
}

// failed reports err, logging the start and the end of an outage once.
func (l *RedisLimiter) failed(err error) bool {
	if err != nil {
		if !l.down.Swap(true) {
			l.log.Warn("rate limits: Redis unavailable; counting in this process until it is back", "prefix", l.prefix, "err", err)
		}
		return true
	}
	if l.down.Swap(false) {
		l.log.Info("rate limits: Redis available again; counts are shared", "prefix", l.prefix)
	}
	return false
}
