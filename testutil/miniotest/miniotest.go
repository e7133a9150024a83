// Package miniotest gives tests their own bucket on the shared MinIO named
// by AICODE_TEST_MINIO_URL, removed (with its objects) when the test ends,
// and starts private MinIO servers for fault tests (AICODE_TEST_MINIO_BIN).
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Env names the shared server: http://user:password@host:port.
const Env = "AICODE_TEST_MINIO_URL"

// BinEnv names the minio binary used to start private servers.
const BinEnv = "AICODE_TEST_MINIO_BIN"

// Server is where a MinIO answers and how to sign in to it.
type Server struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
}

// Shared returns the shared server. It is required: a missing variable
// fails the test rather than skipping it.
func Shared(t testing.TB) Server {
	t.Helper()
	raw := os.Getenv(Env)
	if raw == "" {
		t.Fatalf("%s is not set; the object store tests need a MinIO server, e.g.\n"+
			"  export %s='http://aicode:aicode-minio-secret@127.0.0.1:9100'\n"+
			"(each test creates and removes its own bucket)", Env, Env)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User == nil {
		t.Fatalf("%s must look like http://user:password@host:port, got %q", Env, raw)
	}
	pw, _ := u.User.Password()
	return Server{Endpoint: u.Host, AccessKey: u.User.Username(), SecretKey: pw}
}

// Client is a plain minio-go client of s, for checks and clean-up.
func (s Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	cli, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// BucketName returns a fresh bucket name (not yet created) that is removed
// with everything in it when the test ends.
func (s Server) BucketName(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "aicode-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { s.RemoveBucket(t, name) })
	return name
}

// RemoveBucket deletes a bucket and its objects (and unfinished uploads);
// a missing bucket is fine.
func (s Server) RemoveBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := s.Client(t)
	ok, err := cli.BucketExists(ctx, name)
	if err != nil {
		t.Errorf("clean up bucket %s: %v", name, err)
		return
	}
	if !ok {
		return
	}
	// ForceDelete is MinIO's: objects and unfinished uploads go with it.
	if err := cli.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
		t.Errorf("remove bucket %s: %v", name, err)
	}
}

// Private is a MinIO server of the test's own, on a free loopback port
// and a temporary directory, which the test may stop and start again. It
// has a KMS (MinIO's static key, random per server) holding one key,
// KMSKey, so objects can be stored encrypted (SSE-KMS).
type Private struct {
	Server
	KMSKey   string
	kmsKey   string // base64 of the 32 key bytes: never logged
	bin, dir string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartPrivate starts a private server and waits until it serves. It is
// stopped when the test ends.
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		t.Fatalf("%s is not set; fault tests start their own MinIO, e.g.\n"+
			"  export %s=$(go env GOPATH)/bin/minio   # go install github.com/minio/minio@latest", BinEnv, BinEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v", BinEnv, bin, err)
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	p := &Private{
		Server: Server{Endpoint: "127.0.0.1:" + freePort(t), AccessKey: "miniotest", SecretKey: "miniotest-secret-key"},
		KMSKey: "miniotest-key",
		kmsKey: base64.StdEncoding.EncodeToString(key[:]),
		bin:    bin,
		dir:    t.TempDir(),
	}
	p.Start(t)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Start (re)starts the server on its address and data directory.
func (p *Private) Start(t testing.TB) {
	t.Helper()
	if p.cmd != nil {
		t.Fatal("miniotest: server already running")
	}
	console := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(p.bin, "server", "--quiet", "--address", p.Endpoint, "--console-address", console, p.DataDir())
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+p.AccessKey,
		"MINIO_ROOT_PASSWORD="+p.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_KMS_SECRET_KEY="+p.KMSKey+":"+p.kmsKey,
	)
	logf, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("minio-%d.log", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start minio: %v", err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	cli := p.Client(t)
	for {
		// Ready by its health check is not yet ready for S3 calls
		// ("Server not initialized"): wait for a signed call to work.
		resp, err := hc.Get("http://" + p.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cli.ListBuckets(ctx)
				cancel()
				if err == nil {
					return
				}
			}
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(logf.Name())
			p.cmd = nil
			t.Fatalf("minio exited at start:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("minio did not get ready within 30s:\n%s", b)
		}
	}
}

// DataDir is where the server keeps its objects.
func (p *Private) DataDir() string { return filepath.Join(p.dir, "data") }

// Stop ends the server (gracefully, then by force) and waits until its
// port is closed (idempotent).
func (p *Private) Stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// freePort asks the kernel for a loopback port that is free now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	return port
}
