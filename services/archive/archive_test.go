package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aicode/services/archive"
)

// entry is what the round trip must keep of one path.
type entry struct {
	kind   string
	mode   fs.FileMode
	mtime  int64
	uid    int
	gid    int
	size   int64
	sum    [32]byte
	target string
}

// snapshotTree reads every path under dir (without following links).
func snapshotTree(t *testing.T, dir string, withDirTimes bool) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), mtime: fi.ModTime().Unix(), uid: int(st.Uid), gid: int(st.Gid)}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind = "link"
			e.target, _ = os.Readlink(p)
			e.mtime = 0 // link times are not restored
		case fi.IsDir():
			e.kind = "dir"
			if !withDirTimes {
				e.mtime = 0
			}
		default:
			e.kind = "file"
			e.size = fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			f.Close()
			copy(e.sum[:], h.Sum(nil))
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t *testing.T, want, got map[string]entry) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		g, ok := got[n]
		if !ok {
			t.Errorf("%s: missing after extraction", n)
			continue
		}
		if g != want[n] {
			t.Errorf("%s:\n got  %+v\n want %+v", n, g, want[n])
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: extracted but not in the source", n)
		}
	}
}

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeRandom writes n bytes of incompressible data quickly.
func writeRandom(t *testing.T, p string, n int64, seed uint64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	if _, err := io.Copy(f, io.LimitReader(rng, n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildTree makes a tree with every kind of entry the archive keeps.
func buildTree(t *testing.T, dir string, large int64) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "src/deep/er/still"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("# hello\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "src/deep/er/still/leaf.go"), []byte("package leaf\n"), 0o640))
	long := strings.Repeat("n", 120) // past USTAR's 100-byte name field
	must(t, os.WriteFile(filepath.Join(dir, "src/deep", long), []byte("long name"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "src/ünïcode name.txt"), []byte("utf-8"), 0o644))
	writeRandom(t, filepath.Join(dir, "src/blob.bin"), 3<<20+17, 1)
	if large > 0 {
		writeRandom(t, filepath.Join(dir, "large.bin"), large, 2)
	}
	must(t, os.Symlink("src/deep/er/still/leaf.go", filepath.Join(dir, "rel-link")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link")))
	must(t, os.Symlink("../../outside", filepath.Join(dir, "src/escaping-link")))
	must(t, os.Symlink("does-not-exist", filepath.Join(dir, "dangling")))
	must(t, os.Symlink("src", filepath.Join(dir, "dir-link")))
	must(t, os.MkdirAll(filepath.Join(dir, "ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "ro/inside"), []byte("locked"), 0o444))
	must(t, os.Chmod(filepath.Join(dir, "ro"), 0o555))
	must(t, os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "sticky"), 0o1777))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(dir, "secret"), 1234, 5678))
		must(t, os.Lchown(filepath.Join(dir, "src"), 1000, 1000))
		must(t, os.Lchown(filepath.Join(dir, "rel-link"), 4321, 8765))
	}
	// Distinct, whole-second times, set last (directories deepest first).
	var paths []string
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	base := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	for i := len(paths) - 1; i >= 0; i-- {
		if fi, _ := os.Lstat(paths[i]); fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		ts := base.Add(time.Duration(i) * time.Hour)
		must(t, os.Chtimes(paths[i], ts, ts))
	}
}

// memPeak samples the heap in use while fn runs and returns the peak
// growth over the level before.
func memPeak(fn func()) (uint64, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	p := peak.Load()
	if p < before {
		return 0, before
	}
	return p - before, before
}

func TestRoundTripLarge(t *testing.T) {
	const large = 200 << 20
	src := filepath.Join(t.TempDir(), "src")
	dst := filepath.Join(t.TempDir(), "dst")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.MkdirAll(dst, 0o755))
	buildTree(t, src, large)
	want := snapshotTree(t, src, true)

	var wst, xst archive.Stats
	var werr, xerr error
	var streamed atomic.Int64
	growth, _ := memPeak(func() {
		pr, pw := io.Pipe()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			wst, werr = archive.Write(t.Context(), countWriter{pw, &streamed}, openRoot(t, src), archive.WriteOptions{})
			pw.CloseWithError(werr)
		}()
		xst, xerr = archive.Extract(t.Context(), pr, openRoot(t, dst), archive.ExtractOptions{Chown: true, MaxBytes: 1 << 30, MaxEntries: 1000})
		pr.CloseWithError(xerr)
		wg.Wait()
	})
	if werr != nil || xerr != nil {
		t.Fatalf("write: %v, extract: %v", werr, xerr)
	}
	if streamed.Load() < large {
		t.Fatalf("only %d bytes streamed", streamed.Load())
	}
	t.Logf("streamed %d MiB; heap in use grew by at most %.1f MiB; stats %+v", streamed.Load()>>20, float64(growth)/(1<<20), wst)
	if growth > 32<<20 {
		t.Errorf("heap in use grew by %d MiB while archiving a %d MiB file: the archive is not streamed", growth>>20, large>>20)
	}
	if wst.Files != xst.Files || wst.Symlinks != xst.Symlinks || wst.Dirs != xst.Dirs || wst.Bytes != xst.Bytes {
		t.Errorf("stats differ: wrote %+v, extracted %+v", wst, xst)
	}
	if wst.Symlinks != 5 || wst.Files != 10 {
		t.Errorf("stats %+v: want 10 files and 5 links", wst)
	}
	got := snapshotTree(t, dst, true)
	if os.Geteuid() != 0 {
		// Owners are only restored as root; compare the rest.
		for k, e := range want {
			e.uid, e.gid = got[k].uid, got[k].gid
			want[k] = e
		}
	}
	compareTrees(t, want, got)
	// Nothing was written through the links.
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dst), "outside")); err == nil {
		t.Error("a file appeared outside the target")
	}
}

func TestRoundTripGzipPrefix(t *testing.T) {
	src := t.TempDir()
	buildTree(t, src, 0)
	var buf bytes.Buffer
	st, err := archive.Write(t.Context(), &buf, openRoot(t, src), archive.WriteOptions{Gzip: true, Prefix: "proj/"})
	must(t, err)
	if b := buf.Bytes(); len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatal("not gzip")
	}
	if int64(buf.Len()) >= st.Bytes+int64(st.Entries())*512 {
		t.Errorf("gzip did not shrink the archive: %d bytes for %d of content", buf.Len(), st.Bytes)
	}
	dst := t.TempDir()
	_, err = archive.Extract(t.Context(), &buf, openRoot(t, dst), archive.ExtractOptions{Chown: true})
	must(t, err)
	want := snapshotTree(t, src, false)
	got := snapshotTree(t, filepath.Join(dst, "proj"), false)
	compareTrees(t, want, got)
}

// tarOf builds an archive from headers (a body for regular files).
func tarOf(t *testing.T, entries ...any) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(entries); i++ {
		h := entries[i].(*tar.Header)
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte(entries[i+1].(string))
			h.Size = int64(len(body))
			i++
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(h))
		if body != nil {
			_, err := tw.Write(body)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return &buf
}

func reg(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name} }
func link(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}
}

func TestExtractSafety(t *testing.T) {
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T, outside string) *bytes.Buffer
		// prepare runs in the target before extraction.
		prepare func(t *testing.T, target, outside string)
		opts    archive.ExtractOptions
		want    error
	}{
		{name: "dot dot", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, reg("../evil"), "x")
		}},
		{name: "dot dot inside", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, reg("a/b/../../../evil"), "x")
		}},
		{name: "absolute", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, reg(filepath.Join(o, "evil")), "x")
		}},
		{name: "through a symlink from the archive", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, link("l", o), reg("l/evil"), "x")
		}},
		{name: "through a relative symlink from the archive", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeDir, Name: "d/"}, link("d/up", "../.."), reg("d/up/evil"), "x")
		}},
		{name: "through a symlink inside the target", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, link("in", "sub"), &tar.Header{Typeflag: tar.TypeDir, Name: "sub/"}, reg("in/file"), "x")
		}},
		{name: "through a symlink already there", want: archive.ErrUnsafe,
			prepare: func(t *testing.T, target, o string) { must(t, os.Symlink(o, filepath.Join(target, "pre"))) },
			archive: func(t *testing.T, o string) *bytes.Buffer { return tarOf(t, reg("pre/evil"), "x") }},
		{name: "directory through a symlink", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, link("l", o), &tar.Header{Typeflag: tar.TypeDir, Name: "l/newdir/"})
		}},
		{name: "hard link out", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../outside-file"})
		}},
		{name: "hard link through a symlink", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, link("l", o), &tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "l/keep"})
		}},
		{name: "char device", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3})
		}},
		{name: "block device", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8})
		}},
		{name: "fifo", want: archive.ErrUnsafe, archive: func(t *testing.T, o string) *bytes.Buffer {
			return tarOf(t, &tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"})
		}},
		{name: "too large", want: archive.ErrTooLarge, opts: archive.ExtractOptions{MaxBytes: 10},
			archive: func(t *testing.T, o string) *bytes.Buffer { return tarOf(t, reg("a"), "123456", reg("b"), "123456") }},
		{name: "too many", want: archive.ErrTooMany, opts: archive.ExtractOptions{MaxEntries: 2},
			archive: func(t *testing.T, o string) *bytes.Buffer { return tarOf(t, reg("a"), "", reg("b"), "", reg("c"), "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			target := filepath.Join(base, "target")
			outside := filepath.Join(base, "outside")
			must(t, os.Mkdir(target, 0o755))
			must(t, os.Mkdir(outside, 0o755))
			must(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("original"), 0o644))
			must(t, os.WriteFile(filepath.Join(base, "outside-file"), []byte("original"), 0o644))
			if tc.prepare != nil {
				tc.prepare(t, target, outside)
			}
			_, err := archive.Extract(t.Context(), tc.archive(t, outside), openRoot(t, target), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// Nothing outside the target changed.
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				t.Errorf("outside now holds %d entries", len(ents))
			}
			for _, p := range []string{filepath.Join(outside, "keep"), filepath.Join(base, "outside-file")} {
				if b, _ := os.ReadFile(p); string(b) != "original" {
					t.Errorf("%s changed to %q", p, b)
				}
			}
			if ents, _ := os.ReadDir(base); len(ents) != 3 {
				t.Errorf("the parent now holds %d entries", len(ents))
			}
		})
	}
}

// A regular file in the archive replaces a symlink of the same name (from
// the archive or already there) instead of writing through it.
func TestExtractReplacesLinks(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "target")
	must(t, os.Mkdir(target, 0o755))
	victim := filepath.Join(base, "victim")
	must(t, os.WriteFile(victim, []byte("original"), 0o644))
	must(t, os.Symlink(victim, filepath.Join(target, "pre")))
	_, err := archive.Extract(t.Context(), tarOf(t, link("s", victim), reg("s"), "new", reg("pre"), "new too"),
		openRoot(t, target), archive.ExtractOptions{})
	must(t, err)
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Fatalf("written through a link: %q", b)
	}
	for _, n := range []string{"s", "pre"} {
		fi, err := os.Lstat(filepath.Join(target, n))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: want a regular file, got %v %v", n, fi, err)
		}
	}
}

func TestExtractCancelled(t *testing.T) {
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big"), 64<<20, 3)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	go func() {
		_, err := archive.Write(t.Context(), pw, openRoot(t, src), archive.WriteOptions{})
		pw.CloseWithError(err)
	}()
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := archive.Extract(ctx, io.TeeReader(pr, slowWriter{}), openRoot(t, t.TempDir()), archive.ExtractOptions{})
	pr.CloseWithError(errors.New("done"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"./": ".", "a/b/": "a/b", "./a//b": "a/b", "a/./b": "a/b"} {
		got, err := archive.CleanName(in)
		if err != nil || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/x", "..", "a/../..", "a/..", "x\x00y"} {
		if _, err := archive.CleanName(bad); !errors.Is(err, archive.ErrUnsafe) {
			t.Errorf("CleanName(%q): %v, want ErrUnsafe", bad, err)
		}
	}
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type slowWriter struct{}

func (slowWriter) Write(p []byte) (int, error) { time.Sleep(time.Millisecond); return len(p), nil }
