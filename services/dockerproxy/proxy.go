// Package dockerproxy is the Docker API proxy of the compose deployments
// (`aicli docker-proxy`): the app reaches the engine only through it, and it
// forwards only the requests services/engine makes, by method and path.
// Everything else is answered 403 without reaching the engine.
//
// Why not an off-the-shelf socket proxy: HAProxy 2.4 and later drop the
// upgrade of a request that has a body, which POST /exec/{id}/start has
// ("unable to upgrade to tcp, received 200"); nginx ends an upgraded
// connection when one side half-closes, which is how the app tells a task's
// CLI that its input is complete; and their env-flag families are coarse
// (containers with POST also opens archive, export, attach and update).
package dockerproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Rule allows one kind of request.
type Rule struct {
	Method string
	Path   *regexp.Regexp
	// Why the app makes it (documentation, and the test's coverage check).
	Why string
}

const (
	version = `^(/v[0-9]+\.[0-9]+)?`
	id      = `[A-Za-z0-9][A-Za-z0-9_.-]*`
	execID  = `[A-Za-z0-9]+`
)

func rule(method, path, why string) Rule {
	return Rule{Method: method, Path: regexp.MustCompile(version + path + `$`), Why: why}
}

// Rules is every request the app makes (services/engine).
var Rules = []Rule{
	rule("HEAD", `/_ping`, "reachability"),
	rule("GET", `/_ping`, "reachability"),
	rule("GET", `/version`, "API version"),
	rule("GET", `/info`, "host figures on the fleet page"),
	rule("GET", `/events`, "container events, the source of truth"),
	rule("GET", `/images/[A-Za-z0-9][A-Za-z0-9_.:/@-]*/json`, "is the workspace image there"),
	rule("GET", `/containers/json`, "reconcile: list managed containers"),
	rule("POST", `/containers/create`, "create a workspace container"),
	rule("GET", `/containers/`+id+`/json`, "inspect"),
	rule("POST", `/containers/`+id+`/(start|stop|restart)`, "lifecycle"),
	rule("DELETE", `/containers/`+id, "remove"),
	rule("GET", `/containers/`+id+`/logs`, "Logs tab"),
	rule("GET", `/containers/`+id+`/stats`, "Monitor tab, fleet, history"),
	rule("POST", `/containers/`+id+`/exec`, "terminals, tasks, git: create an exec"),
	rule("POST", `/exec/`+execID+`/start`, "attach to an exec (raw stream)"),
	rule("POST", `/exec/`+execID+`/resize`, "terminal size"),
	rule("GET", `/exec/`+execID+`/json`, "exit code"),
}

var (
	createPath    = regexp.MustCompile(version + `/containers/create$`)
	execStartPath = regexp.MustCompile(version + `/exec/` + execID + `/start$`)
)

// MaxCreateBody bounds a container create request; the app's are a few KiB.
const MaxCreateBody = 256 << 10

// Proxy forwards allowed requests to the engine's unix socket.
type Proxy struct {
	socket string
	log    *slog.Logger
	rp     *httputil.ReverseProxy
}

// New returns a proxy to the engine listening on the unix socket path.
func New(socket string, log *slog.Logger) *Proxy {
	p := &Proxy{socket: socket, log: log}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    16,
		IdleConnTimeout: 30 * time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "docker"
			pr.Out.Host = "docker"
		},
		Transport: tr,
		// Event, log and stats streams go out as they come.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("docker proxy: engine request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			http.Error(w, "the Docker engine is unreachable", http.StatusBadGateway)
		},
	}
	return p
}

// Allowed reports whether the proxy forwards a request, and why not.
func Allowed(method string, u *url.URL) (bool, string) {
	// Paths are matched as decoded; a path that needed escaping, or that
	// could mean something else once cleaned, is refused outright.
	if u.RawPath != "" || strings.Contains(u.Path, "//") || strings.Contains(u.Path, "/.") {
		return false, "path not in canonical form"
	}
	for _, r := range Rules {
		if r.Method == method && r.Path.MatchString(u.Path) {
			return true, ""
		}
	}
	return false, "not an API call the app makes"
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ok, why := Allowed(r.Method, r.URL); !ok {
		p.deny(w, r, why)
		return
	}
	if r.Method == http.MethodPost && createPath.MatchString(r.URL.Path) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCreateBody))
		if err != nil {
			p.log.Warn("docker proxy: create body refused", "err", err)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if why := CheckCreate(body); why != "" {
			p.deny(w, r, why)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	if r.Method == http.MethodPost && execStartPath.MatchString(r.URL.Path) {
		p.hijack(w, r)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *Proxy) deny(w http.ResponseWriter, r *http.Request, why string) {
	p.log.Warn("docker proxy: refused", "method", r.Method, "path", r.URL.Path, "why", why)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	json.NewEncoder(w).Encode(map[string]string{"message": "refused by the AICode Docker API proxy: " + why})
}

// createRequest is what CheckCreate looks at in a container create body.
// It is decoded exactly as the engine decodes it (encoding/json: keys
// case-insensitive, escapes resolved, the last duplicate wins), so no
// spelling gets past the check that the engine would understand.
type createRequest struct {
	HostConfig struct {
		Privileged   bool
		CapAdd       []string
		Devices      []json.RawMessage
		Binds        []string
		PidMode      string
		IpcMode      string
		UsernsMode   string
		UTSMode      string
		CgroupnsMode string
		SecurityOpt  []string
		Mounts       []struct{ Type string }
	}
}

// CheckCreate refuses a container the app never creates: privileged,
// with capabilities added back, devices, host namespaces, unconfined
// security profiles, or anything but bind mounts. It returns why, or "".
func CheckCreate(body []byte) string {
	var c createRequest
	if err := json.Unmarshal(body, &c); err != nil {
		return "create body is not valid JSON"
	}
	h := c.HostConfig
	switch {
	case h.Privileged:
		return "privileged containers"
	case len(h.CapAdd) > 0:
		return "added capabilities"
	case len(h.Devices) > 0:
		return "devices"
	case len(h.Binds) > 0:
		return "Binds (the app uses Mounts)"
	}
	for name, mode := range map[string]string{"PidMode": h.PidMode, "IpcMode": h.IpcMode, "UsernsMode": h.UsernsMode, "UTSMode": h.UTSMode, "CgroupnsMode": h.CgroupnsMode} {
		if strings.EqualFold(mode, "host") {
			return "the host's " + name
		}
	}
	for _, o := range h.SecurityOpt {
		if strings.Contains(strings.ToLower(o), "unconfined") {
			return "unconfined security profiles"
		}
	}
	for _, m := range h.Mounts {
		if !strings.EqualFold(m.Type, "bind") {
			return "mounts other than binds"
		}
	}
	return ""
}

// hijack forwards an exec attach: after the engine's answer the connection
// carries the process's raw stdin and stdout. Each direction is copied on
// its own and its end is passed on as a half-close, so a process whose
// input ends (EOF) can still send the rest of its output.
func (p *Proxy) hijack(w http.ResponseWriter, r *http.Request) {
	engine, err := net.DialTimeout("unix", p.socket, 5*time.Second)
	if err != nil {
		p.rp.ErrorHandler(w, r, err)
		return
	}
	defer engine.Close()
	out := r.Clone(r.Context())
	out.URL = &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	out.Host = "docker"
	out.RequestURI = ""
	if err := out.Write(engine); err != nil {
		p.rp.ErrorHandler(w, r, err)
		return
	}
	er := bufio.NewReader(engine)
	resp, err := http.ReadResponse(er, out)
	if err != nil {
		p.rp.ErrorHandler(w, r, err)
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		// An error answer (no such exec, already started): pass it on.
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	client, cbuf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer client.Close()
	// The engine's status line and headers, then the raw stream.
	if err := writeHead(client, resp); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> engine (stdin)
		defer wg.Done()
		io.Copy(engine, io.MultiReader(io.LimitReader(cbuf, int64(cbuf.Reader.Buffered())), client))
		closeWrite(engine)
	}()
	go func() { // engine -> client (output)
		defer wg.Done()
		io.Copy(client, er)
		closeWrite(client)
	}()
	wg.Wait()
}

func writeHead(w io.Writer, resp *http.Response) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\n", resp.Status)
	for k, vs := range resp.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func closeWrite(c net.Conn) {
	type halfCloser interface{ CloseWrite() error }
	if hc, ok := c.(halfCloser); ok {
		hc.CloseWrite()
		return
	}
	c.Close()
}

// Serve runs the proxy on ln until ctx ends.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
