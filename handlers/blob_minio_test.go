package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"aicode/services/blob"
	"aicode/services/store"
	"aicode/testutil/fakeanthropic"
	"aicode/testutil/miniotest"
)

// With MinIO configured, the app creates its bucket, reports it on
// /readyz, and a task's transcript and diff go to the object store (not
// the data directory) and are served back from it.
func TestTaskTranscriptInMinIO(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.BucketName(t)
	fake := fakeanthropic.New(t, fakeanthropic.WithTurns(writeFileTurns()...))
	e := newTaskEnv(t, fake, map[string]string{
		"AICODE_MINIO_ENDPOINT":   srv.Endpoint,
		"AICODE_MINIO_ACCESS_KEY": srv.AccessKey,
		"AICODE_MINIO_SECRET_KEY": srv.SecretKey,
		"AICODE_MINIO_BUCKET":     bucket,
	})
	if _, ok := e.s.App.Blobs.(*blob.MinIO); !ok {
		t.Fatalf("blob store is %T", e.s.App.Blobs)
	}

	resp, err := http.Get(e.s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Checks map[string]struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || !ready.Checks["blob"].OK {
		t.Fatalf("readyz: %v %+v", err, ready)
	}

	e.gitInit(t)
	id := e.queue(t, "Create hello.txt saying hello. Then stop.", nil)
	tk := e.waitFinal(t, id, 3*time.Minute)
	if tk.Status != store.TaskSucceeded {
		t.Fatalf("status %s: %s", tk.Status, tk.Detail)
	}

	// The objects are in the bucket...
	ctx := context.Background()
	cli := srv.Client(t)
	for _, key := range []string{tk.TranscriptKey, tk.DiffKey} {
		if key == "" {
			t.Fatalf("task without object keys: transcript %q diff %q", tk.TranscriptKey, tk.DiffKey)
		}
		obj, err := cli.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || len(b) == 0 {
			t.Fatalf("object %s: %d bytes, %v", key, len(b), err)
		}
	}
	// ...and not on local disk.
	if _, err := os.Stat(filepath.Join(e.s.Opts.DataDir, "blobs", filepath.FromSlash(tk.TranscriptKey))); !os.IsNotExist(err) {
		t.Fatalf("transcript also on local disk: %v", err)
	}

	// Served back from the object store.
	tr := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id + "/transcript")
	if n := strings.Count(tr.Body, "\n"); tr.Status != http.StatusOK || int64(n) != tk.Events {
		t.Fatalf("transcript: %d, %d lines, task %d events", tr.Status, n, tk.Events)
	}
	if d := e.admin.Get("/workspaces/" + e.ws.ID + "/tasks/" + id + "/diff"); !strings.Contains(d.Body, "+hello from claude") {
		t.Fatalf("diff: %d %s", d.Status, d.Body)
	}
	// The metrics show the object-store-backed app like any other.
	if scrape(t, e.s.URL, "")["aicode_tasks"] == nil {
		t.Fatal("task gauge missing")
	}
}
