// Command aicli runs AICode Manager: `aicli serve` (the default) starts the
// web server; `aicli migrate` applies database migrations and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"aicode/app"
	"aicode/services/config"
	"aicode/services/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `AICode Manager — AI coding workspaces in isolated Docker containers.

Usage:
  aicli [serve]     start the web server (default)
  aicli migrate     apply pending database migrations and exit
  aicli healthcheck exit 0 if the local server answers /healthz (for container healthchecks)
  aicli version     print the version
  aicli help        show this help

Configuration comes from environment variables; see .env.example.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		return serve(stderr)
	case "migrate":
		return migrate(stdout, stderr)
	case "healthcheck":
		return healthcheck(stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "aicli", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "aicli: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func loadConfig(stderr io.Writer) (config.Config, bool) {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stderr, "aicli: configuration error:\n%v\n", err)
		return cfg, false
	}
	return cfg, true
}

func serve(stderr io.Writer) int {
	cfg, ok := loadConfig(stderr)
	if !ok {
		return 2
	}
	log := app.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.ListenAddr, "err", err)
		_ = a.Shutdown(context.Background())
		return 1
	}
	a.Start()
	log.Info("AICode Manager listening", "url", "http://"+ln.Addr().String(), "version", version,
		"database", dbKind(cfg.DatabaseURL), "workspaces_root", a.Workspaces.Root().Path())

	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down; finishing in-flight requests", "timeout", cfg.ShutdownTimeout)
	case err := <-served:
		if err != nil {
			log.Error("server stopped", "err", err)
			_ = a.Shutdown(context.Background())
			return 1
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func migrate(stdout, stderr io.Writer) int {
	cfg, ok := loadConfig(stderr)
	if !ok {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(stderr, "aicli migrate:", err)
		return 1
	}
	defer st.Close()
	applied, err := store.Migrate(ctx, st)
	if err != nil {
		fmt.Fprintln(stderr, "aicli migrate:", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	for _, v := range applied {
		fmt.Fprintln(stdout, "applied", v)
	}
	return 0
}

func dbKind(url string) string {
	if len(url) >= 8 && (url[:8] == "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// healthcheck probes the local server; images without curl use it.
func healthcheck(stderr io.Writer) int {
	cfg, ok := loadConfig(stderr)
	if !ok {
		return 2
	}
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		fmt.Fprintln(stderr, "aicli healthcheck:", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintln(stderr, "aicli healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "aicli healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
