package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"aicode/app"
	"aicode/services/blob"
	"aicode/services/config"
)

// A configured object store that cannot be reached stops the start with
// an error that says so, quickly, and never shows the secret key.
func TestStartFailsClearlyWithoutObjectStore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	env := map[string]string{
		"AICODE_DATA_DIR":         t.TempDir(),
		"DOCKER_HOST":             "unix:///nonexistent/docker.sock",
		"AICODE_MINIO_ENDPOINT":   addr,
		"AICODE_MINIO_ACCESS_KEY": "aicode",
		"AICODE_MINIO_SECRET_KEY": "secret-that-must-not-show",
	}
	cfg, err := config.LoadFrom(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		a.Shutdown(context.Background())
		t.Fatal("the app started without its object store")
	}
	if !errors.Is(err, blob.ErrUnavailable) || !strings.Contains(err.Error(), "object store unreachable") ||
		!strings.Contains(err.Error(), "AICODE_MINIO_ENDPOINT") || strings.Contains(err.Error(), "secret-that-must-not-show") {
		t.Fatalf("start error: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("took %s to give up", took)
	}
	t.Logf("start error after %s: %v", time.Since(start).Round(time.Millisecond), err)
}
