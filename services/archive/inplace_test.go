package archive_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"aicode/services/archive"
)

// inPlaceBuf is an output that takes bytes in place, in "parts" of a small
// size so that reads and headers straddle part ends. It counts the bytes
// it had to copy.
type inPlaceBuf struct {
	parts  [][]byte
	cur    []byte
	size   int
	copied int
	failAt int // fail writes once this many bytes are in (0: never)
	n      int
}

func (b *inPlaceBuf) Avail() []byte {
	if b.failAt > 0 && b.n >= b.failAt {
		return nil
	}
	if len(b.cur) == cap(b.cur) {
		if b.cur != nil {
			b.parts = append(b.parts, b.cur)
		}
		b.cur = make([]byte, 0, b.size)
	}
	return b.cur[len(b.cur):cap(b.cur)]
}

func (b *inPlaceBuf) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if b.failAt > 0 && b.n >= b.failAt {
			return n, errors.New("store went away")
		}
		free := b.Avail()
		k := min(len(p), len(free))
		if &free[0] != &p[0] {
			copy(free, p[:k])
			b.copied += k
		}
		b.cur = b.cur[:len(b.cur)+k]
		b.n += k
		p, n = p[k:], n+k
	}
	return n, nil
}

func (b *inPlaceBuf) bytes() []byte {
	return append(bytes.Join(b.parts, nil), b.cur...)
}

// An output that takes bytes in place gets the very archive a plain
// writer gets, and the files' contents are read into it rather than
// copied: only headers and padding are.
func TestWriteInPlace(t *testing.T) {
	dir := t.TempDir()
	buildTree(t, dir, 5<<20+123)

	var plain bytes.Buffer
	want, err := archive.Write(context.Background(), &plain, openRoot(t, dir), archive.WriteOptions{})
	must(t, err)

	out := &inPlaceBuf{size: 1<<20 + 7}
	got, err := archive.Write(context.Background(), out, openRoot(t, dir), archive.WriteOptions{})
	must(t, err)
	if got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if !bytes.Equal(out.bytes(), plain.Bytes()) {
		t.Fatalf("the in-place archive (%d bytes) differs from the plain one (%d bytes)", len(out.bytes()), plain.Len())
	}
	// Headers are 512 bytes per entry (two for the long name) plus the
	// padding of each file and the end; the contents, over 8 MiB, are not
	// copied.
	if limit := int(want.Entries()+4) * 1024; out.copied > limit {
		t.Errorf("%d bytes copied into the output, want at most %d (headers and padding)", out.copied, limit)
	}
	t.Logf("archive %d bytes, %d copied", plain.Len(), out.copied)

	// The archive extracts to the same tree.
	dst := filepath.Join(t.TempDir(), "x")
	must(t, os.MkdirAll(dst, 0o755))
	if _, err := archive.Extract(context.Background(), bytes.NewReader(out.bytes()), openRoot(t, dst), archive.ExtractOptions{Chown: true}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, snapshotTree(t, dir, false), snapshotTree(t, dst, false))

	// An output that fails mid-file stops the archive with its error.
	bad := &inPlaceBuf{size: 64 << 10, failAt: 2 << 20}
	if _, err := archive.Write(context.Background(), bad, openRoot(t, dir), archive.WriteOptions{}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("store went away")) {
		t.Fatalf("failing output: %v", err)
	}
}
