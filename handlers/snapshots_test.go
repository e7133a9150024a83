package handlers_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"aicode/services/blob"
	"aicode/services/store"
	"aicode/testutil"
	"aicode/testutil/miniotest"
	"aicode/testutil/pgtest"
)

// minioEnv points a server at a bucket of its own on srv.
func minioEnv(t *testing.T, srv miniotest.Server, bucket string) map[string]string {
	return map[string]string{
		"AICODE_MINIO_ENDPOINT":     srv.Endpoint,
		"AICODE_MINIO_ACCESS_KEY":   srv.AccessKey,
		"AICODE_MINIO_SECRET_KEY":   srv.SecretKey,
		"AICODE_MINIO_BUCKET":       bucket,
		"AICODE_MINIO_PART_SIZE_MB": "8",
	}
}

// fileTree describes every path under dir: kind, mode, owner, mtime (to
// the second; directories' and links' left out) and content hash.
func fileTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
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
		desc := fmt.Sprintf("%s %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x", fi.ModTime().Unix(), sha256.Sum256(b))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s\n want %q\n got  %q", what, k, want[k], got[k])
		}
	}
}

// fillProject writes a small tree of every kind into a project directory,
// owned by the workspace user as the container would leave it.
func fillProject(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "src/pkg"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "README.md"), []byte("# project\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "build.sh"), []byte("#!/bin/sh\nmake\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "src/pkg/main.go"), []byte("package main\n"), 0o600))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	must(os.WriteFile(filepath.Join(dir, "src/data.bin"), big, 0o644))
	must(os.Symlink("src/pkg/main.go", filepath.Join(dir, "main-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "outside-link")))
	old := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "README.md"), old, old))
	must(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(p, 1000, 1000)
		}
		return err
	}))
}

var snapRowRe = regexp.MustCompile(`data-testid="snapshot-row" data-snapshot="([a-z2-7]+)" data-status="([a-z]+)"`)

// waitSnapshot polls the Snapshots tab until the snapshot is finished.
func waitSnapshot(t *testing.T, c *testutil.Client, wsID string) (id, status string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		r := c.Get("/workspaces/" + wsID + "/snapshots")
		if r.Status != http.StatusOK {
			t.Fatalf("snapshots tab: %d %s", r.Status, r.Body)
		}
		m := snapRowRe.FindStringSubmatch(r.Body)
		if m != nil && m[2] != "creating" {
			return m[1], m[2]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the snapshot did not finish within a minute")
	return "", ""
}

func auditHas(t *testing.T, st store.Store, action, result string) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Action: action, Result: result, Limit: 50})
	if err != nil || len(evs) == 0 {
		t.Errorf("no %s audit event with result %s (%v)", action, result, err)
	}
}

// snapshotRoundTrip: take a snapshot through the HTTP routes, change the
// files, restore over the workspace, restore into a new one, delete.
func snapshotRoundTrip(t *testing.T, s *testutil.Server, blobs func() blob.Store) {
	c := testutil.Setup(t, s.URL, "admin", adminPW)
	name := testutil.UniqueName("snap")
	w := createWorkspace(t, s, c, url.Values{"name": {name}})
	waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)
	fillProject(t, w.ProjectPath)
	want := fileTree(t, w.ProjectPath)

	c.Get("/workspaces/" + w.ID + "/snapshots")
	if r := c.Post("/workspaces/"+w.ID+"/snapshots", url.Values{"label": {"before changes"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("take snapshot: %d %s", r.Status, r.Body)
	}
	id, status := waitSnapshot(t, c, w.ID)
	if status != "ready" {
		t.Fatalf("snapshot status %s", status)
	}
	n, err := s.App.Store.GetSnapshot(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	size, err := blobs().Stat(context.Background(), n.BlobKey)
	if err != nil || size != n.SizeBytes || size < 3<<20 {
		t.Fatalf("archive in the store: size %d (row %d), %v", size, n.SizeBytes, err)
	}
	if r := c.Get("/workspaces/" + w.ID + "/snapshots"); !strings.Contains(r.Body, "before changes") || !strings.Contains(r.Body, "admin") {
		t.Error("the list does not show the label and who took it")
	}

	// Change everything, then restore over the workspace.
	if err := os.Remove(filepath.Join(w.ProjectPath, "README.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.ProjectPath, "src/pkg/main.go"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.ProjectPath, "new-file"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/restore", url.Values{"mode": {"over"}}, false)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("restore over without confirmation: %d", r.Status)
	}
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/restore", url.Values{"mode": {"over"}, "confirm": {"yes"}}, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("restore over: %d %s", r.Status, r.Body)
	}
	sameTree(t, "restored over", want, fileTree(t, w.ProjectPath))
	waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)
	ents, _ := os.ReadDir(filepath.Dir(w.ProjectPath))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".aicode-") {
			t.Errorf("restore left %s behind", e.Name())
		}
	}
	// The container sees the restored files.
	if out := execWrite(t, rawDocker(t), w.ContainerID, "cat /workspace/README.md"); !strings.Contains(out, "# project") {
		t.Errorf("the container reads %q after the restore", out)
	}

	// Into a new workspace.
	fork := testutil.UniqueName("fork")
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/restore", url.Values{"mode": {"new"}, "name": {"Bad Name"}}, false)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "lowercase") {
		t.Fatalf("restore into a badly named workspace: %d", r.Status)
	}
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/restore", url.Values{"mode": {"new"}, "name": {fork}}, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("restore new: %d %s", r.Status, r.Body)
	}
	nw, err := s.App.Store.GetWorkspaceByName(context.Background(), fork)
	if err != nil {
		t.Fatal(err)
	}
	if loc := r.Header.Get("Location"); loc != "/workspaces/"+nw.ID {
		t.Errorf("redirected to %s", loc)
	}
	waitStatus(t, s, nw.ID, store.StatusRunning, 30*time.Second)
	sameTree(t, "restored into a new workspace", want, fileTree(t, nw.ProjectPath))

	// Delete: the archive goes too.
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/delete", nil, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if _, err := blobs().Stat(context.Background(), n.BlobKey); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("archive after delete: %v", err)
	}
	if r := c.Get("/workspaces/" + w.ID + "/snapshots"); !strings.Contains(r.Body, `data-testid="empty-state"`) {
		t.Error("the list is not empty after deleting the only snapshot")
	}
	for _, a := range []string{"snapshot.create", "snapshot.restore", "snapshot.delete"} {
		auditHas(t, s.App.Store, a, "ok")
	}
}

func TestSnapshotRoundTripMinIO(t *testing.T) {
	srv := miniotest.Shared(t)
	s := testutil.StartServer(t, testutil.Options{Env: minioEnv(t, srv, srv.BucketName(t))})
	snapshotRoundTrip(t, s, func() blob.Store { return s.App.Blobs })
}

// With a KMS key the archive is stored encrypted (SSE-KMS) and restores
// byte for byte all the same.
func TestSnapshotRoundTripMinIOEncrypted(t *testing.T) {
	priv := miniotest.StartPrivate(t)
	bucket := priv.BucketName(t)
	env := minioEnv(t, priv.Server, bucket)
	env["AICODE_MINIO_KMS_KEY"] = priv.KMSKey
	s := testutil.StartServer(t, testutil.Options{Env: env})
	snapshotRoundTrip(t, s, func() blob.Store {
		return sseChecked{Store: s.App.Blobs, t: t, cli: priv.Client(t), bucket: bucket}
	})
}

// sseChecked is a blob store whose Stat also checks that the object is
// stored encrypted with SSE-KMS.
type sseChecked struct {
	blob.Store
	t      *testing.T
	cli    *minio.Client
	bucket string
}

func (c sseChecked) Stat(ctx context.Context, key string) (int64, error) {
	info, err := c.cli.StatObject(ctx, c.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return c.Store.Stat(ctx, key) // the store's own error
	}
	if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != "aws:kms" {
		c.t.Errorf("%s is stored with server-side encryption %q, want aws:kms", key, got)
	}
	return c.Store.Stat(ctx, key)
}

func TestSnapshotRoundTripPostgres(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{DatabaseURL: pgtest.URL(t)})
	snapshotRoundTrip(t, s, func() blob.Store { return s.App.Blobs })
}

// With the object store down, taking a snapshot fails at once with a
// clear message, records nothing, and the workspace keeps working.
func TestSnapshotObjectStoreDown(t *testing.T) {
	priv := miniotest.StartPrivate(t)
	s := testutil.StartServer(t, testutil.Options{Env: minioEnv(t, priv.Server, "aicode-down")})
	c := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, c, url.Values{"name": {testutil.UniqueName("down")}})
	waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)
	fillProject(t, w.ProjectPath)

	// One snapshot while the store is up, to restore later.
	c.Get("/workspaces/" + w.ID + "/snapshots")
	if r := c.Post("/workspaces/"+w.ID+"/snapshots", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("take snapshot: %d %s", r.Status, r.Body)
	}
	id, _ := waitSnapshot(t, c, w.ID)
	before := fileTree(t, w.ProjectPath)

	priv.Stop(t)
	start := time.Now()
	r := c.Post("/workspaces/"+w.ID+"/snapshots", url.Values{"label": {"while down"}}, false)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("snapshot with the store down: %d", r.Status)
	}
	for _, want := range []string{"The object store is unreachable", "Nothing was changed"} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the failure took %s", d)
	}
	list, _ := s.App.Store.ListSnapshots(context.Background(), w.ID, 10)
	if len(list) != 1 {
		t.Errorf("%d snapshots recorded, want only the earlier one", len(list))
	}
	// Restoring and deleting fail the same way and change nothing.
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/restore", url.Values{"mode": {"over"}, "confirm": {"yes"}}, false)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "Nothing was changed") {
		t.Errorf("restore with the store down: %d", r.Status)
	}
	r = c.Post("/workspaces/"+w.ID+"/snapshots/"+id+"/delete", nil, false)
	if r.Status != http.StatusServiceUnavailable {
		t.Errorf("delete with the store down: %d", r.Status)
	}
	sameTree(t, "after failed restore", before, fileTree(t, w.ProjectPath))
	if n, err := s.App.Store.GetSnapshot(context.Background(), id); err != nil || n.Status != store.SnapshotReady {
		t.Errorf("the snapshot changed: %+v %v", n, err)
	}
	auditHas(t, s.App.Store, "snapshot.create", "error")
	// The rest of the app keeps working.
	for _, p := range []string{"/workspaces", "/workspaces/" + w.ID, "/workspaces/" + w.ID + "/files", "/workspaces/" + w.ID + "/snapshots"} {
		if r := c.Get(p); r.Status != http.StatusOK {
			t.Errorf("GET %s with the store down: %d", p, r.Status)
		}
	}
	if r := c.Post("/workspaces/"+w.ID+"/stop", nil, true); r.Status >= 400 {
		t.Errorf("stop with the store down: %d", r.Status)
	}

	// Back up: snapshots work again.
	priv.Start(t)
	if r := c.Post("/workspaces/"+w.ID+"/snapshots", nil, false); r.Status != http.StatusSeeOther {
		t.Fatalf("take snapshot after the store is back: %d %s", r.Status, r.Body)
	}
	if _, st := waitSnapshot(t, c, w.ID); st != "ready" {
		t.Errorf("snapshot after recovery: %s", st)
	}
}

// A schedule takes snapshots when due and keeps only the newest ones.
func TestSnapshotSchedule(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_SNAPSHOT_SCHEDULE_EVERY": "1h"}})
	c := testutil.Setup(t, s.URL, "admin", adminPW)
	w := createWorkspace(t, s, c, url.Values{"name": {testutil.UniqueName("sched")}})
	fillProject(t, w.ProjectPath)
	c.Get("/workspaces/" + w.ID + "/snapshots")
	if r := c.Post("/workspaces/"+w.ID+"/snapshots/schedule", url.Values{"interval_hours": {"0"}, "keep_last": {"2"}}, false); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("interval 0: %d", r.Status)
	}
	if r := c.Post("/workspaces/"+w.ID+"/snapshots/schedule", url.Values{"interval_hours": {"6"}, "keep_last": {"2"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("set schedule: %d %s", r.Status, r.Body)
	}
	if r := c.Get("/workspaces/" + w.ID + "/snapshots"); !strings.Contains(r.Body, "Every 6 h, keeping the last 2") {
		t.Error("the tab does not show the schedule")
	}
	ctx := context.Background()
	// A manual snapshot is never pruned.
	if r := c.Post("/workspaces/"+w.ID+"/snapshots", url.Values{"label": {"manual"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("take snapshot: %d", r.Status)
	}
	waitSnapshot(t, c, w.ID)
	sc, err := s.App.Store.GetSnapshotSchedule(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Not due yet: nothing happens.
	s.App.Snapshots.Tick(ctx)
	if list, _ := s.App.Store.ListSnapshots(ctx, w.ID, 10); len(list) != 1 {
		t.Fatalf("%d snapshots before the schedule was due", len(list))
	}
	for i := 0; i < 3; i++ {
		sc.NextRunAt = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		if err := s.App.Store.SetSnapshotSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		s.App.Snapshots.Tick(ctx)
		if _, st := waitSnapshot(t, c, w.ID); st != "ready" {
			t.Fatalf("scheduled snapshot %d: %s", i, st)
		}
		got, _ := s.App.Store.GetSnapshotSchedule(ctx, w.ID)
		if !got.NextRunAt.After(time.Now().Add(5 * time.Hour)) {
			t.Errorf("next run %s, want about 6 h from now", got.NextRunAt)
		}
	}
	// Pruning follows the snapshot's completion.
	var scheduled, manual int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list, _ := s.App.Store.ListSnapshots(ctx, w.ID, 10)
		scheduled, manual = 0, 0
		for _, n := range list {
			if n.Scheduled {
				scheduled++
			} else {
				manual++
			}
		}
		if scheduled == 2 {
			break
		}
	}
	if scheduled != 2 || manual != 1 {
		t.Errorf("after three scheduled runs with keep-last 2: %d scheduled, %d manual", scheduled, manual)
	}
	auditHas(t, s.App.Store, "snapshot.prune", "ok")
	if r := c.Post("/workspaces/"+w.ID+"/snapshots/schedule", url.Values{"off": {"1"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("schedule off: %d", r.Status)
	}
	if _, err := s.App.Store.GetSnapshotSchedule(ctx, w.ID); err == nil {
		t.Error("the schedule is still there")
	}
}
