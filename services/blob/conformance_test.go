package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// conformance is the behaviour every Store has, run against each of them.
func conformance(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		data := bytes.Repeat([]byte("line\n"), 100000)
		n, err := s.Put(ctx, "tasks/abc/transcript.jsonl", bytes.NewReader(data))
		if err != nil || n != int64(len(data)) {
			t.Fatalf("put: %d, %v", n, err)
		}
		if got := readAll(t, s, "tasks/abc/transcript.jsonl"); !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, want %d", len(got), len(data))
		}
		if size, err := s.Stat(ctx, "tasks/abc/transcript.jsonl"); err != nil || size != int64(len(data)) {
			t.Fatalf("stat: %d, %v", size, err)
		}
		// Replacing is whole.
		if _, err := s.Put(ctx, "tasks/abc/transcript.jsonl", strings.NewReader("new")); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, s, "tasks/abc/transcript.jsonl"); string(got) != "new" {
			t.Fatalf("after replace: %q", got)
		}
		if err := s.Delete(ctx, "tasks/abc/transcript.jsonl"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "tasks/abc/transcript.jsonl"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := s.Open(ctx, "tasks/abc/transcript.jsonl"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open deleted: %v", err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		if _, err := s.Open(ctx, "never/written"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open: %v", err)
		}
		if _, err := s.Stat(ctx, "never/written"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat: %v", err)
		}
		if err := s.Delete(ctx, "never/written"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		// A "directory" of other objects is no object.
		if _, err := s.Put(ctx, "dir/inner", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "dir"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat of a prefix: %v", err)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		n, err := s.Put(ctx, "empty", strings.NewReader(""))
		if err != nil || n != 0 {
			t.Fatalf("put: %d %v", n, err)
		}
		if got := readAll(t, s, "empty"); len(got) != 0 {
			t.Fatalf("read %q", got)
		}
		if size, err := s.Stat(ctx, "empty"); err != nil || size != 0 {
			t.Fatalf("stat: %d %v", size, err)
		}
	})

	t.Run("KeysStayInside", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "A", "a/.hidden", "a\\b", "a/b/", strings.Repeat("a", 600)} {
			if _, err := s.Put(ctx, k, strings.NewReader("x")); err == nil {
				t.Errorf("put key %q accepted", k)
			}
			if _, err := s.Open(ctx, k); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("open key %q: %v", k, err)
			}
			if err := s.Delete(ctx, k); err == nil {
				t.Errorf("delete key %q accepted", k)
			}
		}
	})

	t.Run("PutStopsWithContext", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "x", strings.NewReader("data")); err == nil {
			t.Fatal("put with a cancelled context succeeded")
		}
		if _, err := s.Open(ctx, "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a failed put left an object: %v", err)
		}
	})

	t.Run("FailedPutKeepsOld", func(t *testing.T) {
		s := open(t)
		if _, err := s.Put(ctx, "keep", strings.NewReader("old")); err != nil {
			t.Fatal(err)
		}
		// Several MiB, then the source breaks.
		r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("n"), 6<<20)), errReader{errors.New("source broke")})
		if _, err := s.Put(ctx, "keep", r); err == nil {
			t.Fatal("put from a broken source succeeded")
		}
		if got := readAll(t, s, "keep"); string(got) != "old" {
			t.Fatalf("after a failed replace: %d bytes", len(got))
		}
	})

	t.Run("CreateCommitAbort", func(t *testing.T) {
		s := open(t)
		if _, err := s.Put(ctx, "doc", strings.NewReader("old")); err != nil {
			t.Fatal(err)
		}
		// Written piece by piece, in and over part-sized amounts, and
		// through the in-place buffer when the writer has one.
		var want bytes.Buffer
		w, err := s.Create(ctx, "doc")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*73_000)
			if ip, ok := w.(InPlace); ok && i%2 == 0 {
				free := ip.Avail()
				k := copy(free, chunk)
				chunk = free[:k]
			}
			want.Write(chunk)
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			if i == 5 {
				// Nothing shows before Commit.
				if got := readAll(t, s, "doc"); string(got) != "old" {
					t.Fatalf("before commit: %d bytes", len(got))
				}
			}
		}
		n, err := w.Commit()
		if err != nil || n != int64(want.Len()) {
			t.Fatalf("commit: %d %v, want %d bytes", n, err, want.Len())
		}
		if got := readAll(t, s, "doc"); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("read back %d bytes, want %d", len(got), want.Len())
		}
		w.Abort() // after Commit: nothing happens
		if got := readAll(t, s, "doc"); !bytes.Equal(got, want.Bytes()) {
			t.Fatal("Abort after Commit changed the object")
		}
		if _, err := w.Commit(); err == nil {
			t.Error("a second Commit succeeded")
		}

		// Aborted: the object stays as it was.
		w, err = s.Create(ctx, "doc")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte("x"), 7<<20)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Errorf("abort with the store well: %v", err)
		}
		if got := readAll(t, s, "doc"); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("after abort: %d bytes", len(got))
		}

		// Nothing written: an empty object.
		w, err = s.Create(ctx, "empty-doc")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.Commit(); err != nil || n != 0 {
			t.Fatalf("empty commit: %d %v", n, err)
		}
		if size, err := s.Stat(ctx, "empty-doc"); err != nil || size != 0 {
			t.Fatalf("empty object: %d %v", size, err)
		}

		// A cancelled context stops the writer and keeps the old object.
		cctx, cancel := context.WithCancel(ctx)
		w, err = s.Create(cctx, "doc")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := w.Write(bytes.Repeat([]byte("y"), 9<<20)); err == nil {
			if _, err := w.Commit(); err == nil {
				t.Fatal("a writer whose context ended committed")
			}
		} else {
			w.Abort()
		}
		if got := readAll(t, s, "doc"); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("after cancel: %d bytes", len(got))
		}
	})

	t.Run("ReadersSeeWholeObjects", func(t *testing.T) {
		s := open(t)
		a := bytes.Repeat([]byte("a"), 1<<20)
		b := bytes.Repeat([]byte("b"), 1<<20+7)
		if _, err := s.Put(ctx, "flip", bytes.NewReader(a)); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					rc, err := s.Open(ctx, "flip")
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
						errs <- fmt.Errorf("read a mixture of %d bytes", len(got))
						return
					}
				}
			}()
		}
		deadline := time.Now().Add(time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			src := a
			if i%2 == 0 {
				src = b
			}
			if _, err := s.Put(ctx, "flip", bytes.NewReader(src)); err != nil {
				t.Error(err)
				break
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func readAll(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestLocalConformance(t *testing.T) {
	conformance(t, func(t *testing.T) Store {
		l, err := NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
