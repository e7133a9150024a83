package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"aicode/testutil/miniotest"
	"aicode/testutil/netproxy"
)

// TestMinIORefusesCorruptedUpload: uploads are not hashed into the
// signature, so the per-part CRC32C is what catches a body altered on the
// way. One byte changed in a 12 MiB object must fail the Put and leave
// no object; the same bytes through the same proxy, unaltered, store fine.
func TestMinIORefusesCorruptedUpload(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.BucketName(t)
	proxy := netproxy.StartTCP(t, srv.Endpoint)
	// Every 0xFF byte a client sends becomes 0xFE. HTTP headers never
	// hold 0xFF, so only bodies change and every signature still matches.
	var altered atomic.Int64
	corrupt := func(b []byte) {
		for i, c := range b {
			if c == 0xFF {
				b[i] = 0xFE
				altered.Add(1)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := NewMinIO(ctx, MinIOOptions{Endpoint: proxy.Addr().String(), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: bucket, PartSize: minPartSize})
	if err != nil {
		t.Fatalf("NewMinIO: %v", err)
	}
	data := make([]byte, 12<<20) // three parts of 5 MiB at most
	data[7<<20+123] = 0xFF       // in the second part

	proxy.SetRewrite(corrupt)
	if _, err := m.Put(ctx, "integrity/bad", bytes.NewReader(data)); err == nil {
		t.Fatal("Put of an upload altered on the way succeeded")
	} else {
		t.Logf("altered upload refused: %v", err)
	}
	if altered.Load() == 0 {
		t.Fatal("the proxy altered nothing: the test proves nothing")
	}
	if _, err := m.Stat(ctx, "integrity/bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after a refused upload: %v, want ErrNotFound", err)
	}

	proxy.SetRewrite(nil)
	if _, err := m.Put(ctx, "integrity/good", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put through the proxy, unaltered: %v", err)
	}
	rc, err := m.Open(ctx, "integrity/good")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (equal %v): %v", len(got), bytes.Equal(got, data), err)
	}
}
