package handlers

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/store"
)

// listCache keeps rendered workspace-list fragments, plain and gzipped,
// until any workspace changes. The list is the page everyone polls and
// every live update reloads; with it cached, a request costs a session
// check and a write. Every workspace change is published on the bus, whose
// synchronous hook bumps the generation before Publish returns, so no
// reader sees a fragment older than a change it has been told about.
type listCache struct {
	gen atomic.Uint64

	mu      sync.Mutex
	atGen   uint64
	entries map[string]*fragment
}

// maxCachedLists bounds the entries of one generation (distinct searches,
// pages and viewer scopes).
const maxCachedLists = 512

type fragment struct {
	html []byte
	gz   []byte
	etag string
}

func newListCache() *listCache { return &listCache{entries: map[string]*fragment{}} }

// invalidate starts a new generation; earlier entries are never served.
func (c *listCache) invalidate() { c.gen.Add(1) }

// generation is read before rendering: an entry rendered from data read
// after it is filed under it, so a change during rendering makes it stale
// at once rather than cached as current.
func (c *listCache) generation() uint64 { return c.gen.Load() }

func (c *listCache) get(gen uint64, key string) *fragment {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.atGen != gen {
		return nil
	}
	return c.entries[key]
}

func (c *listCache) put(gen uint64, key string, f *fragment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return // already stale
	}
	if c.atGen != gen {
		c.atGen = gen
		c.entries = map[string]*fragment{}
	}
	if len(c.entries) < maxCachedLists {
		c.entries[key] = f
	}
}

func newFragment(html []byte) *fragment {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(html)
	zw.Close()
	sum := sha256.Sum256(html)
	return &fragment{html: html, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// listKey names what a list fragment depends on: the viewer's scope (role,
// and for members whose workspaces they are) and the query.
func listKey(p auth.Principal, q listQuery) string {
	var b strings.Builder
	b.WriteString(string(p.Role))
	b.WriteByte('|')
	if p.Role == store.RoleMember {
		b.WriteString(p.UserID)
	}
	b.WriteByte('|')
	b.WriteString(q.text)
	b.WriteByte('|')
	b.WriteString(string(q.status))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(q.page))
	return b.String()
}

// send writes a cached fragment, gzipped when the client accepts it, and
// answers a matching If-None-Match with 304.
func (f *fragment) send(c *fiber.Ctx) error {
	c.Set(fiber.HeaderETag, f.etag)
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderVary, "Accept-Encoding, HX-Request")
	if c.Get(fiber.HeaderIfNoneMatch) == f.etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	if strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(f.gz)
	}
	return c.Send(f.html)
}
