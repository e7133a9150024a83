package config

// MetricsConfig controls the Prometheus endpoint /metrics.
type MetricsConfig struct{}

func loadMetrics(p *parser) MetricsConfig { return MetricsConfig{} }
