package config

// BlobConfig chooses the blob store: the local directory under DataDir
// (default), or MinIO / S3 when an endpoint is set.
type BlobConfig struct {
	MinIOEndpoint string // host:port; empty = local directory
}

func loadBlob(p *parser) BlobConfig {
	return BlobConfig{MinIOEndpoint: p.str("AICODE_MINIO_ENDPOINT", "")}
}
