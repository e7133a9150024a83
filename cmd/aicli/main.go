// Command aicli runs AICode Manager: `aicli serve` (the default) starts the
// web server; `aicli migrate` applies database migrations and exits.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"aicode/app"
	"aicode/services/audit"
	"aicode/services/auth"
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
  aicli docker-proxy [-listen :2375] [-socket /var/run/docker.sock] [-check URL]
                    the Docker API proxy of the compose files: forwards only the
                    engine calls the app makes
  aicli reset-password USER
                    set USER's password (read from stdin), re-enable the account and
                    end its sessions: the way back in when no admin can sign in
  aicli version     print the version
  aicli help        show this help

Configuration comes from environment variables; see .env.example.
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	case "docker-proxy":
		return dockerProxy(args[1:], stderr)
	case "reset-password":
		if len(args) != 2 {
			fmt.Fprint(stderr, "usage: aicli reset-password USER  (new password on stdin)\n")
			return 2
		}
		return resetPassword(args[1], stdin, stdout, stderr)
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

// resetPassword is the operator's way back in; the password comes from
// stdin so it never appears in the process list or shell history.
func resetPassword(username string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig(stderr)
	if !ok {
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "aicli reset-password: read password:", err)
		return 1
	}
	password := strings.TrimRight(line, "\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(stderr, "aicli reset-password:", err)
		return 1
	}
	defer st.Close()
	if _, err := store.Migrate(ctx, st); err != nil {
		fmt.Fprintln(stderr, "aicli reset-password:", err)
		return 1
	}
	log := app.NewLogger(cfg, os.Stderr)
	accounts := auth.NewService(st, audit.NewRecorder(st, log), log, auth.Options{SessionTTL: cfg.SessionTTL, Limiter: auth.NewMemoryLimiter(time.Minute)})
	u, err := accounts.OperatorResetPassword(ctx, username, password)
	if err != nil {
		fmt.Fprintln(stderr, "aicli reset-password:", err)
		return 1
	}
	fmt.Fprintf(stdout, "password of %s (%s) reset; the account is enabled and its sessions ended\n", u.Username, u.Role)
	return 0
}
