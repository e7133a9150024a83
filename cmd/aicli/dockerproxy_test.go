package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The compose files' healthcheck of docker-proxy: `aicli docker-proxy -check URL`.
func TestDockerProxyCheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"docker-proxy", "-check", srv.URL}, nil, &out, &errb); code != 0 {
		t.Errorf("healthy proxy: exit %d %q", code, errb.String())
	}
	status = http.StatusBadGateway
	if code := run([]string{"docker-proxy", "-check", srv.URL}, nil, &out, &errb); code != 1 {
		t.Errorf("engine unreachable behind the proxy: exit %d", code)
	}
	srv.Close()
	if code := run([]string{"docker-proxy", "-check", srv.URL}, nil, &out, &errb); code != 1 {
		t.Errorf("proxy down: exit %d", code)
	}
	if code := run([]string{"docker-proxy", "-frobnicate"}, nil, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}
