// Package blob keeps objects too large or too many for the database: task
// transcripts and diffs. The local directory is the zero-config default;
// an object store can stand in for it behind the same interface.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrNotFound: no object has that key.
var ErrNotFound = errors.New("blob not found")

// Store holds objects by key.
type Store interface {
	// Put stores r's bytes under key, replacing any object there; readers
	// see either the old object or the whole new one.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Create starts an object to be written piece by piece (a snapshot's
	// archive as it is made); nothing is visible under key until Commit.
	Create(ctx context.Context, key string) (Writer, error)
	// Open reads an object.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// Stat returns an object's size (ErrNotFound when there is none).
	Stat(ctx context.Context, key string) (int64, error)
}

// Writer is an object being written: its bytes go to the store as they
// come, in bounded memory. Commit makes the object visible whole; Abort,
// or a failed Commit, leaves any earlier object under the key as it was.
// A Writer is used by one goroutine at a time.
type Writer interface {
	io.Writer
	// Commit finishes the object and returns its size.
	Commit() (int64, error)
	// Abort discards what was written. It returns the store's failure
	// that stopped the writer, if one did (so a caller whose own write
	// failed can tell the store's fault from its own). After Commit it
	// does nothing.
	Abort() error
}

// InPlace is offered by writers that take bytes read straight into their
// own buffer: Avail returns the free space at the write position (never
// empty while the writer works), and a Write of a prefix of that same
// memory keeps the bytes where they are instead of copying them.
type InPlace interface {
	Avail() []byte
}

// keyRe keeps keys to safe relative paths: no "..", no absolute paths, no
// characters a file system or an object store treats specially.
var keyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$`)

// ValidKey reports whether key may name an object.
func ValidKey(key string) bool {
	return len(key) <= 512 && keyRe.MatchString(key) && !strings.Contains(key, "..")
}

// Local stores objects as files under a directory.
type Local struct{ root string }

// NewLocal uses dir (created if missing).
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob directory: %w", err)
	}
	return &Local{root: abs}, nil
}

func (l *Local) path(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("invalid blob key %q", key)
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file and renames it into place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	w, err := l.Create(ctx, key)
	if err != nil {
		return 0, err
	}
	// The writer stops at the context's end.
	if _, err := io.Copy(w, r); err != nil {
		if werr := w.Abort(); werr != nil {
			return 0, werr
		}
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return w.Commit()
}

// Create writes the object to a temporary file beside its own, renamed
// into place on Commit.
func (l *Local) Create(ctx context.Context, key string) (Writer, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", key, err)
	}
	return &fileWriter{ctx: ctx, f: f, key: key, path: p}, nil
}

// fileWriter is an object of Local being written.
type fileWriter struct {
	ctx       context.Context
	f         *os.File
	key, path string
	n         int64
	done      bool
	err       error // the first write that failed
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("put %s: %w", w.key, err)
	}
	return n, err
}

func (w *fileWriter) Commit() (int64, error) {
	if w.done {
		return 0, errors.New("blob: object already committed or aborted")
	}
	w.done = true
	err := w.ctx.Err()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		return 0, fmt.Errorf("put %s: %w", w.key, err)
	}
	return w.n, nil
}

func (w *fileWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	_ = os.Remove(w.f.Name())
	return w.err
}

// Open opens the object's file.
func (l *Local) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	return f, nil
}

// Stat returns the size of the object's file.
func (l *Local) Stat(ctx context.Context, key string) (int64, error) {
	p, err := l.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir() {
		return 0, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", key, err)
	}
	return fi.Size(), nil
}

// Delete removes the object's file.
func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
