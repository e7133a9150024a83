package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"aicode/services/dockerproxy"
)

// dockerProxy runs the Docker API proxy of the compose deployments: the
// only holder of the engine's socket, forwarding just the calls the app
// makes (services/dockerproxy). With -check it probes a running proxy
// instead, for container healthchecks.
func dockerProxy(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("docker-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":2375", "address to listen on")
	socket := fs.String("socket", "/var/run/docker.sock", "the engine's unix socket")
	check := fs.String("check", "", "probe the proxy at this URL (GET /_ping through it) and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *check != "" {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(*check + "/_ping")
		if err != nil {
			fmt.Fprintln(stderr, "aicli docker-proxy:", err)
			return 1
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintln(stderr, "aicli docker-proxy: status", resp.StatusCode)
			return 1
		}
		return 0
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("docker proxy: cannot listen", "addr", *listen, "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("docker proxy listening", "addr", ln.Addr().String(), "socket", *socket)
	if err := dockerproxy.New(*socket, log).Serve(ctx, ln); err != nil {
		log.Error("docker proxy stopped", "err", err)
		return 1
	}
	return 0
}
