package config

import (
	"fmt"
	"time"
)

// FilesConfig bounds file transfer and snapshots.
type FilesConfig struct {
	// UploadMaxBytes caps one upload request (all its files together).
	UploadMaxBytes int64
	// SnapshotMaxBytes caps what a snapshot restore writes (the files'
	// total size); SnapshotMaxEntries the entries it may hold.
	SnapshotMaxBytes   int64
	SnapshotMaxEntries int64
	// ScheduleEvery is how often due snapshot schedules are looked for.
	ScheduleEvery time.Duration
}

func loadFiles(p *parser) FilesConfig {
	upMB := p.int64("AICODE_UPLOAD_MAX_MB", 512)
	if upMB < 1 || upMB > 1<<20 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_UPLOAD_MAX_MB: %d must be between 1 and %d", upMB, 1<<20))
		upMB = 512
	}
	snapGB := p.int64("AICODE_SNAPSHOT_MAX_GB", 20)
	if snapGB < 1 || snapGB > 1<<16 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_SNAPSHOT_MAX_GB: %d must be between 1 and %d", snapGB, 1<<16))
		snapGB = 20
	}
	entries := p.int64("AICODE_SNAPSHOT_MAX_ENTRIES", 1_000_000)
	if entries < 1 {
		p.errs = append(p.errs, fmt.Errorf("AICODE_SNAPSHOT_MAX_ENTRIES: %d must be 1 or more", entries))
		entries = 1_000_000
	}
	return FilesConfig{
		UploadMaxBytes:     upMB << 20,
		SnapshotMaxBytes:   snapGB << 30,
		SnapshotMaxEntries: entries,
		ScheduleEvery:      p.duration("AICODE_SNAPSHOT_SCHEDULE_EVERY", time.Minute),
	}
}
