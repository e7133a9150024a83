package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestBlobDefaultsToLocal(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := BlobConfig{Bucket: "aicode", PartSizeMB: 16}
	if c.Blob != want || c.Blob.MinIO() {
		t.Fatalf("defaults: %+v", c.Blob)
	}
}

func TestBlobMinIO(t *testing.T) {
	c, err := LoadFrom(env(map[string]string{
		"AICODE_MINIO_ENDPOINT":     "minio:9000",
		"AICODE_MINIO_ACCESS_KEY":   "aicode",
		"AICODE_MINIO_SECRET_KEY":   "very-secret-value",
		"AICODE_MINIO_BUCKET":       "my.bucket-1",
		"AICODE_MINIO_REGION":       "eu-west-1",
		"AICODE_MINIO_USE_SSL":      "true",
		"AICODE_MINIO_PART_SIZE_MB": "8",
		"AICODE_MINIO_KMS_KEY":      "aicode-objects",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := BlobConfig{MinIOEndpoint: "minio:9000", AccessKey: "aicode", SecretKey: "very-secret-value",
		Bucket: "my.bucket-1", Region: "eu-west-1", UseSSL: true, PartSizeMB: 8, KMSKey: "aicode-objects"}
	if c.Blob != want || !c.Blob.MinIO() {
		t.Fatalf("got %+v", c.Blob)
	}
	// The secret never reaches a log line.
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "blob", c.Blob)
	if strings.Contains(buf.String(), "very-secret-value") || !strings.Contains(buf.String(), "minio:9000") {
		t.Fatalf("log line: %s", buf.String())
	}
}

func TestBlobRefusesBadSettings(t *testing.T) {
	base := map[string]string{
		"AICODE_MINIO_ENDPOINT":   "minio:9000",
		"AICODE_MINIO_ACCESS_KEY": "aicode",
		"AICODE_MINIO_SECRET_KEY": "secret",
	}
	for k, v := range map[string]string{
		"AICODE_MINIO_ACCESS_KEY":   "",
		"AICODE_MINIO_SECRET_KEY":   "",
		"AICODE_MINIO_ENDPOINT":     "http://minio:9000",
		"AICODE_MINIO_BUCKET":       "Bad_Bucket",
		"AICODE_MINIO_USE_SSL":      "maybe",
		"AICODE_MINIO_PART_SIZE_MB": "4",
		"AICODE_MINIO_KMS_KEY":      "key with spaces",
	} {
		m := map[string]string{}
		for bk, bv := range base {
			m[bk] = bv
		}
		m[k] = v
		_, err := LoadFrom(env(m))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: error %v does not name the variable", k, v, err)
		}
	}
	// Without an endpoint the other settings are not checked: the local
	// directory is used.
	if _, err := LoadFrom(env(map[string]string{"AICODE_MINIO_PART_SIZE_MB": "1"})); err != nil {
		t.Errorf("part size without endpoint: %v", err)
	}
}
