package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables of the Redis tests.
const (
	// RedisURLEnv names the shared Redis server (never stopped by tests;
	// each test uses its own key prefix).
	RedisURLEnv = "AICODE_TEST_REDIS_URL"
	// RedisServerEnv names a redis-server binary, for tests that start
	// (and stop) their own instance.
	RedisServerEnv = "AICODE_TEST_REDIS_SERVER"
)

// RedisURL returns the shared test Redis. It is required: a missing value
// fails the test rather than skipping it.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(RedisURLEnv)
	if u == "" {
		t.Fatalf("%s is not set; the Redis tests need a server, e.g.\n"+
			"  export %s=redis://127.0.0.1:6379/0\n"+
			"(tests only touch keys and channels under their own random prefix)", RedisURLEnv, RedisURLEnv)
	}
	return u
}

// RedisPrefix returns a key and channel prefix no other test uses.
func RedisPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "aicode-test:" + hex.EncodeToString(b[:]) + ":"
}

// RedisClient connects to url; the client is closed when the test ends.
func RedisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis url %q: %v", url, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// CleanRedisPrefix deletes every key under prefix when the test ends.
func CleanRedisPrefix(t testing.TB, url, prefix string) {
	t.Helper()
	c := RedisClient(t, url)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
}

// RedisServer is a redis-server of the test's own, on a loopback port it
// keeps across Stop and Start, so faults can be staged.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	URL  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis starts a private redis-server; it is stopped when the test
// ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin := os.Getenv(RedisServerEnv)
	if bin == "" {
		t.Fatalf("%s is not set; the Redis fault tests start their own server, e.g.\n"+
			"  export %s=$(command -v redis-server)", RedisServerEnv, RedisServerEnv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &RedisServer{t: t, bin: bin, dir: t.TempDir(), Port: port, URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start runs the server (again) on its port and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	opt, _ := redis.ParseURL(r.URL)
	c := redis.NewClient(opt)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not answer: %v", r.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server (its connections drop at once).
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}
