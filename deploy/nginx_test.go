package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"aicode/services/config"
)

const nginxDir = "docker/nginx"

// nginxSources is every nginx file the images get, TLS example included.
func nginxSources(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(readRepoFile(t, nginxDir+"/nginx.conf"))
	b.WriteString(readRepoFile(t, nginxDir+"/tls.conf.example"))
	entries, err := os.ReadDir(repoPath(t, nginxDir+"/conf.d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b.WriteString(readRepoFile(t, nginxDir+"/conf.d/"+e.Name()))
	}
	return b.String()
}

// location is one location block of aicode.locations.
type location struct {
	pattern string
	re      *regexp.Regexp // nil for exact or prefix locations
	body    string
}

func nginxLocations(t *testing.T) []location {
	t.Helper()
	src := readRepoFile(t, nginxDir+"/conf.d/aicode.locations")
	var out []location
	re := regexp.MustCompile(`(?m)^location\s+(~\*?|=)?\s*(\S+)\s*\{([^}]*)\}`)
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		l := location{pattern: m[2], body: m[3]}
		if strings.HasPrefix(m[1], "~") {
			l.re = regexp.MustCompile(m[2])
		}
		out = append(out, l)
	}
	if len(out) < 4 {
		t.Fatalf("found %d locations in aicode.locations", len(out))
	}
	return out
}

// match returns the location nginx picks for a path: exact, then the
// first matching regex, then the prefix "/".
func match(locs []location, path string) location {
	for _, l := range locs {
		if l.re == nil && l.pattern == path {
			return l
		}
	}
	for _, l := range locs {
		if l.re != nil && l.re.MatchString(path) {
			return l
		}
	}
	for _, l := range locs {
		if l.pattern == "/" {
			return l
		}
	}
	return location{}
}

// appRoute is a route of handlers/routes.go with its parameters filled.
type appRoute struct{ method, path string }

func appRoutes(t *testing.T) []appRoute {
	t.Helper()
	src := readRepoFile(t, "handlers/routes.go")
	var out []appRoute
	re := regexp.MustCompile(`\{Method: (g|p|fiber\.Method\w+), Path: "([^"]+)"`)
	param := regexp.MustCompile(`:[a-z]+`)
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		method := map[string]string{"g": "GET", "p": "POST"}[m[1]]
		if method == "" {
			method = strings.ToUpper(strings.TrimPrefix(m[1], "fiber.Method"))
		}
		out = append(out, appRoute{method, param.ReplaceAllString(strings.TrimSuffix(m[2], "*"), "p1")})
	}
	if len(out) < 30 {
		t.Fatalf("found only %d routes in handlers/routes.go; the pattern is stale", len(out))
	}
	return out
}

func isStreamPath(p string) bool {
	return strings.HasSuffix(p, "/events") || strings.HasSuffix(p, "/stream")
}

func isUploadRoute(r appRoute) bool {
	return r.method == "POST" && strings.Contains(r.path, "upload")
}

func setsDirective(body, directive string) bool {
	return regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(directive)).MatchString(body)
}

// Every route of the app lands in the location made for it: WebSockets
// with the upgrade headers, event streams unbuffered, uploads with the
// app's upload limit; nothing else in those locations.
func TestNginxLocationsMatchRoutes(t *testing.T) {
	locs := nginxLocations(t)
	defaults, err := config.LoadFrom(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	uploadMax := defaults.Files.UploadMaxBytes >> 20
	var ws, sse, uploads int
	for _, r := range appRoutes(t) {
		l := match(locs, r.path)
		upgrade := setsDirective(l.body, "proxy_set_header Upgrade $http_upgrade;") &&
			setsDirective(l.body, "proxy_set_header Connection $connection_upgrade;")
		unbuffered := setsDirective(l.body, "proxy_buffering off;") && setsDirective(l.body, "proxy_read_timeout 1h;")
		switch {
		case strings.HasSuffix(r.path, "/ws"):
			ws++
			if !upgrade || !setsDirective(l.body, "proxy_read_timeout 1h;") {
				t.Errorf("WebSocket %s lands in location %q without upgrade headers and a long timeout", r.path, l.pattern)
			}
		case isStreamPath(r.path):
			sse++
			if !unbuffered || upgrade {
				t.Errorf("event stream %s lands in location %q, which buffers or has a short timeout", r.path, l.pattern)
			}
		case isUploadRoute(r):
			uploads++
			if !setsDirective(l.body, fmt.Sprintf("client_max_body_size %dm;", uploadMax)) || !setsDirective(l.body, "proxy_request_buffering off;") {
				t.Errorf("upload %s lands in location %q without client_max_body_size %dm (AICODE_UPLOAD_MAX_MB) and streaming", r.path, l.pattern, uploadMax)
			}
		default:
			if upgrade || setsDirective(l.body, "proxy_buffering off;") || setsDirective(l.body, "client_max_body_size") {
				t.Errorf("ordinary route %s %s lands in the special location %q", r.method, r.path, l.pattern)
			}
		}
		if l.pattern != "/metrics" && !setsDirective(l.body, "include /etc/nginx/conf.d/aicode.proxy;") {
			t.Errorf("location %q does not include the proxy headers", l.pattern)
		}
	}
	if ws == 0 || sse < 5 {
		t.Errorf("found %d WebSocket and %d event-stream routes; the route pattern is stale", ws, sse)
	}
	if m := match(locs, "/metrics"); !strings.Contains(m.body, "return 404") {
		t.Errorf("/metrics is reachable through nginx (location %q)", m.pattern)
	}
	t.Logf("%d WebSocket, %d event-stream and %d upload routes", ws, sse, uploads)
}

// --- a real nginx with this configuration, in front of a test backend ---

type nginxServer struct {
	addr, tlsAddr string
	certPool      *x509.CertPool
}

// startNginx renders docker/nginx into a temporary prefix (listen
// addresses, the upstream, paths), checks it with nginx -t and runs it.
func startNginx(t *testing.T, backend string, withTLS bool) nginxServer {
	t.Helper()
	bin := lookBinary(t, "AICODE_TEST_NGINX", "nginx", "nginx-light")
	dir := t.TempDir()
	for _, d := range []string{"conf.d", "certs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string) {
		content = strings.ReplaceAll(content, "/etc/nginx/conf.d/", dir+"/conf.d/")
		content = strings.ReplaceAll(content, "/etc/nginx/certs/", dir+"/certs/")
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := nginxServer{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}

	main := readRepoFile(t, nginxDir+"/nginx.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	main = replaceOnce(t, "nginx.conf", main, "user nginx;\n", user)
	main = replaceOnce(t, "nginx.conf", main, "include /etc/nginx/conf.d/*.conf;",
		"include /etc/nginx/conf.d/*.conf;\n"+
			"    client_body_temp_path "+dir+"/tmp/body;\n    proxy_temp_path "+dir+"/tmp/proxy;\n"+
			"    fastcgi_temp_path "+dir+"/tmp/fastcgi;\n    uwsgi_temp_path "+dir+"/tmp/uwsgi;\n    scgi_temp_path "+dir+"/tmp/scgi;")
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		main = replaceOnce(t, "nginx.conf", main, "include /etc/nginx/mime.types;", "")
	}
	write("nginx.conf", main)

	entries, err := os.ReadDir(repoPath(t, nginxDir+"/conf.d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		c := readRepoFile(t, nginxDir+"/conf.d/"+e.Name())
		if e.Name() == "default.conf" {
			c = replaceOnce(t, e.Name(), c, "server app:8080 ", "server "+backend+" ")
			c = replaceOnce(t, e.Name(), c, "listen 80 default_server;", "listen "+srv.addr+" default_server;")
		}
		write("conf.d/"+e.Name(), c)
	}
	if withTLS {
		srv.tlsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		srv.certPool = writeSelfSignedCert(t, filepath.Join(dir, "certs"))
		c := readRepoFile(t, nginxDir+"/tls.conf.example")
		c = replaceOnce(t, "tls.conf.example", c, "listen 443 ssl http2 default_server;", "listen "+srv.tlsAddr+" ssl http2 default_server;")
		write("conf.d/tls.conf", c)
	}

	args := []string{"-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "pid " + dir + "/nginx.pid; daemon off;"}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	var logs lockedBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// Workers inherit the output pipes: never wait for them forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers, then exits.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	})
	waitListening(t, srv.addr, exited, logs.String)
	if withTLS {
		waitListening(t, srv.tlsAddr, exited, logs.String)
	}
	return srv
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeSelfSignedCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "aicode-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fullchain.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// backend stands in for the app: it echoes the request headers it got,
// holds event streams open until released, echoes WebSocket messages and
// counts upload bytes.
type backend struct {
	addr     string
	hits     atomic.Int64
	release  chan struct{}
	upgrader websocket.Upgrader
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{release: make(chan struct{})}
	b.upgrader.CheckOrigin = func(*http.Request) bool { return true }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(b.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	})
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	switch {
	case strings.HasSuffix(r.URL.Path, "/ws"):
		c, err := b.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader answered 400
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(kind, append([]byte("echo:"), msg...)) != nil {
				return
			}
		}
	case isStreamPath(r.URL.Path):
		// No X-Accel-Buffering here: nginx's own configuration must
		// pass the stream through unbuffered.
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: first\ndata: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "event: last\ndata: 2\n\n")
	case strings.Contains(r.URL.Path, "upload"):
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	default:
		json.NewEncoder(w).Encode(map[string]string{
			"host": r.Host, "xff": r.Header.Get("X-Forwarded-For"), "proto": r.Header.Get("X-Forwarded-Proto"),
			"xfhost": r.Header.Get("X-Forwarded-Host"), "rid": r.Header.Get("X-Request-ID"),
			"realip": r.Header.Get("X-Real-IP"), "version": r.Proto,
		})
	}
}

// firstEvent reads an event stream until its first event, with a deadline
// shorter than the backend holds the stream open.
func firstEvent(t *testing.T, client *http.Client, url string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestNginxProxiesTheApp(t *testing.T) {
	be := startBackend(t)
	ng := startNginx(t, be.addr, true)
	base := "http://" + ng.addr
	client := &http.Client{Timeout: 10 * time.Second}

	t.Run("health", func(t *testing.T) {
		resp, err := client.Get(base + "/nginx-health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Errorf("/nginx-health: %d", resp.StatusCode)
		}
	})

	t.Run("metrics not public", func(t *testing.T) {
		before := be.hits.Load()
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || be.hits.Load() != before {
			t.Errorf("/metrics: %d, reached the app: %v", resp.StatusCode, be.hits.Load() != before)
		}
	})

	t.Run("forwarded headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/workspaces?page=2", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]string
		json.NewDecoder(resp.Body).Decode(&got)
		// The client cannot choose its address or scheme; the Host keeps
		// its port for the app's same-origin check.
		if got["xff"] != "127.0.0.1" || got["realip"] != "127.0.0.1" || got["proto"] != "http" ||
			got["host"] != ng.addr || got["xfhost"] != ng.addr || len(got["rid"]) != 32 || got["version"] != "HTTP/1.1" {
			t.Errorf("the app got %v", got)
		}
	})

	t.Run("event streams unbuffered", func(t *testing.T) {
		var n int
		for _, r := range appRoutes(t) {
			if !isStreamPath(r.path) {
				continue
			}
			n++
			ev, err := firstEvent(t, client, base+r.path)
			if err != nil || ev != "event: first" {
				t.Errorf("%s: first event %q, %v (buffered?)", r.path, ev, err)
			}
		}
		if n < 5 {
			t.Errorf("only %d stream routes", n)
		}
	})

	t.Run("terminal websocket", func(t *testing.T) {
		var wsPath string
		for _, r := range appRoutes(t) {
			if strings.HasSuffix(r.path, "/ws") {
				wsPath = r.path
			}
		}
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+ng.addr+wsPath, http.Header{"Origin": {base}})
		if err != nil {
			t.Fatalf("dial %s: %v (%v)", wsPath, err, resp)
		}
		defer c.Close()
		for i := range 3 {
			msg := "ls -la " + strconv.Itoa(i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != "echo:"+msg {
				t.Fatalf("echo %q, %v", got, err)
			}
		}
		// Control: an ordinary location drops the upgrade headers.
		if c2, _, err := websocket.DefaultDialer.Dial("ws://"+ng.addr+"/control/ws", nil); err == nil {
			c2.Close()
			t.Error("control: a WebSocket upgrade went through an ordinary location")
		}
	})

	t.Run("body limits", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 3<<20)
		resp, err := client.Post(base+"/login", "application/x-www-form-urlencoded", bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("3 MiB to /login: %d, want 413 from nginx", resp.StatusCode)
		}
		var upload string
		for _, r := range appRoutes(t) {
			if isUploadRoute(r) {
				upload = r.path
			}
		}
		if upload == "" {
			// The upload routes are not in the route table yet: check
			// the location itself with the path it is written for.
			upload = "/workspaces/p1/files/upload"
		}
		const size = 40 << 20
		resp, err = client.Post(base+upload, "application/octet-stream", io.LimitReader(zeroReader{}, size))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != strconv.Itoa(size) {
			t.Errorf("40 MiB upload to %s: %d %q", upload, resp.StatusCode, got)
		}
	})

	t.Run("tls and http2", func(t *testing.T) {
		h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ng.certPool},
			ForceAttemptHTTP2: true,
		}}
		resp, err := h2.Get("https://" + ng.tlsAddr + "/workspaces")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("served over %s, want HTTP/2", resp.Proto)
		}
		if got["proto"] != "https" || got["host"] != ng.tlsAddr {
			t.Errorf("the app got %v over TLS", got)
		}
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
			t.Errorf("no HSTS over TLS: %q", hsts)
		}
		if ev, err := firstEvent(t, h2, "https://"+ng.tlsAddr+"/fleet/stream"); err != nil || ev != "event: first" {
			t.Errorf("event stream over HTTP/2: %q, %v", ev, err)
		}
		plain, err := client.Get(base + "/workspaces")
		if err != nil {
			t.Fatal(err)
		}
		plain.Body.Close()
		if plain.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS sent over plain HTTP")
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
