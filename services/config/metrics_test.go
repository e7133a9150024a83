package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestMetricsToken(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil || c.Metrics.Token != "" {
		t.Fatalf("default: %+v %v", c.Metrics, err)
	}
	tok := "0123456789abcdef-token"
	c, err = LoadFrom(env(map[string]string{"AICODE_METRICS_TOKEN": tok}))
	if err != nil || c.Metrics.Token != tok {
		t.Fatalf("token: %+v %v", c.Metrics, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "metrics", c.Metrics)
	if strings.Contains(buf.String(), tok) {
		t.Fatalf("token logged: %s", buf.String())
	}
	if _, err := LoadFrom(env(map[string]string{"AICODE_METRICS_TOKEN": "short"})); err == nil || !strings.Contains(err.Error(), "AICODE_METRICS_TOKEN") {
		t.Fatalf("short token: %v", err)
	}
}
