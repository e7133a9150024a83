package app_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/testutil"
)

// SIGTERM's path: open streams end, the request in flight finishes and
// gets its answer, then the server stops, all within the timeout.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	admin := testutil.Setup(t, s.URL, "admin", "shutdown-secret-1")

	// A live stream that would otherwise never end.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/workspaces/events", nil)
	stream, err := admin.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("event stream content type %q", ct)
	}
	streamEnded := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
		}
		close(streamEnded)
	}()

	// A create in flight: it takes the engine a while.
	name := testutil.UniqueName("inflight")
	created := make(chan testutil.Response, 1)
	go func() { created <- admin.Post("/workspaces", url.Values{"name": {name}}, true) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if w, err := s.App.Store.GetWorkspaceByName(context.Background(), name); err == nil && w.Status == store.StatusCreating {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the create never started")
		}
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.App.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	took := time.Since(start)

	select {
	case r := <-created:
		if r.Status != http.StatusCreated {
			t.Fatalf("in-flight create answered %d during shutdown", r.Status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request got no answer")
	}
	select {
	case <-streamEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after shutdown")
	}
	if took > 15*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	// New connections are refused once it has stopped.
	hc := &http.Client{Timeout: 2 * time.Second}
	if _, err := hc.Get(s.URL + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
	// Shut down already: the test server's cleanup must not do it twice.
	s.MarkStopped()
}

// A server stopped before its Serve got going (a process told to stop
// right after starting) must not go on serving: Serve returns, and the
// port answers nobody.
func TestServeAfterShutdownReturns(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.App.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	s.MarkStopped()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.App.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve after Shutdown is still serving")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts connections")
	}
}
