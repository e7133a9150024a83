package blob

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"sort"
	"sync"

	"github.com/minio/minio-go/v7"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// partWriter is a multipart upload filled in place. Parts are filled one
// at a time in buffers of the part size; a full part is sent while the
// next fills (uploadThreads buffers in all), each with its CRC32C, which
// the store verifies before keeping it.
type partWriter struct {
	m        *MinIO
	ctx      context.Context
	cancel   context.CancelFunc
	key      string
	uploadID string

	buf  []byte      // the part being filled: len filled, cap the part size
	free chan []byte // buffers not being sent
	crc  hash.Hash32 // of buf's bytes
	num  int         // number of the part being filled
	size int64
	done bool // committed or aborted

	wg    sync.WaitGroup
	mu    sync.Mutex
	parts []minio.CompletePart
	err   error // the first failure of a part
}

// Create starts an object under key; nothing is visible there until
// Commit. The object is encrypted as Put's are.
func (m *MinIO) Create(ctx context.Context, key string) (Writer, error) {
	w, err := m.create(ctx, key)
	if err != nil {
		return nil, err // not a nil *partWriter in an interface
	}
	return w, nil
}

func (m *MinIO) create(ctx context.Context, key string) (*partWriter, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("invalid blob key %q", key)
	}
	id, err := m.core.NewMultipartUpload(ctx, m.bucket, key, minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		ServerSideEncryption: m.sse,
		// Each part then carries a CRC32C the store checks (see upload).
		UserMetadata: map[string]string{"X-Amz-Checksum-Algorithm": "CRC32C"},
	})
	if err != nil {
		return nil, m.fail("put", key, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &partWriter{m: m, ctx: ctx, cancel: cancel, key: key, uploadID: id,
		free: make(chan []byte, uploadThreads), crc: crc32.New(castagnoli), num: 1}
	w.buf = make([]byte, 0, m.partSize)
	for i := 1; i < uploadThreads; i++ {
		w.free <- nil // allocated when first needed: small objects need one
	}
	return w, nil
}

func (w *partWriter) Avail() []byte {
	if w.failed() != nil || len(w.buf) == cap(w.buf) && w.flush() != nil {
		return nil
	}
	return w.buf[len(w.buf):cap(w.buf)]
}

func (w *partWriter) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
		free := w.buf[len(w.buf):cap(w.buf)]
		k := min(len(p), len(free))
		if &free[0] != &p[0] { // not read in place (Avail)
			copy(free, p[:k])
		}
		// Checksummed as it comes, while the bytes are still in cache.
		_, _ = w.crc.Write(free[:k])
		w.buf = w.buf[:len(w.buf)+k]
		w.size += int64(k)
		p = p[k:]
		n += k
	}
	return n, nil
}

// ReadFrom reads r straight into the part buffers.
func (w *partWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		free := w.Avail()
		if free == nil {
			return total, w.failed()
		}
		n, err := r.Read(free[:min(len(free), readChunk)])
		if n > 0 {
			if _, werr := w.Write(free[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// readChunk bounds one read into a part buffer, so the checksum that
// follows finds the bytes in cache.
const readChunk = 256 << 10

// flush sends the full part and takes a free buffer for the next one,
// waiting while every buffer is on the wire.
func (w *partWriter) flush() error {
	buf, sum, num := w.buf, w.crc.Sum32(), w.num
	w.num++
	w.crc.Reset()
	w.wg.Add(1)
	go w.upload(num, buf, sum)
	select {
	case b := <-w.free:
		if b == nil {
			b = make([]byte, 0, w.m.partSize)
		}
		w.buf = b[:0]
		return nil
	case <-w.ctx.Done():
		w.buf = nil
		if err := w.failed(); err != nil {
			return err
		}
		return w.ctx.Err()
	}
}

func (w *partWriter) upload(num int, buf []byte, sum uint32) {
	defer w.wg.Done()
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], sum)
	h := http.Header{}
	h.Set("X-Amz-Checksum-Crc32c", base64.StdEncoding.EncodeToString(c[:]))
	// The payload is not hashed into the signature (UNSIGNED-PAYLOAD):
	// the part's CRC32C, which the store verifies, refuses corruption on
	// the way. Signing the payload cost a SHA-256 pass on both sides (a
	// third of a snapshot's time here) and protects little: over plain
	// HTTP downloads are not signed by S3 anyway, so an on-path attacker
	// is stopped only by TLS.
	part, err := w.m.core.PutObjectPart(w.ctx, w.m.bucket, w.key, w.uploadID, num, bytes.NewReader(buf), int64(len(buf)),
		minio.PutObjectPartOptions{CustomHeader: h, DisableContentSha256: true})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = w.m.fail("put", w.key, err)
		}
		w.cancel()
		return
	}
	w.parts = append(w.parts, minio.CompletePart{PartNumber: num, ETag: part.ETag, ChecksumCRC32C: part.ChecksumCRC32C})
	w.free <- buf
}

func (w *partWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.ctx.Err() != nil {
		return fmt.Errorf("put %s: %w", w.key, context.Cause(w.ctx))
	}
	return w.err
}

func (w *partWriter) Commit() (int64, error) {
	if w.done {
		return 0, errors.New("blob: object already committed or aborted")
	}
	if err := w.failed(); err != nil {
		_ = w.Abort()
		return 0, err
	}
	// The last part, which may be short (or empty, for an empty object).
	if len(w.buf) > 0 || w.num == 1 {
		w.wg.Add(1)
		w.upload(w.num, w.buf, w.crc.Sum32())
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		_ = w.Abort()
		return 0, err
	}
	w.done = true
	defer w.cancel()
	sort.Slice(w.parts, func(i, j int) bool { return w.parts[i].PartNumber < w.parts[j].PartNumber })
	_, err := w.m.core.CompleteMultipartUpload(w.ctx, w.m.bucket, w.key, w.uploadID, w.parts,
		minio.PutObjectOptions{ServerSideEncryption: w.m.sse})
	if err != nil {
		w.abortUpload()
		return 0, w.m.fail("put", w.key, err)
	}
	return w.size, nil
}

func (w *partWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.mu.Lock()
	err := w.err // before the cancel below fails the parts in flight
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	w.abortUpload()
	return err
}

// abortUpload drops the parts the store holds, with a context of its own:
// the writer's may be the one that ended.
func (w *partWriter) abortUpload() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_ = w.m.core.AbortMultipartUpload(ctx, w.m.bucket, w.key, w.uploadID)
}
