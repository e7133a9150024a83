package config

import (
	"errors"
	"log/slog"
)

// MetricsConfig controls the Prometheus endpoint /metrics.
type MetricsConfig struct {
	// Token, when set, is required as "Authorization: Bearer <token>".
	// When empty, /metrics answers only clients connected from a loopback
	// address (the direct peer, never X-Forwarded-For). Secret: never
	// logged.
	Token string
}

// LogValue keeps the token out of logs.
func (m MetricsConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("token_set", m.Token != ""))
}

func loadMetrics(p *parser) MetricsConfig {
	m := MetricsConfig{Token: p.str("AICODE_METRICS_TOKEN", "")}
	if m.Token != "" && len(m.Token) < 16 {
		p.errs = append(p.errs, errors.New("AICODE_METRICS_TOKEN must be at least 16 characters (or empty: loopback clients only)"))
	}
	return m
}
