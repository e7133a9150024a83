// Package snapshot archives a workspace's files to the blob store and
// restores them, into a new workspace or over the same one. An archive is
// streamed (tar writer -> pipe -> blob store) and extracted the same way,
// so a snapshot is never held in memory whatever its size.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"aicode/services/archive"
	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/blob"
	"aicode/services/store"
	"aicode/services/validation"
	"aicode/services/workspace"
)

// Who may do what. Listing shows names and sizes only, so whoever sees the
// workspace may list; taking a snapshot reads the files, as a terminal
// does, so it needs write access (the same people can copy them anyway);
// restoring and deleting destroy or replace work, so they are the
// workspace manager's.
const (
	ActList     = auth.ActWorkspaceView
	ActCreate   = auth.ActTerminalWrite
	ActRestore  = auth.ActWorkspaceManage
	ActDelete   = auth.ActWorkspaceManage
	ActSchedule = auth.ActWorkspaceManage
)

// Errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("snapshot not found")
	ErrNotReady = errors.New("this snapshot is not ready: only a finished snapshot can be restored")
	ErrBusy     = errors.New("a snapshot of this workspace is being taken or restored; wait for it to finish")
)

// UnavailableError: the object store could not be reached; nothing was
// changed.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string {
	cause := e.Err.Error()
	cause = strings.TrimPrefix(cause, blob.ErrUnavailable.Error()+": ")
	return "The object store is unreachable: " + cause + ". Nothing was changed."
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// Workspaces is what the service needs from the workspace service.
type Workspaces interface {
	GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error)
	Create(ctx context.Context, p auth.Principal, in workspace.CreateInput) (store.Workspace, error)
	Delete(ctx context.Context, p auth.Principal, id string, deleteFiles bool) error
	Do(ctx context.Context, p auth.Principal, id string, a workspace.Action) (store.Workspace, error)
	Root() workspace.Root
}

// Options tune the service.
type Options struct {
	// MaxBytes and MaxEntries bound a restore.
	MaxBytes   int64
	MaxEntries int64
	// Gzip compresses archives (level 1); off by default: see
	// bench/snapshot_test.go for why plain tar is the default.
	Gzip bool
	// ScheduleEvery is how often the schedule loop runs.
	ScheduleEvery time.Duration
	// TouchEvery is how often a snapshot being taken is marked alive;
	// one not touched for 5 of these is failed as abandoned.
	TouchEvery time.Duration
}

// Service takes, lists, restores and deletes snapshots.
type Service struct {
	store store.Store
	blobs blob.Store
	ws    Workspaces
	audit *audit.Recorder
	log   *slog.Logger
	opts  Options

	bg context.Context
	wg sync.WaitGroup

	mu   sync.Mutex
	busy map[string]bool // workspace ids with a snapshot or restore in flight
	now  func() time.Time
}

// New wires the service. bg bounds background work (snapshots being
// taken); Wait waits for it after bg is cancelled.
func New(bg context.Context, st store.Store, blobs blob.Store, ws Workspaces, rec *audit.Recorder, log *slog.Logger, o Options) *Service {
	if o.ScheduleEvery <= 0 {
		o.ScheduleEvery = time.Minute
	}
	if o.TouchEvery <= 0 {
		o.TouchEvery = 30 * time.Second
	}
	return &Service{store: st, blobs: blobs, ws: ws, audit: rec, log: log, opts: o, bg: bg, busy: map[string]bool{}, now: time.Now}
}

// Wait blocks until background snapshots have ended.
func (s *Service) Wait() { s.wg.Wait() }

func (s *Service) lock(wsID string) (func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[wsID] {
		return nil, false
	}
	s.busy[wsID] = true
	return func() { s.mu.Lock(); delete(s.busy, wsID); s.mu.Unlock() }, true
}

// Busy reports whether a snapshot of the workspace is being taken or
// restored by this process.
func (s *Service) Busy(wsID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[wsID]
}

func (s *Service) record(ctx context.Context, p auth.Principal, action, id, result, detail string) {
	s.audit.Record(ctx, audit.Entry{
		Actor:        audit.Actor{ID: p.UserID, Name: p.Username},
		Action:       action,
		ResourceType: "workspace",
		ResourceID:   id,
		Result:       result,
		Detail:       detail,
	})
}

// authorize loads the workspace and checks p may do act on it.
func (s *Service) authorize(ctx context.Context, p auth.Principal, wsID string, act auth.Action, auditAction string) (store.Workspace, error) {
	w, acc, err := s.ws.GetWithAccess(ctx, p, wsID)
	if err != nil {
		if errors.Is(err, workspace.ErrNotFound) && auditAction != "" {
			s.record(ctx, p, auditAction, wsID, audit.ResultDenied, "not found or not visible")
		}
		return store.Workspace{}, err
	}
	if !auth.AllowedOn(p, act, acc) {
		if auditAction != "" {
			s.record(ctx, p, auditAction, wsID, audit.ResultDenied, "")
		}
		return store.Workspace{}, auth.ErrForbidden
	}
	return w, nil
}

// snapshotOf loads a snapshot of the workspace.
func (s *Service) snapshotOf(ctx context.Context, wsID, id string) (store.Snapshot, error) {
	n, err := s.store.GetSnapshot(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && n.WorkspaceID != wsID) {
		return store.Snapshot{}, ErrNotFound
	}
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("get snapshot: %w", err)
	}
	return n, nil
}

// unavailable wraps blob-store reachability failures for the user.
func unavailable(err error) error {
	if errors.Is(err, blob.ErrUnavailable) {
		return &UnavailableError{Err: err}
	}
	return err
}

// ping checks the object store answers before anything is changed.
func (s *Service) ping(ctx context.Context) error {
	pg, ok := s.blobs.(interface{ Ping(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pg.Ping(ctx); err != nil {
		if errors.Is(err, blob.ErrUnavailable) {
			return &UnavailableError{Err: err}
		}
		return &UnavailableError{Err: fmt.Errorf("%w: %w", blob.ErrUnavailable, err)}
	}
	return nil
}

// MaxLabelLen bounds a snapshot's label.
const MaxLabelLen = 100

func cleanLabel(l string) (string, error) {
	l = strings.TrimSpace(l)
	if len(l) > MaxLabelLen {
		return "", validation.Field("label", fmt.Sprintf("use at most %d characters", MaxLabelLen))
	}
	for _, r := range l {
		if unicode.IsControl(r) {
			return "", validation.Field("label", "the label contains an invalid character")
		}
	}
	return l, nil
}

// List returns a workspace's snapshots, newest first.
func (s *Service) List(ctx context.Context, p auth.Principal, wsID string) ([]store.Snapshot, error) {
	if _, err := s.authorize(ctx, p, wsID, ActList, ""); err != nil {
		return nil, err
	}
	list, err := s.store.ListSnapshots(ctx, wsID, 200)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return list, nil
}

// Get returns one snapshot of a workspace p may see.
func (s *Service) Get(ctx context.Context, p auth.Principal, wsID, id string) (store.Snapshot, error) {
	if _, err := s.authorize(ctx, p, wsID, ActList, ""); err != nil {
		return store.Snapshot{}, err
	}
	return s.snapshotOf(ctx, wsID, id)
}

// Create starts a snapshot of the workspace's files and returns it in
// status creating; the archive is written in the background and the row
// says how it ended. An unreachable object store is reported at once and
// nothing is recorded.
func (s *Service) Create(ctx context.Context, p auth.Principal, wsID, label string) (store.Snapshot, error) {
	return s.create(ctx, p, wsID, label, false)
}

func (s *Service) create(ctx context.Context, p auth.Principal, wsID, label string, scheduled bool) (store.Snapshot, error) {
	const act = "snapshot.create"
	w, err := s.authorize(ctx, p, wsID, ActCreate, act)
	if err != nil {
		return store.Snapshot{}, err
	}
	if label, err = cleanLabel(label); err != nil {
		return store.Snapshot{}, err
	}
	if err := s.ping(ctx); err != nil {
		s.record(ctx, p, act, w.ID, audit.ResultError, err.Error())
		return store.Snapshot{}, err
	}
	if err := s.ws.Root().CheckExisting(w.ProjectPath); err != nil {
		return store.Snapshot{}, err
	}
	unlock, ok := s.lock(w.ID)
	if !ok {
		return store.Snapshot{}, ErrBusy
	}
	id := store.NewID()
	n := store.Snapshot{ID: id, WorkspaceID: w.ID, CreatedBy: p.UserID, Label: label, Scheduled: scheduled,
		BlobKey: "snapshots/" + w.ID + "/" + id + s.ext()}
	if err := s.store.CreateSnapshot(ctx, &n); err != nil {
		unlock()
		return store.Snapshot{}, fmt.Errorf("save snapshot: %w", err)
	}
	n.CreatedByName = p.Username
	s.record(ctx, p, act, w.ID, audit.ResultOK, "snapshot="+n.ID)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer unlock()
		s.take(audit.WithMeta(s.bg, audit.MetaFrom(ctx)), p, w, n)
	}()
	return n, nil
}

func (s *Service) ext() string {
	if s.opts.Gzip {
		return ".tar.gz"
	}
	return ".tar"
}

// take writes the archive and records the outcome.
func (s *Service) take(ctx context.Context, p auth.Principal, w store.Workspace, n store.Snapshot) {
	stopTouch := make(chan struct{})
	go func() {
		t := time.NewTicker(s.opts.TouchEvery)
		defer t.Stop()
		for {
			select {
			case <-stopTouch:
				return
			case <-t.C:
				if err := s.store.TouchSnapshot(ctx, n.ID); err != nil && ctx.Err() == nil {
					s.log.Warn("touch snapshot", "snapshot", n.ID, "err", err)
				}
			}
		}
	}()
	size, st, err := s.write(ctx, w, n.BlobKey)
	close(stopTouch)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err != nil {
		if derr := s.blobs.Delete(fctx, n.BlobKey); derr != nil {
			s.log.Warn("remove the partial snapshot", "snapshot", n.ID, "err", derr)
		}
		msg := unavailable(err).Error()
		if errors.Is(err, context.Canceled) {
			msg = "The server stopped while taking this snapshot."
		}
		if ferr := s.store.FinishSnapshot(fctx, n.ID, store.SnapshotFailed, msg, 0, 0); ferr != nil {
			s.log.Error("record failed snapshot", "snapshot", n.ID, "err", ferr)
		}
		s.record(fctx, p, "snapshot.create", w.ID, audit.ResultError, "snapshot="+n.ID+": "+msg)
		s.log.Warn("snapshot failed", "workspace", w.ID, "snapshot", n.ID, "err", err)
		return
	}
	if ferr := s.store.FinishSnapshot(fctx, n.ID, store.SnapshotReady, "", size, st.Entries()); ferr != nil {
		s.log.Error("record snapshot", "snapshot", n.ID, "err", ferr)
		return
	}
	s.log.Info("snapshot taken", "workspace", w.ID, "snapshot", n.ID, "bytes", size, "entries", st.Entries())
	if n.Scheduled {
		s.prune(fctx, w.ID)
	}
}

// write streams the workspace's tree into a new object of the blob store:
// the tar writer fills the store's upload buffer (in place, for MinIO: the
// files are read straight into the part being filled), so only the copy
// buffer and the store's upload parts are ever in memory.
func (s *Service) write(ctx context.Context, w store.Workspace, key string) (int64, archive.Stats, error) {
	root, err := os.OpenRoot(w.ProjectPath)
	if err != nil {
		return 0, archive.Stats{}, fmt.Errorf("open project directory: %w", err)
	}
	defer root.Close()
	out, err := s.blobs.Create(ctx, key)
	if err != nil {
		return 0, archive.Stats{}, err
	}
	st, err := archive.Write(ctx, out, root, archive.WriteOptions{Gzip: s.opts.Gzip})
	if err != nil {
		// When the store stopped the archive, its own error says why.
		if serr := out.Abort(); serr != nil {
			return 0, st, serr
		}
		return 0, st, fmt.Errorf("archive the files: %w", err)
	}
	size, err := out.Commit()
	return size, st, err
}

// Delete removes a snapshot and its archive.
func (s *Service) Delete(ctx context.Context, p auth.Principal, wsID, id string) error {
	const act = "snapshot.delete"
	w, err := s.authorize(ctx, p, wsID, ActDelete, act)
	if err != nil {
		return err
	}
	n, err := s.snapshotOf(ctx, w.ID, id)
	if err != nil {
		return err
	}
	if n.Status == store.SnapshotCreating {
		return ErrBusy
	}
	if err := s.blobs.Delete(ctx, n.BlobKey); err != nil {
		err = unavailable(err)
		s.record(ctx, p, act, w.ID, audit.ResultError, "snapshot="+n.ID+": "+err.Error())
		return err
	}
	if err := s.store.DeleteSnapshot(ctx, n.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	s.record(ctx, p, act, w.ID, audit.ResultOK, "snapshot="+n.ID)
	return nil
}

// openArchive opens a ready snapshot's archive.
func (s *Service) openArchive(ctx context.Context, n store.Snapshot) (io.ReadCloser, error) {
	if n.Status != store.SnapshotReady {
		return nil, ErrNotReady
	}
	rc, err := s.blobs.Open(ctx, n.BlobKey)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("the snapshot's archive is missing from the object store: %w", err)
		}
		return nil, unavailable(err)
	}
	return rc, nil
}

func (s *Service) extractOptions() archive.ExtractOptions {
	return archive.ExtractOptions{MaxBytes: s.opts.MaxBytes, MaxEntries: s.opts.MaxEntries, Chown: true}
}

// extractError says what a failed extraction means to the user.
func extractError(err error) error {
	switch {
	case errors.Is(err, archive.ErrTooLarge):
		return fmt.Errorf("%w; raise AICODE_SNAPSHOT_MAX_GB to restore it. Nothing was changed", err)
	case errors.Is(err, archive.ErrTooMany):
		return fmt.Errorf("%w; raise AICODE_SNAPSHOT_MAX_ENTRIES to restore it. Nothing was changed", err)
	}
	return unavailable(err)
}

// RestoreNew creates a workspace called name from a snapshot (a fork): the
// source's image and limits, the snapshot's files. On failure the new
// workspace is removed again.
func (s *Service) RestoreNew(ctx context.Context, p auth.Principal, wsID, id, name string) (store.Workspace, error) {
	const act = "snapshot.restore"
	src, err := s.authorize(ctx, p, wsID, ActRestore, act)
	if err != nil {
		return store.Workspace{}, err
	}
	n, err := s.snapshotOf(ctx, src.ID, id)
	if err != nil {
		return store.Workspace{}, err
	}
	name = strings.TrimSpace(name)
	if rel, err := workspace.CleanRelative(name); err == nil {
		if _, exists, err := s.ws.Root().Resolve(rel); err == nil && exists {
			return store.Workspace{}, validation.Field("name", "a directory with this name exists already in the workspaces root; choose another name")
		}
	}
	rc, err := s.openArchive(ctx, n)
	if err != nil {
		s.record(ctx, p, act, src.ID, audit.ResultError, "snapshot="+n.ID+": "+err.Error())
		return store.Workspace{}, err
	}
	defer rc.Close()
	w, err := s.ws.Create(ctx, p, workspace.CreateInput{Name: name, Image: src.Image,
		MemoryMB: src.Limits.MemoryMB, CPUs: src.Limits.CPUs, PidsLimit: src.Limits.PidsLimit})
	if err != nil {
		return store.Workspace{}, err
	}
	fail := func(err error) (store.Workspace, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := s.ws.Delete(cctx, p, w.ID, w.CreatedDir); derr != nil {
			s.log.Error("remove the workspace of a failed restore", "workspace", w.ID, "err", derr)
		}
		s.record(cctx, p, act, src.ID, audit.ResultError, "snapshot="+n.ID+" into new workspace "+name+": "+err.Error())
		return store.Workspace{}, err
	}
	if !w.CreatedDir {
		return fail(errors.New("the new workspace's directory existed already; choose another name"))
	}
	root, err := os.OpenRoot(w.ProjectPath)
	if err != nil {
		return fail(fmt.Errorf("open the new project directory: %w", err))
	}
	_, err = archive.Extract(ctx, rc, root, s.extractOptions())
	root.Close()
	if err != nil {
		return fail(extractError(err))
	}
	s.record(ctx, p, act, src.ID, audit.ResultOK, "snapshot="+n.ID+" into new workspace "+w.Name+" ("+w.ID+")")
	return w, nil
}

// RestoreOver replaces the workspace's files with a snapshot's. The
// archive is extracted next to the project directory first; only when
// that succeeded is the container stopped, the directories swapped and the
// container started again, so any failure before the swap leaves the old
// files exactly as they were.
func (s *Service) RestoreOver(ctx context.Context, p auth.Principal, wsID, id string) (store.Workspace, error) {
	const act = "snapshot.restore"
	w, err := s.authorize(ctx, p, wsID, ActRestore, act)
	if err != nil {
		return store.Workspace{}, err
	}
	n, err := s.snapshotOf(ctx, w.ID, id)
	if err != nil {
		return store.Workspace{}, err
	}
	unlock, ok := s.lock(w.ID)
	if !ok {
		return store.Workspace{}, ErrBusy
	}
	defer unlock()
	fail := func(err error) (store.Workspace, error) {
		s.record(context.WithoutCancel(ctx), p, act, w.ID, audit.ResultError, "snapshot="+n.ID+" over the workspace: "+err.Error())
		return store.Workspace{}, err
	}
	wsRoot := s.ws.Root()
	if err := wsRoot.CheckExisting(w.ProjectPath); err != nil {
		return fail(err)
	}
	rc, err := s.openArchive(ctx, n)
	if err != nil {
		return fail(err)
	}
	defer rc.Close()

	top, err := os.OpenRoot(wsRoot.Path())
	if err != nil {
		return fail(fmt.Errorf("open workspaces root: %w", err))
	}
	defer top.Close()
	rel, err := filepath.Rel(wsRoot.Path(), w.ProjectPath)
	if err != nil {
		return fail(workspace.ErrOutsideRoot)
	}
	parent := filepath.Dir(rel)
	tmp := filepath.Join(parent, ".aicode-restore-"+n.ID)
	old := filepath.Join(parent, ".aicode-replaced-"+n.ID)
	// Leftovers of an attempt cut short are removed first.
	_ = top.RemoveAll(tmp)
	_ = top.RemoveAll(old)
	if err := top.Mkdir(tmp, 0o700); err != nil {
		return fail(fmt.Errorf("prepare the restore: %w", err))
	}
	cleanTmp := func() {
		if err := top.RemoveAll(tmp); err != nil {
			s.log.Error("remove a failed restore's files", "dir", tmp, "err", err)
		}
	}
	troot, err := top.OpenRoot(tmp)
	if err != nil {
		cleanTmp()
		return fail(fmt.Errorf("prepare the restore: %w", err))
	}
	_, err = archive.Extract(ctx, rc, troot, s.extractOptions())
	troot.Close()
	if err != nil {
		cleanTmp()
		return fail(extractError(err))
	}

	// Swap with the container stopped, so nothing writes into the old tree
	// meanwhile and the container mounts the new one when it starts.
	wasRunning := w.Status == store.StatusRunning || w.Desired == store.DesiredRunning
	sctx := context.WithoutCancel(ctx)
	if wasRunning {
		if _, err := s.ws.Do(sctx, p, w.ID, workspace.ActionStop); err != nil {
			cleanTmp()
			return fail(fmt.Errorf("stop the workspace before swapping its files: %w; nothing was changed", err))
		}
	}
	restart := func() {
		if wasRunning {
			if _, err := s.ws.Do(sctx, p, w.ID, workspace.ActionStart); err != nil {
				s.log.Warn("start the workspace after a restore", "workspace", w.ID, "err", err)
			}
		}
	}
	if err := top.Rename(rel, old); err != nil {
		cleanTmp()
		restart()
		return fail(fmt.Errorf("move the old files aside: %w; nothing was changed", err))
	}
	if err := top.Rename(tmp, rel); err != nil {
		if rerr := top.Rename(old, rel); rerr != nil {
			s.log.Error("put the old files back after a failed restore", "workspace", w.ID, "old", old, "err", rerr)
		}
		cleanTmp()
		restart()
		return fail(fmt.Errorf("move the restored files in place: %w; the old files were put back", err))
	}
	restart()
	if err := top.RemoveAll(old); err != nil {
		s.log.Warn("remove the replaced files", "dir", old, "err", err)
	}
	s.record(ctx, p, act, w.ID, audit.ResultOK, "snapshot="+n.ID+" over the workspace")
	got, _, err := s.ws.GetWithAccess(sctx, p, w.ID)
	if err != nil {
		return w, nil
	}
	return got, nil
}
