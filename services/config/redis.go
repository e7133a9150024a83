package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// RedisConfig: with a URL, replicas share events (pub/sub), rate limits
// and terminal presence through Redis; without, everything stays in
// process.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db (rediss:// for TLS).
	URL string
	// Prefix starts every key and channel the app uses, so several
	// deployments can share one Redis.
	Prefix string
	// ReplicaID names this process among replicas; empty: the host name
	// plus a random suffix, new at every start.
	ReplicaID string
	// ReplicaURL is where the other replicas reach this one directly
	// (scheme://host:port, no path), to forward a terminal it holds; empty:
	// http://<host name>:<port of AICODE_LISTEN_ADDR>.
	ReplicaURL string
}

var (
	redisPrefixRe = regexp.MustCompile(`^[A-Za-z0-9:_.\-]{0,64}$`)
	replicaIDRe   = regexp.MustCompile(`^[A-Za-z0-9:_.\-]{1,100}$`)
)

func loadRedis(p *parser) RedisConfig {
	c := RedisConfig{
		URL:        p.str("AICODE_REDIS_URL", ""),
		Prefix:     p.str("AICODE_REDIS_PREFIX", "aicode:"),
		ReplicaID:  p.str("AICODE_REPLICA_ID", ""),
		ReplicaURL: strings.TrimRight(p.str("AICODE_REPLICA_URL", ""), "/"),
	}
	if c.URL != "" && !strings.HasPrefix(c.URL, "redis://") && !strings.HasPrefix(c.URL, "rediss://") && !strings.HasPrefix(c.URL, "unix://") {
		p.errs = append(p.errs, fmt.Errorf("AICODE_REDIS_URL: must be a redis://, rediss:// or unix:// URL"))
	}
	if !redisPrefixRe.MatchString(c.Prefix) {
		p.errs = append(p.errs, fmt.Errorf("AICODE_REDIS_PREFIX: %q may hold up to 64 letters, digits and : _ . - only", c.Prefix))
	}
	if c.ReplicaID != "" && !replicaIDRe.MatchString(c.ReplicaID) {
		p.errs = append(p.errs, fmt.Errorf("AICODE_REPLICA_ID: %q may hold up to 100 letters, digits and : _ . - only", c.ReplicaID))
	}
	if c.ReplicaURL != "" {
		u, err := url.Parse(c.ReplicaURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			p.errs = append(p.errs, fmt.Errorf("AICODE_REPLICA_URL: %q must be http(s)://host:port without a path", c.ReplicaURL))
		}
	}
	return c
}

// LogValue keeps the URL's password out of logs.
func (r RedisConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", RedactURL(r.URL)),
		slog.String("prefix", r.Prefix),
		slog.String("replica_id", r.ReplicaID),
		slog.String("replica_url", r.ReplicaURL),
	)
}

// RedactURL hides the password of a URL, for logs and errors.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
