package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// ErrUnavailable: the object store could not be reached (down, wrong
// address, network). The message names the operation and the cause.
var ErrUnavailable = errors.New("object store unreachable")

// ErrKMS: the store refused to encrypt with the configured KMS key.
var ErrKMS = errors.New("encryption refused")

// DefaultPartSize is the part size of streamed uploads when none is set.
const DefaultPartSize = 16 << 20

// minPartSize is S3's smallest part (all but the last).
const minPartSize = 5 << 20

// Timeouts of the object store client. A request to a store that is down
// fails after a few quick retries rather than minio-go's default ten.
const (
	dialTimeout           = 5 * time.Second
	responseHeaderTimeout = time.Minute
	maxRetries            = 3
	// initWait bounds how long NewMinIO waits for a store that is still
	// starting up.
	initWait = 15 * time.Second
)

// MinIOOptions configure a MinIO (or other S3-compatible) store.
type MinIOOptions struct {
	// Endpoint is host:port, without scheme.
	Endpoint, AccessKey, SecretKey, Bucket, Region string
	UseSSL                                         bool
	// PartSize bounds the memory of one upload: objects are streamed in
	// parts of this size, uploadThreads at a time (0: DefaultPartSize; at
	// least 5 MiB).
	PartSize uint64
	// KMSKey names a key of the store's KMS. Every object is then written
	// with SSE-KMS: the store encrypts it at rest under a data key sealed
	// by this one, and decrypts it for readers. Empty: no encryption.
	KMSKey string
}

// uploadThreads parts of one upload are in memory at once: one is filled
// from the source while the other is on the wire, which is where a
// snapshot's time goes. Memory per upload is uploadThreads × PartSize.
const uploadThreads = 2

// abortTimeout bounds dropping a failed upload's parts.
const abortTimeout = 30 * time.Second

// MinIO stores objects in one bucket of an S3-compatible object store.
// Keys are the same as Local's; an object is replaced as a whole (S3
// makes a completed upload visible at once), so readers see the old object
// or the whole new one.
type MinIO struct {
	cli      *minio.Client
	core     minio.Core
	bucket   string
	endpoint string
	partSize uint64
	// sse is the encryption every Put asks for (nil: none).
	sse encrypt.ServerSide
}

// NewMinIO connects to the store and creates the bucket when it is
// missing. It fails when the store cannot be reached or refuses the
// credentials.
func NewMinIO(ctx context.Context, o MinIOOptions) (*MinIO, error) {
	if o.Endpoint == "" || o.Bucket == "" {
		return nil, errors.New("object store: endpoint and bucket are required")
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < minPartSize {
		return nil, fmt.Errorf("object store: part size %d is below the 5 MiB S3 allows", o.PartSize)
	}
	tr, err := minio.DefaultTransport(o.UseSSL)
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	dial := (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return bodyConn{c}, nil
	}
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	cli, err := minio.New(o.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:     o.UseSSL,
		Region:     o.Region,
		Transport:  tr,
		MaxRetries: maxRetries,
		// Lets minio-go send a CRC32C of every part, which the server
		// checks before keeping it (see Put).
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", o.Endpoint, err)
	}
	m := &MinIO{cli: cli, core: minio.Core{Client: cli}, bucket: o.Bucket, endpoint: o.Endpoint, partSize: o.PartSize}
	if o.KMSKey != "" {
		if m.sse, err = encrypt.NewSSEKMS(o.KMSKey, nil); err != nil {
			return nil, fmt.Errorf("object store: KMS key %q: %w", o.KMSKey, err)
		}
	}
	if err := m.ensureBucket(ctx, o.Region); err != nil {
		return nil, err
	}
	if m.sse != nil {
		if err := m.probeKMS(ctx, o.KMSKey); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// probeKey is the object the KMS probe writes and removes. It is outside
// the keys the app uses (ValidKey refuses a leading dot).
const probeKey = ".aicode-kms-probe"

// probeKMS writes and removes a small encrypted object, so a store whose
// KMS is missing or does not know the key stops the start with the
// store's own reason, rather than the first snapshot failing.
func (m *MinIO) probeKMS(ctx context.Context, key string) error {
	_, err := m.cli.PutObject(ctx, m.bucket, probeKey, strings.NewReader("kms probe"), int64(len("kms probe")),
		minio.PutObjectOptions{ServerSideEncryption: m.sse, ContentType: "text/plain"})
	if err != nil {
		if unreachable(err) {
			return m.fail("put", probeKey, err)
		}
		return fmt.Errorf("object store %s: %w: KMS key %q: %s (is the store's KMS configured, and does it hold the key?)",
			m.endpoint, ErrKMS, key, errorMessage(err))
	}
	if err := m.cli.RemoveObject(ctx, m.bucket, probeKey, minio.RemoveObjectOptions{}); err != nil {
		return m.fail("delete", probeKey, err)
	}
	return nil
}

// errorMessage is the store's own words for a refusal.
func errorMessage(err error) string {
	if resp := minio.ToErrorResponse(err); resp.Code != "" {
		return fmt.Sprintf("%s (%s)", resp.Message, resp.Code)
	}
	return err.Error()
}

func (m *MinIO) ensureBucket(ctx context.Context, region string) error {
	ok, err := m.cli.BucketExists(ctx, m.bucket)
	// A MinIO that has just started answers "not initialized" for a few
	// seconds (its health check may already pass): wait for it, briefly.
	for wait := time.Now().Add(initWait); err != nil && starting(err) && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return m.fail("check bucket", m.bucket, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		ok, err = m.cli.BucketExists(ctx, m.bucket)
	}
	if err != nil {
		return m.fail("check bucket", m.bucket, err)
	}
	if ok {
		return nil
	}
	err = m.cli.MakeBucket(ctx, m.bucket, minio.MakeBucketOptions{Region: region})
	if code := minio.ToErrorResponse(err).Code; code == minio.BucketAlreadyOwnedByYou {
		// Another replica created it meanwhile.
		err = nil
	}
	if err != nil {
		return m.fail("create bucket", m.bucket, err)
	}
	return nil
}

// Bucket names the bucket in use.
func (m *MinIO) Bucket() string { return m.bucket }

// Ping checks that the store answers and the bucket exists (for /readyz).
func (m *MinIO) Ping(ctx context.Context) error {
	ok, err := m.cli.BucketExists(ctx, m.bucket)
	if err != nil {
		return m.fail("check bucket", m.bucket, err)
	}
	if !ok {
		return fmt.Errorf("object store %s: bucket %q does not exist", m.endpoint, m.bucket)
	}
	return nil
}

// Put streams r to the store in parts of the configured size (see
// Create), so memory stays bounded whatever the object's size. On failure
// the partial upload is aborted and any previous object stays.
func (m *MinIO) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	pw, err := m.create(ctx, key)
	if err != nil {
		return 0, err
	}
	// The writer stops at the context's end (its uploads run under it).
	if _, err := pw.ReadFrom(r); err != nil {
		// The store's failure (or the context's) says more than the
		// read that stopped on it.
		if ferr := pw.failed(); ferr != nil {
			err = ferr
		} else {
			err = fmt.Errorf("put %s: %w", key, err)
		}
		_ = pw.Abort()
		return 0, err
	}
	return pw.Commit()
}

// Open reads an object. The returned reader streams from one request.
func (m *MinIO) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("invalid blob key %q", key)
	}
	rc, _, _, err := m.core.GetObject(ctx, m.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, m.fail("open", key, err)
	}
	return rc, nil
}

// Stat returns an object's size.
func (m *MinIO) Stat(ctx context.Context, key string) (int64, error) {
	if !ValidKey(key) {
		return 0, fmt.Errorf("invalid blob key %q", key)
	}
	info, err := m.cli.StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, m.fail("stat", key, err)
	}
	return info.Size, nil
}

// Delete removes an object; a missing one is not an error.
func (m *MinIO) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("invalid blob key %q", key)
	}
	err := m.cli.RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return m.fail("delete", key, err)
	}
	return nil
}

// fail turns a client error into one that reads clearly and matches the
// package's sentinels.
func (m *MinIO) fail(op, key string, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", op, key, err)
	case errors.Is(err, context.DeadlineExceeded):
		// A deadline that ran out while dialling or waiting for an answer
		// says the store is not there (or not answering).
		return fmt.Errorf("%w: %s %s at %s: no answer in time: %w", ErrUnavailable, op, key, m.endpoint, err)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey:
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	case unreachable(err):
		return fmt.Errorf("%w: %s %s at %s: %w", ErrUnavailable, op, key, m.endpoint, transportCause(err))
	case resp.Code != "":
		return fmt.Errorf("object store %s: %s %s: %s (%s)", m.endpoint, op, key, resp.Message, resp.Code)
	}
	return fmt.Errorf("object store %s: %s %s: %w", m.endpoint, op, key, err)
}

// unreachable recognises failures to talk to the store at all, as opposed
// to answers from it.
func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// A store that is starting or overloaded answers 503.
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusServiceUnavailable || starting(err)
}

// starting recognises a MinIO that answers but has not finished starting.
func starting(err error) bool {
	return minio.ToErrorResponse(err).Code == "XMinioServerNotInitialized"
}

// transportCause drops the request URL from a transport error: the
// endpoint is already named and the URL only repeats the key.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
