package blob

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"aicode/testutil/miniotest"
)

func TestMinIOEncryptedConformance(t *testing.T) {
	p := miniotest.StartPrivate(t)
	conformance(t, func(t *testing.T) Store {
		m, _ := newStoreOn(t, p.Server, MinIOOptions{KMSKey: p.KMSKey})
		return m
	})
}

// With a KMS key, what lands on the store's disk is ciphertext; without
// one it is the plain bytes (which shows the scan can find them).
func TestMinIOEncryptsAtRest(t *testing.T) {
	p := miniotest.StartPrivate(t)
	ctx := context.Background()
	marker := []byte("aicode at-rest marker: sk-live-0123456789abcdef\n")
	data := bytes.Repeat(marker, (3<<20)/len(marker)) // several parts' worth of blocks
	small := []byte("small inline object " + string(marker))

	for _, c := range []struct {
		name, key string
		encrypted bool
	}{{"plain", "", false}, {"kms", p.KMSKey, true}} {
		t.Run(c.name, func(t *testing.T) {
			m, bucket := newStoreOn(t, p.Server, MinIOOptions{KMSKey: c.key})
			if _, err := m.Put(ctx, "snapshots/w1/s1.tar", bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Put(ctx, "tasks/t1/transcript.jsonl", bytes.NewReader(small)); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, m, "snapshots/w1/s1.tar"); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(data))
			}
			if got := readAll(t, m, "tasks/t1/transcript.jsonl"); !bytes.Equal(got, small) {
				t.Fatalf("small object read back as %q", got)
			}
			info, err := p.Client(t).StatObject(ctx, bucket, "snapshots/w1/s1.tar", minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sse := info.Metadata.Get("X-Amz-Server-Side-Encryption")
			if c.encrypted != (sse == "aws:kms") {
				t.Errorf("server-side encryption header %q", sse)
			}
			found := 0
			dir := filepath.Join(p.DataDir(), bucket)
			err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if bytes.Contains(b, marker) {
					found++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.encrypted && found > 0 {
				t.Errorf("plain text found in %d files under %s", found, dir)
			}
			if !c.encrypted && found < 2 {
				t.Errorf("plain text found in %d files under %s; want both objects'", found, dir)
			}
		})
	}
}

// A key the store's KMS does not hold stops the start with a message that
// names the key and the store's reason.
func TestMinIOUnknownKMSKey(t *testing.T) {
	p := miniotest.StartPrivate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := NewMinIO(ctx, MinIOOptions{Endpoint: p.Endpoint, AccessKey: p.AccessKey, SecretKey: p.SecretKey,
		Bucket: p.BucketName(t), KMSKey: "no-such-key"})
	if err == nil {
		t.Fatal("a key the KMS does not hold was accepted")
	}
	if !errors.Is(err, ErrKMS) || !strings.Contains(err.Error(), `"no-such-key"`) || !strings.Contains(err.Error(), "KMS") || strings.Contains(err.Error(), p.SecretKey) {
		t.Fatalf("error: %v", err)
	}
	t.Logf("unknown key: %v", err)
}
