package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"aicode/handlers"
	"aicode/services/blob"
	"aicode/services/config"
)

// openBlobs opens the configured blob store: MinIO / S3 when an endpoint
// is set, else the local directory under the data directory. A configured
// object store that cannot be reached stops the start: objects written
// meanwhile would have nowhere to go.
func openBlobs(ctx context.Context, cfg config.Config, log *slog.Logger) (blob.Store, error) {
	if !cfg.Blob.MinIO() {
		return blob.NewLocal(filepath.Join(cfg.DataDir, "blobs"))
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := blob.NewMinIO(ctx, blob.MinIOOptions{
		Endpoint:  cfg.Blob.MinIOEndpoint,
		AccessKey: cfg.Blob.AccessKey,
		SecretKey: cfg.Blob.SecretKey,
		Bucket:    cfg.Blob.Bucket,
		Region:    cfg.Blob.Region,
		UseSSL:    cfg.Blob.UseSSL,
		PartSize:  uint64(cfg.Blob.PartSizeMB) << 20,
		KMSKey:    cfg.Blob.KMSKey,
	})
	if errors.Is(err, blob.ErrKMS) {
		return nil, fmt.Errorf("blob store (AICODE_MINIO_KMS_KEY): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("blob store (AICODE_MINIO_ENDPOINT): %w", err)
	}
	log.Info("blob store: object store", "blob", cfg.Blob)
	return m, nil
}

// blobChecks names the blob store for /readyz when it is a service of its
// own (the local directory is not).
func blobChecks(b blob.Store) map[string]handlers.Checker {
	if m, ok := b.(*blob.MinIO); ok {
		return map[string]handlers.Checker{"blob": m}
	}
	return nil
}
