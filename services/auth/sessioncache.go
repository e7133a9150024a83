package auth

import (
	"sync"
	"time"

	"aicode/services/store"
)

// sessionCacheTTL bounds how long a session looked up once is trusted
// without asking the store again. Every request authenticates, and the
// lookup would otherwise be a query per request. Changes made through this
// process (sign-out, disabling, role and password changes) evict at once;
// the TTL only bounds how late another replica notices them.
const sessionCacheTTL = 2 * time.Second

const maxCachedSessions = 10_000

type sessionCache struct {
	mu sync.Mutex
	m  map[string]cachedSession
}

type cachedSession struct {
	su      store.SessionUser
	fetched time.Time
}

func newSessionCache() *sessionCache { return &sessionCache{m: map[string]cachedSession{}} }

func (c *sessionCache) get(id string, now time.Time) (store.SessionUser, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return store.SessionUser{}, false
	}
	if now.Sub(e.fetched) >= sessionCacheTTL || !now.Before(e.su.Session.ExpiresAt) {
		delete(c.m, id)
		return store.SessionUser{}, false
	}
	return e.su, true
}

func (c *sessionCache) put(su store.SessionUser, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedSessions {
		// Rare (that many active sessions within the TTL); start over
		// rather than track recency.
		c.m = map[string]cachedSession{}
	}
	c.m[su.Session.ID] = cachedSession{su: su, fetched: now}
}

func (c *sessionCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// dropUser evicts every session of a user.
func (c *sessionCache) dropUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.m {
		if e.su.User.ID == userID {
			delete(c.m, id)
		}
	}
}
