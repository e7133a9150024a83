package config

// RedisConfig: with a URL, replicas share events (pub/sub), rate limits
// and terminal presence through Redis; without, everything stays in
// process.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db (rediss:// for TLS).
	URL string
}

func loadRedis(p *parser) RedisConfig {
	return RedisConfig{URL: p.str("AICODE_REDIS_URL", "")}
}
