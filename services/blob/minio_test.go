package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aicode/testutil/miniotest"
)

// newTestMinIO returns a store on its own bucket of the shared MinIO.
func newTestMinIO(t *testing.T, partSize uint64) *MinIO {
	t.Helper()
	m, _ := newStoreOn(t, miniotest.Shared(t), MinIOOptions{PartSize: partSize})
	return m
}

// newStoreOn returns a store with options o on a fresh bucket of srv, and
// the bucket's name.
func newStoreOn(t *testing.T, srv miniotest.Server, o MinIOOptions) (*MinIO, string) {
	t.Helper()
	o.Endpoint, o.AccessKey, o.SecretKey, o.Bucket = srv.Endpoint, srv.AccessKey, srv.SecretKey, srv.BucketName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := NewMinIO(ctx, o)
	if err != nil {
		t.Fatalf("NewMinIO: %v", err)
	}
	return m, o.Bucket
}

func TestMinIOConformance(t *testing.T) {
	conformance(t, func(t *testing.T) Store { return newTestMinIO(t, 0) })
}

func TestMinIOCreatesBucket(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.BucketName(t)
	ctx := context.Background()
	cli := srv.Client(t)
	if ok, err := cli.BucketExists(ctx, bucket); err != nil || ok {
		t.Fatalf("bucket before: %v %v", ok, err)
	}
	o := MinIOOptions{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: bucket}
	m, err := NewMinIO(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := cli.BucketExists(ctx, bucket); err != nil || !ok {
		t.Fatalf("bucket after: %v %v", ok, err)
	}
	if err := m.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := m.Put(ctx, "kept", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	// A second store (another replica) finds the bucket and its objects.
	m2, err := NewMinIO(ctx, o)
	if err != nil {
		t.Fatalf("second NewMinIO: %v", err)
	}
	if got := readAll(t, m2, "kept"); string(got) != "x" {
		t.Fatalf("read %q", got)
	}
	// Ping tells when the bucket went away.
	srv.RemoveBucket(t, bucket)
	if err := m.Ping(ctx); err == nil || !strings.Contains(err.Error(), bucket) {
		t.Fatalf("ping without bucket: %v", err)
	}
}

func TestMinIORefusesBadCredentials(t *testing.T) {
	srv := miniotest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := NewMinIO(ctx, MinIOOptions{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: "wrong-secret-key", Bucket: srv.BucketName(t)})
	if err == nil || errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "wrong-secret-key") {
		t.Fatalf("bad credentials: %v", err)
	}
	t.Logf("bad credentials: %v", err)
}

// A 100 MB object of unknown length streams through a bounded buffer.
func TestMinIOStreamsLargePutInBoundedMemory(t *testing.T) {
	m := newTestMinIO(t, 0)
	ctx := context.Background()
	const size = 100 << 20

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	src := &patternReader{left: size}
	n, err := m.Put(ctx, "big/object", src)
	close(stop)
	wg.Wait()
	if err != nil || n != size {
		t.Fatalf("put: %d %v", n, err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	allocated := after.TotalAlloc - base.TotalAlloc
	t.Logf("100 MB put: heap in use grew by %.1f MiB at peak; %.1f MiB allocated in all", float64(grew)/(1<<20), float64(allocated)/(1<<20))
	// One 16 MiB part buffer plus the client's own; nowhere near the
	// object's size (minio-go's default for unknown sizes is ~512 MiB).
	if grew > 48<<20 {
		t.Errorf("heap in use grew by %d MiB during a 100 MB put", grew>>20)
	}
	// And the part buffer is reused, not allocated per part.
	if allocated > 64<<20 {
		t.Errorf("%d MiB allocated during a 100 MB put", allocated>>20)
	}

	if size, err := m.Stat(ctx, "big/object"); err != nil || size != 100<<20 {
		t.Fatalf("stat: %d %v", size, err)
	}
	rc, err := m.Open(ctx, "big/object")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{left: size}); err != nil {
		t.Fatal(err)
	}
	if string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("object read back differs")
	}
}

// patternReader yields left bytes of a pattern that changes along the
// stream (so a misplaced part shows), without holding them.
type patternReader struct {
	left int64
	off  int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		o := p.off + int64(i)
		b[i] = byte(o ^ o>>20)
	}
	p.off += int64(len(b))
	p.left -= int64(len(b))
	return len(b), nil
}

func TestMinIOPartSize(t *testing.T) {
	srv := miniotest.Shared(t)
	_, err := NewMinIO(context.Background(), MinIOOptions{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: "unused-bucket", PartSize: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "part size") {
		t.Fatalf("1 MiB parts: %v", err)
	}
	// Objects larger than one part are stored in several.
	m := newTestMinIO(t, 5<<20)
	n, err := m.Put(context.Background(), "parts", &patternReader{left: 12 << 20})
	if err != nil || n != 12<<20 {
		t.Fatalf("put: %d %v", n, err)
	}
	rc, err := m.Open(context.Background(), "parts")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := sha256.New()
	io.Copy(got, rc)
	want := sha256.New()
	io.Copy(want, &patternReader{left: 12 << 20})
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("multi-part object read back differs")
	}
}

// When the store goes down, every call fails within a bounded time with an
// error that says so; when it is back, the same store works again.
func TestMinIOFaults(t *testing.T) {
	p := miniotest.StartPrivate(t)
	ctx := context.Background()
	m, err := NewMinIO(ctx, MinIOOptions{Endpoint: p.Endpoint, AccessKey: p.AccessKey, SecretKey: p.SecretKey, Bucket: "faults"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(ctx, "before", strings.NewReader("kept")); err != nil {
		t.Fatal(err)
	}
	// An object being written when the store goes away: the writes fail
	// (at the latest once every part buffer waits on the store), and
	// Abort hands back the store's failure, not a cancellation.
	w, err := m.Create(ctx, "cut-off")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("a"), int(DefaultPartSize)+1)); err != nil {
		t.Fatal(err)
	}

	p.Stop(t)
	chunk := bytes.Repeat([]byte("b"), 1<<20)
	var werr error
	for i := 0; i < 4*int(DefaultPartSize>>20) && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	if werr == nil {
		t.Fatal("writes went on with the store down")
	}
	if err := w.Abort(); !errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) {
		t.Errorf("abort after the store went away: %v (write: %v)", err, werr)
	}
	calls := map[string]func(ctx context.Context) error{
		"put": func(ctx context.Context) error {
			_, err := m.Put(ctx, "during", strings.NewReader("x"))
			return err
		},
		"open": func(ctx context.Context) error {
			rc, err := m.Open(ctx, "before")
			if err == nil {
				rc.Close()
			}
			return err
		},
		"stat": func(ctx context.Context) error {
			_, err := m.Stat(ctx, "before")
			return err
		},
		"delete": func(ctx context.Context) error { return m.Delete(ctx, "before") },
		"ping":   m.Ping,
	}
	for name, call := range calls {
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "object store unreachable: ") {
			t.Errorf("%s with the store down: %v", name, err)
		}
		if took > 10*time.Second {
			t.Errorf("%s took %s to fail", name, took)
		}
		t.Logf("%s failed after %s: %v", name, took.Round(time.Millisecond), err)
	}
	// A caller's deadline bounds it further, and still reads clearly.
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = m.Ping(dctx)
	cancel()
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("ping with a deadline: %v", err)
	}
	// At start, too.
	_, err = NewMinIO(ctx, MinIOOptions{Endpoint: p.Endpoint, AccessKey: p.AccessKey, SecretKey: p.SecretKey, Bucket: "faults"})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewMinIO with the store down: %v", err)
	}

	p.Start(t)
	if err := m.Ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if got := readAll(t, m, "before"); string(got) != "kept" {
		t.Fatalf("object after restart: %q", got)
	}
	if _, err := m.Put(ctx, "after", strings.NewReader("new")); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if got := readAll(t, m, "after"); string(got) != "new" {
		t.Fatalf("read after restart: %q", got)
	}
}
