// Package archive streams directory trees as tar archives and extracts
// them again, safely. Every path is opened through an os.Root, so neither a
// symlink nor ".." inside the tree can lead a read or a write outside it;
// file contents are copied through one fixed buffer, never held whole in
// memory.
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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// bufSize is the copy buffer: large enough that a big file moves in few
// system calls, small enough that memory stays flat whatever the tree holds.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// WriteOptions shape an archive.
type WriteOptions struct {
	// Gzip compresses the stream at GzipLevel (default gzip.BestSpeed:
	// level 1 keeps most of plain tar's throughput and still shrinks
	// source trees several times; see bench/snapshot_test.go).
	Gzip      bool
	GzipLevel int
	// Prefix is put before every entry name ("project/"); empty writes
	// the tree's own root as "./".
	Prefix string
	// Skip leaves out an entry (for a directory, its whole subtree); rel
	// is the slash-separated path inside the tree.
	Skip func(rel string, fi fs.FileInfo) bool
}

// Stats count what an archive held.
type Stats struct {
	Files    int64
	Dirs     int64
	Symlinks int64
	Links    int64
	// Skipped: sockets, pipes and devices, which are not archived, and
	// files that vanished while the tree was read.
	Skipped int64
	// Bytes is the total size of the regular files' contents.
	Bytes int64
}

// Entries is the number of entries written or extracted.
func (s Stats) Entries() int64 { return s.Files + s.Dirs + s.Symlinks + s.Links }

// Write streams the tree under root as a tar archive (gzipped with
// opts.Gzip) to w. Symlinks are archived as links, never followed;
// regular files, directories, permissions, modification times (to the
// second) and numeric owners are kept. A file that changes while it is
// read is archived with the size it had when opened: a grown file is cut,
// a shrunk one padded with zeros, as tar does for live trees.
func Write(ctx context.Context, w io.Writer, root *os.Root, opts WriteOptions) (Stats, error) {
	var st Stats
	out := w
	var gz *gzip.Writer
	if opts.Gzip {
		lvl := opts.GzipLevel
		if lvl == 0 {
			lvl = gzip.BestSpeed
		}
		var err error
		if gz, err = gzip.NewWriterLevel(w, lvl); err != nil {
			return st, fmt.Errorf("gzip: %w", err)
		}
		out = gz
	}
	// Headers are 512-byte writes; buffering them spares a pipe or socket
	// one round trip per small file. A writer that takes bytes in place
	// (an upload's part buffer) is memory already: files are read straight
	// into it, with no copy in between.
	var bw *bufio.Writer
	var tw *tar.Writer
	inPlace, _ := out.(inPlace)
	if inPlace != nil {
		tw = tar.NewWriter(out)
	} else {
		bw = bufio.NewWriterSize(out, 64<<10)
		tw = tar.NewWriter(bw)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	wr := &writer{ctx: ctx, root: root, tw: tw, buf: *bp, opts: opts, st: &st, inPlace: inPlace}
	fi, err := root.Lstat(".")
	if err != nil {
		return st, fmt.Errorf("read tree: %w", err)
	}
	if err := wr.dir(".", fi); err != nil {
		return st, err
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("write archive: %w", err)
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return st, fmt.Errorf("write archive: %w", err)
		}
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return st, fmt.Errorf("write archive: %w", err)
		}
	}
	return st, nil
}

type writer struct {
	ctx  context.Context
	root *os.Root
	tw   *tar.Writer
	buf  []byte
	opts WriteOptions
	st   *Stats
	// inPlace is the output when it takes bytes read into its own buffer
	// (blob.InPlace; nil otherwise).
	inPlace inPlace
}

// inPlace is blob.InPlace: Avail is the free space at the output's write
// position, and writing a prefix of it keeps the bytes where they are.
type inPlace interface {
	Avail() []byte
}

// name is the entry name of rel in the archive.
func (w *writer) name(rel string, dir bool) string {
	n := rel
	if rel == "." {
		n = ""
	}
	n = w.opts.Prefix + n
	if dir {
		if n == "" {
			return "./"
		}
		if !strings.HasSuffix(n, "/") {
			n += "/"
		}
	}
	return n
}

func (w *writer) header(typ byte, rel string, fi fs.FileInfo) *tar.Header {
	uid, gid := owner(fi)
	return &tar.Header{
		Typeflag: typ,
		Name:     w.name(rel, typ == tar.TypeDir),
		Mode:     tarMode(fi.Mode()),
		Uid:      uid,
		Gid:      gid,
		// Whole seconds keep every header plain USTAR (no PAX record per
		// file), as tar itself archives them.
		ModTime: fi.ModTime().Truncate(time.Second),
	}
}

func (w *writer) dir(rel string, fi fs.FileInfo) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if err := w.tw.WriteHeader(w.header(tar.TypeDir, rel, fi)); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	w.st.Dirs++
	f, err := w.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && rel != "." {
			// Removed since it was listed: the archive shows it empty.
			return nil
		}
		return fmt.Errorf("read %s: %w", rel, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		child := e.Name()
		if rel != "." {
			child = rel + "/" + e.Name()
		}
		fi, err := e.Info() // lstat: a symlink stays a symlink
		if errors.Is(err, fs.ErrNotExist) {
			w.st.Skipped++
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", child, err)
		}
		if w.opts.Skip != nil && w.opts.Skip(child, fi) {
			continue
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			err = w.dir(child, fi)
		case m.IsRegular():
			err = w.file(child)
		case m&fs.ModeSymlink != 0:
			err = w.symlink(child, fi)
		default:
			w.st.Skipped++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) file(rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	// O_NOFOLLOW: a file swapped for a link since it was listed is not
	// read through the link.
	f, err := w.root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			w.st.Skipped++
			return nil
		}
		return fmt.Errorf("read %s: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		w.st.Skipped++
		return nil
	}
	h := w.header(tar.TypeReg, rel, fi)
	h.Size = fi.Size()
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	var n int64
	if w.inPlace != nil {
		n, err = w.copyInPlace(f, h.Size)
	} else {
		n, err = io.CopyBuffer(w.tw, io.LimitReader(ctxReader{w.ctx, f}, h.Size), w.buf)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", rel, err)
	}
	if n < h.Size {
		// Shrunk while read: pad to the size the header promised.
		if err := zeros(w.tw, h.Size-n, w.buf); err != nil {
			return fmt.Errorf("archive %s: %w", rel, err)
		}
	}
	w.st.Files++
	w.st.Bytes += h.Size
	return nil
}

// copyInPlace reads up to size bytes of f straight into the output's
// buffer and passes them through the tar writer (which counts them) to
// the output, which keeps them where they were read.
func (w *writer) copyInPlace(f io.Reader, size int64) (int64, error) {
	var n int64
	for n < size {
		if err := w.ctx.Err(); err != nil {
			return n, err
		}
		dst := w.inPlace.Avail()
		if len(dst) == 0 {
			// The output failed; a plain write through the buffer
			// brings its error back.
			dst = w.buf
		}
		k := min(int64(len(dst)), int64(len(w.buf)), size-n)
		m, err := f.Read(dst[:k])
		if m > 0 {
			if _, werr := w.tw.Write(dst[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (w *writer) symlink(rel string, fi fs.FileInfo) error {
	target, err := w.root.Readlink(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.st.Skipped++
			return nil
		}
		return fmt.Errorf("read link %s: %w", rel, err)
	}
	h := w.header(tar.TypeSymlink, rel, fi)
	h.Linkname = target
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	w.st.Symlinks++
	return nil
}

func zeros(w io.Writer, n int64, buf []byte) error {
	clear(buf)
	for n > 0 {
		k := int64(len(buf))
		if n < k {
			k = n
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// tarMode converts Go's file mode to tar's permission and special bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// owner returns a file's numeric owner (0, 0 where the platform has none).
func owner(fi fs.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
