package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"aicode/services/terminal"
)

// Presence records in Redis which replica holds each terminal session,
// so that every replica lists all of a workspace's terminals and can send
// a viewer to the replica that holds one (a terminal's shell lives in the
// process that opened it). Entries expire unless refreshed, so a replica
// that dies takes its entries with it within PresenceTTL.
//
// Keys: <prefix>term:s:<workspace>:<session> holds a presenceEntry;
// <prefix>term:w:<workspace> is the set of its session ids.
type Presence struct {
	client  redis.UniversalClient
	prefix  string
	replica string
	url     atomic.Pointer[string]
	mgr     *terminal.Manager
	ttl     time.Duration
	log     *slog.Logger
	down    atomic.Bool

	mu sync.Mutex
	// held are the workspaces with sessions this replica announced.
	held map[string]bool
}

// PresenceTTL is how long an entry outlives its last refresh.
const PresenceTTL = 30 * time.Second

// presenceTimeout bounds one Redis round trip of presence bookkeeping.
const presenceTimeout = time.Second

// presenceEntry is what Redis holds per session.
type presenceEntry struct {
	Info    terminal.Info
	Replica string
	URL     string
}

// NewPresence announces mgr's sessions as held by replica, reachable at
// url (see SetURL), under keys starting with prefix.
func NewPresence(client redis.UniversalClient, prefix, replica, url string, mgr *terminal.Manager, log *slog.Logger) *Presence {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Presence{client: client, prefix: prefix + "term:", replica: replica, mgr: mgr, ttl: PresenceTTL, log: log, held: map[string]bool{}}
	p.SetURL(url)
	return p
}

// SetURL changes where other replicas reach this one (tests learn their
// port only after the app is built).
func (p *Presence) SetURL(url string) { p.url.Store(&url) }

// URL is where other replicas reach this one.
func (p *Presence) URL() string { return *p.url.Load() }

// SetPresence makes the console announce its sessions and list the other
// replicas' ones.
func (s *Service) SetPresence(p *Presence) { s.presence = p }

func (p *Presence) sessionKey(ws, id string) string { return p.prefix + "s:" + ws + ":" + id }
func (p *Presence) workspaceKey(ws string) string   { return p.prefix + "w:" + ws }

// announce records (or refreshes) sessions held here.
func (p *Presence) announce(ctx context.Context, infos ...terminal.Info) error {
	if p == nil || len(infos) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	url := p.URL()
	_, err := p.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, in := range infos {
			b, err := json.Marshal(presenceEntry{Info: in, Replica: p.replica, URL: url})
			if err != nil {
				return err
			}
			pipe.Set(ctx, p.sessionKey(in.WorkspaceID, in.ID), b, p.ttl)
			pipe.SAdd(ctx, p.workspaceKey(in.WorkspaceID), in.ID)
			pipe.PExpire(ctx, p.workspaceKey(in.WorkspaceID), 2*p.ttl)
		}
		return nil
	})
	p.mu.Lock()
	for _, in := range infos {
		p.held[in.WorkspaceID] = true
	}
	p.mu.Unlock()
	return p.failed(err)
}

// opened announces a new or renamed session; Redis trouble is logged, not
// returned: the session works here whatever Redis says.
func (p *Presence) opened(info terminal.Info) {
	if p != nil {
		_ = p.announce(context.Background(), info)
	}
}

// ended withdraws a session.
func (p *Presence) ended(info terminal.Info) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	_, err := p.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, p.sessionKey(info.WorkspaceID, info.ID))
		pipe.SRem(ctx, p.workspaceKey(info.WorkspaceID), info.ID)
		return nil
	})
	_ = p.failed(err)
}

// Refresh re-announces every session held here (with current viewer
// counts) and forgets workspaces without any.
func (p *Presence) Refresh(ctx context.Context) error {
	p.mu.Lock()
	wss := make([]string, 0, len(p.held))
	for ws := range p.held {
		wss = append(wss, ws)
	}
	p.mu.Unlock()
	var all []terminal.Info
	for _, ws := range wss {
		list := p.mgr.List(ws)
		if len(list) == 0 {
			p.mu.Lock()
			delete(p.held, ws)
			p.mu.Unlock()
		}
		all = append(all, list...)
	}
	return p.announce(ctx, all...)
}

// Run refreshes the entries well within their lifetime until ctx ends.
// (Sessions that end, also at shutdown, withdraw their own entries.)
func (p *Presence) Run(ctx context.Context) {
	t := time.NewTicker(p.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.Refresh(ctx)
		}
	}
}

// remote returns the other replicas' sessions of a workspace, dropping
// ids whose entries expired.
func (p *Presence) remote(ctx context.Context, ws string) ([]presenceEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	ids, err := p.client.SMembers(ctx, p.workspaceKey(ws)).Result()
	if p.failed(err) != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = p.sessionKey(ws, id)
	}
	vals, err := p.client.MGet(ctx, keys...).Result()
	if p.failed(err) != nil {
		return nil, err
	}
	var out []presenceEntry
	var stale []any
	for i, v := range vals {
		s, ok := v.(string)
		var e presenceEntry
		if !ok || json.Unmarshal([]byte(s), &e) != nil || e.Info.WorkspaceID != ws {
			stale = append(stale, ids[i])
			continue
		}
		if e.Replica != p.replica {
			out = append(out, e)
		}
	}
	if len(stale) > 0 {
		p.client.SRem(ctx, p.workspaceKey(ws), stale...)
	}
	return out, nil
}

// merge adds the other replicas' sessions to this one's, oldest first.
// Without Redis the local list is what there is.
func (p *Presence) merge(ctx context.Context, ws string, local []terminal.Info) []terminal.Info {
	if p == nil {
		return local
	}
	rem, err := p.remote(ctx, ws)
	if err != nil || len(rem) == 0 {
		return local
	}
	seen := make(map[string]bool, len(local))
	for _, in := range local {
		seen[in.ID] = true
	}
	out := append([]terminal.Info(nil), local...)
	for _, e := range rem {
		if !seen[e.Info.ID] {
			out = append(out, e.Info)
		}
	}
	slices.SortStableFunc(out, func(a, b terminal.Info) int { return cmp.Compare(a.CreatedAt.UnixNano(), b.CreatedAt.UnixNano()) })
	return out
}

// RemoteOwner returns the address of the replica holding a session that is
// not held here, or "" when it is held here or nowhere known.
func (p *Presence) RemoteOwner(ctx context.Context, ws, id string) (string, error) {
	if _, err := p.mgr.Get(ws, id); err == nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	s, err := p.client.Get(ctx, p.sessionKey(ws, id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if p.failed(err) != nil {
		return "", err
	}
	var e presenceEntry
	if err := json.Unmarshal([]byte(s), &e); err != nil || e.Replica == p.replica || e.Info.WorkspaceID != ws {
		return "", nil
	}
	return e.URL, nil
}

// failed logs the start and end of a Redis outage once each.
func (p *Presence) failed(err error) error {
	if err != nil && !errors.Is(err, redis.Nil) {
		if !p.down.Swap(true) {
			p.log.Warn("terminal presence: Redis unavailable; other replicas do not see this one's terminals until it is back", "err", err)
		}
		return err
	}
	if p.down.Swap(false) {
		p.log.Info("terminal presence: Redis available again")
	}
	return nil
}
