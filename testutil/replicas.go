package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"aicode/testutil/pgtest"
)

// StartReplicas boots one instance of the app per Options, as a deployment
// behind a load balancer runs them: one PostgreSQL database (a fresh
// schema), one Redis (redisURL, under a prefix of the test's own), shared
// session and credential secrets, replica ids r0, r1, … Each advertises
// its own address to the others. Env in an Options adds to (or overrides)
// what they share.
func StartReplicas(t testing.TB, redisURL string, opts ...Options) []*Server {
	t.Helper()
	db := pgtest.URL(t)
	prefix := RedisPrefix(t)
	CleanRedisPrefix(t, redisURL, prefix)
	secret := randomHex(24)
	key := randomHex(32)
	var out []*Server
	for i, o := range opts {
		env := map[string]string{
			"AICODE_REDIS_URL":      redisURL,
			"AICODE_REDIS_PREFIX":   prefix,
			"AICODE_REPLICA_ID":     "r" + string(rune('0'+i)),
			"AICODE_SESSION_SECRET": secret,
			"AICODE_SECRET_KEY":     key,
		}
		for k, v := range o.Env {
			env[k] = v
		}
		o.Env = env
		o.DatabaseURL = db
		s := StartServer(t, o)
		if s.App.Replica == nil || s.App.Replica.Presence == nil {
			t.Fatal("the app started without its Redis replica wiring")
		}
		s.App.Replica.Presence.SetURL(s.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.App.Replica.Bridge.WaitSubscribed(ctx)
		cancel()
		if err != nil {
			t.Fatalf("replica %d: bus bridge not subscribed: %v", i, err)
		}
		out = append(out, s)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
