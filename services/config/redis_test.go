package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRedisConfig(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis != (RedisConfig{Prefix: "aicode:"}) {
		t.Fatalf("default: %+v", c.Redis)
	}
	c, err = LoadFrom(env(map[string]string{
		"AICODE_REDIS_URL":    "redis://:s3cret-pw@redis:6379/2",
		"AICODE_REDIS_PREFIX": "prod:",
		"AICODE_REPLICA_ID":   "api-1",
		"AICODE_REPLICA_URL":  "http://api-1:8080/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := RedisConfig{URL: "redis://:s3cret-pw@redis:6379/2", Prefix: "prod:", ReplicaID: "api-1", ReplicaURL: "http://api-1:8080"}
	if c.Redis != want {
		t.Fatalf("got %+v; want %+v", c.Redis, want)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "redis", c.Redis)
	if strings.Contains(buf.String(), "s3cret-pw") || !strings.Contains(buf.String(), "redis:6379") {
		t.Fatalf("log shows the password or hides the address: %s", buf.String())
	}

	bad := []struct{ key, val string }{
		{"AICODE_REDIS_URL", "http://redis:6379"},
		{"AICODE_REDIS_URL", "redis:6379"},
		{"AICODE_REDIS_PREFIX", "has space"},
		{"AICODE_REDIS_PREFIX", "glob*"},
		{"AICODE_REDIS_PREFIX", strings.Repeat("p", 65)},
		{"AICODE_REPLICA_ID", "a\nb"},
		{"AICODE_REPLICA_ID", strings.Repeat("r", 101)},
		{"AICODE_REPLICA_URL", "api-1:8080"},
		{"AICODE_REPLICA_URL", "ftp://api-1"},
		{"AICODE_REPLICA_URL", "http://api-1:8080/path"},
		{"AICODE_REPLICA_URL", "http://user:pw@api-1:8080"},
	}
	for _, b := range bad {
		if _, err := LoadFrom(env(map[string]string{b.key: b.val})); err == nil || !strings.Contains(err.Error(), b.key) {
			t.Errorf("%s=%q: err %v; want one naming the variable", b.key, b.val, err)
		}
	}
}
