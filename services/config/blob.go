package config

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// BlobConfig chooses the blob store: the local directory under DataDir
// (default), or MinIO / S3 when an endpoint is set.
type BlobConfig struct {
	MinIOEndpoint string // host:port; empty = local directory
	AccessKey     string
	// SecretKey is never logged: LogValue leaves it out.
	SecretKey string
	Bucket    string
	// Region is empty for MinIO; S3 wants the bucket's region.
	Region string
	UseSSL bool
	// PartSizeMB bounds the memory a streamed upload of unknown length
	// holds (one part at a time).
	PartSizeMB int
	// KMSKey names a key of the object store's KMS: every object is then
	// stored encrypted with it (SSE-KMS). Empty: objects are stored as
	// sent. The name is not a secret; the key itself stays in the KMS.
	KMSKey string
}

// MinIO reports whether an object store is configured.
func (b BlobConfig) MinIO() bool { return b.MinIOEndpoint != "" }

// LogValue keeps the secret key out of logs.
func (b BlobConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", b.MinIOEndpoint),
		slog.String("bucket", b.Bucket),
		slog.String("region", b.Region),
		slog.Bool("ssl", b.UseSSL),
		slog.Int("part_size_mb", b.PartSizeMB),
		slog.String("kms_key", b.KMSKey),
	)
}

// bucketRe is S3's bucket naming rule (lower case, digits, dots and
// hyphens, 3 to 63 characters, starting and ending alphanumeric).
var bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// kmsKeyRe is what a KMS key name may look like here: MinIO's static key,
// KES and AWS KMS names and ARNs of letters, digits and a few separators.
var kmsKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

func loadBlob(p *parser) BlobConfig {
	b := BlobConfig{
		MinIOEndpoint: p.str("AICODE_MINIO_ENDPOINT", ""),
		AccessKey:     p.str("AICODE_MINIO_ACCESS_KEY", ""),
		SecretKey:     p.str("AICODE_MINIO_SECRET_KEY", ""),
		Bucket:        p.str("AICODE_MINIO_BUCKET", "aicode"),
		Region:        p.str("AICODE_MINIO_REGION", ""),
		UseSSL:        p.onOff("AICODE_MINIO_USE_SSL", false),
		PartSizeMB:    p.int("AICODE_MINIO_PART_SIZE_MB", 16),
		KMSKey:        p.str("AICODE_MINIO_KMS_KEY", ""),
	}
	if !b.MinIO() {
		return b
	}
	if strings.Contains(b.MinIOEndpoint, "://") || strings.Contains(b.MinIOEndpoint, "/") {
		p.errs = append(p.errs, fmt.Errorf("AICODE_MINIO_ENDPOINT: %q must be host:port, without scheme or path (TLS: AICODE_MINIO_USE_SSL)", b.MinIOEndpoint))
	}
	if b.AccessKey == "" || b.SecretKey == "" {
		p.errs = append(p.errs, errors.New("AICODE_MINIO_ACCESS_KEY and AICODE_MINIO_SECRET_KEY are required when AICODE_MINIO_ENDPOINT is set"))
	}
	if !bucketRe.MatchString(b.Bucket) || strings.Contains(b.Bucket, "..") {
		p.errs = append(p.errs, fmt.Errorf("AICODE_MINIO_BUCKET: %q is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')", b.Bucket))
	}
	// S3 refuses parts under 5 MiB; one part is held in memory per upload.
	if n := b.PartSizeMB; n < 5 || n > 1024 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_MINIO_PART_SIZE_MB: %d must be between 5 and 1024", n))
	}
	if b.KMSKey != "" && !kmsKeyRe.MatchString(b.KMSKey) {
		p.errs = append(p.errs, fmt.Errorf("AICODE_MINIO_KMS_KEY: %q is not a key name (letters, digits, '.', '_', '-'; up to 128)", b.KMSKey))
	}
	return b
}

// onOff reads true/false (also 1/0, yes/no, on/off).
func (p *parser) onOff(key string, def bool) bool {
	switch v := strings.ToLower(p.str(key, "")); v {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	default:
		p.errs = append(p.errs, fmt.Errorf("%s: %q is neither true nor false", key, v))
		return def
	}
}
