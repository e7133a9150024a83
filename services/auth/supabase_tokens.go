package auth

import (
	"sync"
	"time"
)

// tokenState is a session's GoTrue tokens in clear, in memory only. exp
// is the access token's verified expiry (zero when it did not verify, so
// the next request refreshes it).
type tokenState struct {
	subject string
	access  string
	refresh string
	exp     time.Time
	iat     time.Time
}

const maxCachedTokens = 10_000

// tokenCache remembers verified tokens per session id, so a request costs
// a map lookup until the token is due for refresh.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*tokenState
}

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]*tokenState{}} }

func (c *tokenCache) get(id string) *tokenState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *tokenCache) put(id string, st *tokenState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= maxCachedTokens {
		// Rare; start over rather than track recency (entries reload
		// from the store).
		c.m = map[string]*tokenState{}
	}
	c.m[id] = st
}

func (c *tokenCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
