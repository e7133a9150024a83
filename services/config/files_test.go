package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadFiles(t *testing.T) {
	c, err := LoadFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := FilesConfig{UploadMaxBytes: 512 << 20, SnapshotMaxBytes: 20 << 30, SnapshotMaxEntries: 1_000_000, ScheduleEvery: time.Minute}
	if c.Files != want {
		t.Fatalf("defaults: got %+v, want %+v", c.Files, want)
	}
	c, err = LoadFrom(env(map[string]string{"AICODE_UPLOAD_MAX_MB": "3", "AICODE_SNAPSHOT_MAX_GB": "2",
		"AICODE_SNAPSHOT_MAX_ENTRIES": "10", "AICODE_SNAPSHOT_SCHEDULE_EVERY": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	want = FilesConfig{UploadMaxBytes: 3 << 20, SnapshotMaxBytes: 2 << 30, SnapshotMaxEntries: 10, ScheduleEvery: 5 * time.Second}
	if c.Files != want {
		t.Fatalf("set: got %+v, want %+v", c.Files, want)
	}
	for k, v := range map[string]string{"AICODE_UPLOAD_MAX_MB": "0", "AICODE_SNAPSHOT_MAX_GB": "-1",
		"AICODE_SNAPSHOT_MAX_ENTRIES": "0", "AICODE_SNAPSHOT_SCHEDULE_EVERY": "soon"} {
		_, err := LoadFrom(env(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: got %v, want an error naming it", k, v, err)
		}
	}
}
