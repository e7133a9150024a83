package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("line\n"), 100000)
	n, err := l.Put(ctx, "tasks/abc/transcript.jsonl", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("put: %d, %v", n, err)
	}
	rc, err := l.Open(ctx, "tasks/abc/transcript.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	// Replacing is whole: no temporary files stay behind.
	if _, err := l.Put(ctx, "tasks/abc/transcript.jsonl", strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "tasks", "abc"))
	if len(ents) != 1 {
		t.Fatalf("files after replace: %v", ents)
	}
	if err := l.Delete(ctx, "tasks/abc/transcript.jsonl"); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "tasks/abc/transcript.jsonl"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := l.Open(ctx, "tasks/abc/transcript.jsonl"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
}

func TestKeysStayInside(t *testing.T) {
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "A", "a/.hidden", "a\\b", "a/b/", strings.Repeat("a", 600)} {
		if _, err := l.Put(context.Background(), k, strings.NewReader("x")); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

func TestPutStopsWithContext(t *testing.T) {
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Put(ctx, "x", strings.NewReader("data")); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if _, err := l.Open(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed put left an object: %v", err)
	}
}
