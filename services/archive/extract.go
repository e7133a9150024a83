package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Errors callers match with errors.Is.
var (
	// ErrUnsafe: an entry would land outside the target, go through a
	// link, or is a kind of file that is never extracted.
	ErrUnsafe = errors.New("unsafe archive entry")
	// ErrTooLarge: the files' total size passes the limit.
	ErrTooLarge = errors.New("the archive is larger than the limit")
	// ErrTooMany: the archive has more entries than the limit.
	ErrTooMany = errors.New("the archive has more entries than the limit")
)

// ExtractOptions bound an extraction.
type ExtractOptions struct {
	// MaxBytes caps the total size of the regular files (0: no cap).
	MaxBytes int64
	// MaxEntries caps the number of entries (0: no cap).
	MaxEntries int64
	// Chown restores each entry's numeric owner; it takes effect only
	// when the process runs as root.
	Chown bool
	// Owner, when UID >= 0, is given to every entry instead (as root).
	Owner *Owner
}

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// unsafeError names the entry refused and why.
type unsafeError struct{ name, why string }

func (e *unsafeError) Error() string {
	return fmt.Sprintf("unsafe archive entry %q: %s", e.name, e.why)
}
func (e *unsafeError) Unwrap() error { return ErrUnsafe }

// Extract unpacks a tar archive (gzipped or not; detected) into root.
// Entries with absolute names, ".." elements, or a path through a symlink
// (whether it was in the tree before or came from the archive) are
// refused, as are devices and pipes; links are created as links, never
// written through. Permissions (without setuid/setgid), modification
// times and, with Chown as root, owners are restored. An error stops the
// extraction; what was written stays for the caller to remove (extract
// into a fresh directory).
func Extract(ctx context.Context, r io.Reader, root *os.Root, opts ExtractOptions) (Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("read archive: %w", err)
		}
		defer gz.Close()
		src = gz
	}
	tr := tar.NewReader(ctxReader{ctx, src})
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	x := &extractor{root: root, opts: opts, buf: *bp, st: &st, dirs: map[string]bool{".": true},
		chown: os.Geteuid() == 0 && (opts.Chown || opts.Owner != nil)}
	var n int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		n++
		if opts.MaxEntries > 0 && n > opts.MaxEntries {
			return st, fmt.Errorf("%w (%d entries)", ErrTooMany, opts.MaxEntries)
		}
		if err := x.entry(h, tr); err != nil {
			return st, err
		}
	}
	if err := x.finishDirs(); err != nil {
		return st, err
	}
	return st, nil
}

type dirMeta struct {
	rel   string
	mode  fs.FileMode
	mtime time.Time
	uid   int
	gid   int
}

type extractor struct {
	root  *os.Root
	opts  ExtractOptions
	buf   []byte
	st    *Stats
	chown bool
	// dirs are the directories known to be real directories (made or
	// checked by this extraction), so parents are checked once.
	dirs map[string]bool
	// meta is applied to directories at the end: a read-only directory
	// must stay writable until its last child is in, and adding children
	// changes its modification time.
	meta []dirMeta
}

// CleanName validates an entry name and returns it as a slash path
// relative to the target ("." for the target itself).
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", &unsafeError{name, "empty name"}
	case strings.ContainsRune(name, 0):
		return "", &unsafeError{name, "NUL in name"}
	case strings.HasPrefix(name, "/"):
		return "", &unsafeError{name, "absolute path"}
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", &unsafeError{name, `".." in path`}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

func (x *extractor) entry(h *tar.Header, tr io.Reader) error {
	rel, err := CleanName(h.Name)
	if err != nil {
		return err
	}
	mode := fs.FileMode(h.Mode).Perm()
	if h.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return x.mkdir(rel, h, mode)
	case tar.TypeReg, tar.TypeGNUSparse:
		if rel == "." {
			return &unsafeError{h.Name, "a file in place of the target directory"}
		}
		return x.file(rel, h, mode, tr)
	case tar.TypeSymlink:
		if rel == "." {
			return &unsafeError{h.Name, "a link in place of the target directory"}
		}
		return x.symlink(rel, h)
	case tar.TypeLink:
		if rel == "." {
			return &unsafeError{h.Name, "a link in place of the target directory"}
		}
		return x.hardlink(rel, h)
	case tar.TypeChar, tar.TypeBlock:
		return &unsafeError{h.Name, "device files are not extracted"}
	case tar.TypeFifo:
		return &unsafeError{h.Name, "named pipes are not extracted"}
	}
	return &unsafeError{h.Name, fmt.Sprintf("unsupported entry type %q", h.Typeflag)}
}

// parents makes sure every directory above rel is a real directory,
// creating missing ones; a symlink on the way is refused.
func (x *extractor) parents(rel string) error {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return nil
	}
	return x.ensureDir(rel[:i], rel)
}

func (x *extractor) ensureDir(dir, entry string) error {
	if x.dirs[dir] {
		return nil
	}
	if err := x.parents(dir); err != nil {
		return err
	}
	fi, err := x.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("extract %s: %w", entry, err)
		}
	case err != nil:
		return fmt.Errorf("extract %s: %w", entry, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return &unsafeError{entry, "its path goes through a symlink"}
	case !fi.IsDir():
		return &unsafeError{entry, "its parent is not a directory"}
	}
	x.dirs[dir] = true
	return nil
}

// clear removes whatever non-directory is at rel, so the new entry is
// created fresh (O_EXCL) and never written through an existing link.
func (x *extractor) clear(rel, name string) error {
	fi, err := x.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	if fi.IsDir() {
		return &unsafeError{name, "a directory is in the way"}
	}
	if err := x.root.Remove(rel); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return nil
}

func (x *extractor) mkdir(rel string, h *tar.Header, mode fs.FileMode) error {
	if rel != "." {
		if err := x.parents(rel); err != nil {
			return err
		}
		fi, err := x.root.Lstat(rel)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Owner-writable until the end, whatever the archive says.
			if err := x.root.Mkdir(rel, 0o700); err != nil {
				return fmt.Errorf("extract %s: %w", h.Name, err)
			}
		case err != nil:
			return fmt.Errorf("extract %s: %w", h.Name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return &unsafeError{h.Name, "a symlink is in the way of a directory"}
		case !fi.IsDir():
			if err := x.clear(rel, h.Name); err != nil {
				return err
			}
			if err := x.root.Mkdir(rel, 0o700); err != nil {
				return fmt.Errorf("extract %s: %w", h.Name, err)
			}
		}
		x.dirs[rel] = true
	}
	x.st.Dirs++
	x.meta = append(x.meta, dirMeta{rel: rel, mode: mode, mtime: h.ModTime, uid: h.Uid, gid: h.Gid})
	return nil
}

func (x *extractor) file(rel string, h *tar.Header, mode fs.FileMode, tr io.Reader) error {
	if h.Size < 0 {
		return &unsafeError{h.Name, "negative size"}
	}
	if x.opts.MaxBytes > 0 && x.st.Bytes+h.Size > x.opts.MaxBytes {
		return fmt.Errorf("%w (%d bytes) at %q", ErrTooLarge, x.opts.MaxBytes, h.Name)
	}
	if err := x.parents(rel); err != nil {
		return err
	}
	if err := x.clear(rel, h.Name); err != nil {
		return err
	}
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	n, err := io.CopyBuffer(f, tr, x.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	x.st.Bytes += n
	x.st.Files++
	if err := x.root.Chmod(rel, mode); err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	if err := x.owner(rel, h); err != nil {
		return err
	}
	if err := x.root.Chtimes(rel, h.ModTime, h.ModTime); err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	return nil
}

func (x *extractor) symlink(rel string, h *tar.Header) error {
	if h.Linkname == "" || strings.ContainsRune(h.Linkname, 0) {
		return &unsafeError{h.Name, "bad link target"}
	}
	if err := x.parents(rel); err != nil {
		return err
	}
	if err := x.clear(rel, h.Name); err != nil {
		return err
	}
	// The target is only data: nothing below follows it, and later
	// entries through it are refused.
	if err := x.root.Symlink(h.Linkname, rel); err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	delete(x.dirs, rel)
	x.st.Symlinks++
	return x.owner(rel, h)
}

func (x *extractor) hardlink(rel string, h *tar.Header) error {
	target, err := CleanName(h.Linkname)
	if err != nil || target == "." {
		return &unsafeError{h.Name, "bad hard link target"}
	}
	if err := x.parents(target); err != nil {
		return err
	}
	fi, err := x.root.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() {
		return &unsafeError{h.Name, "a hard link must point to a regular file extracted before it"}
	}
	if err := x.parents(rel); err != nil {
		return err
	}
	if err := x.clear(rel, h.Name); err != nil {
		return err
	}
	if err := x.root.Link(target, rel); err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	x.st.Links++
	return nil
}

func (x *extractor) owner(rel string, h *tar.Header) error {
	if !x.chown {
		return nil
	}
	uid, gid := h.Uid, h.Gid
	if o := x.opts.Owner; o != nil {
		uid, gid = o.UID, o.GID
	}
	if err := x.root.Lchown(rel, uid, gid); err != nil {
		return fmt.Errorf("extract %s: %w", h.Name, err)
	}
	return nil
}

func (x *extractor) finishDirs() error {
	for i := len(x.meta) - 1; i >= 0; i-- {
		m := x.meta[i]
		if fi, err := x.root.Lstat(m.rel); err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := x.root.Chmod(m.rel, m.mode); err != nil {
			return fmt.Errorf("extract %s: %w", m.rel, err)
		}
		if err := x.owner(m.rel, &tar.Header{Name: m.rel, Uid: m.uid, Gid: m.gid}); err != nil {
			return err
		}
		if err := x.root.Chtimes(m.rel, m.mtime, m.mtime); err != nil {
			return fmt.Errorf("extract %s: %w", m.rel, err)
		}
	}
	return nil
}
