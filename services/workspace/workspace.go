// Package workspace owns the workspace lifecycle: validation and policy,
// project directories under the workspaces root, one hardened container per
// workspace on the Docker engine, and keeping the stored status in line with
// what the engine reports.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/bus"
	"aicode/services/config"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/validation"
)

// Errors callers match with errors.Is.
var (
	ErrNotFound = errors.New("workspace not found")
)

// ImageMissingError says which image is missing and how to get it.
type ImageMissingError struct{ Image string }

func (e *ImageMissingError) Error() string {
	return fmt.Sprintf("The image %q is not on the Docker engine. Build it with `make workspace-image` "+
		"(or `sudo docker/workspace/build-offline.sh` on hosts without registry access), or choose another image.", e.Image)
}

// TopicStatus is the bus topic on which every workspace change is published
// as a Change.
const TopicStatus = "workspace.status"

// Change is published whenever a workspace's stored state changes.
type Change struct {
	Workspace store.Workspace
	// Created and Deleted change which workspaces exist, and Reload who
	// sees them (shares), so lists reload.
	Created bool
	Deleted bool
	Reload  bool
}

// Engine is what the service needs from the Docker engine.
type Engine interface {
	Ping(ctx context.Context) error
	Health() (error, time.Time)
	ImageExists(ctx context.Context, ref string) (bool, error)
	CreateContainer(ctx context.Context, s engine.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RestartContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	InspectContainer(ctx context.Context, id string) (engine.ContainerState, error)
	ListManaged(ctx context.Context) ([]engine.ContainerState, error)
	Events(ctx context.Context, since time.Time) (<-chan engine.Event, <-chan error)
}

// Service manages workspaces.
type Service struct {
	store  store.Store
	engine Engine
	bus    *bus.Bus
	audit  *audit.Recorder
	log    *slog.Logger
	root   Root
	def    config.WorkspaceDefaults
	uid    int
	gid    int

	// StopTimeout is how long a container gets to exit before it is killed.
	StopTimeout time.Duration

	locks keyedMutex
	now   func() time.Time
}

// NewService wires the workspace service.
func NewService(st store.Store, eng Engine, b *bus.Bus, rec *audit.Recorder, log *slog.Logger, root Root, def config.WorkspaceDefaults) *Service {
	uid, gid := ParseUser(def.User)
	return &Service{
		store: st, engine: eng, bus: b, audit: rec, log: log, root: root, def: def,
		uid: uid, gid: gid, StopTimeout: 10 * time.Second, now: time.Now,
		locks: keyedMutex{m: map[string]*lockEntry{}},
	}
}

// Root is the workspaces root in use.
func (s *Service) Root() Root { return s.root }

// Defaults are the configured container defaults and ceilings.
func (s *Service) Defaults() config.WorkspaceDefaults { return s.def }

// EngineHealth reports the last known engine reachability.
func (s *Service) EngineHealth() error {
	err, _ := s.engine.Health()
	return err
}

// ParseUser reads "uid:gid" from the configured workspace user; a name
// rather than a number means files are not chowned (-1).
func ParseUser(u string) (int, int) {
	parts := strings.SplitN(u, ":", 2)
	uid, err := strconv.Atoi(parts[0])
	if err != nil {
		return -1, -1
	}
	gid := uid
	if len(parts) == 2 {
		if g, err := strconv.Atoi(parts[1]); err == nil {
			gid = g
		}
	}
	return uid, gid
}

// Name rules: a DNS label, so it is also a valid hostname and container
// name part.
var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// Image references as the engine accepts them, kept deliberately simple.
var imageRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$`)

// MaxNameLen is the longest workspace name.
const MaxNameLen = 40

// CreateInput is a create request as typed by a user. Zero limits take the
// defaults.
type CreateInput struct {
	Name      string
	Directory string // relative to the root; empty means the name
	Image     string
	MemoryMB  int64
	CPUs      float64
	PidsLimit int64
}

// Validate checks the input and fills defaults; it returns
// validation.Errors naming each bad field.
func (s *Service) validate(in *CreateInput) (rel string, err error) {
	errs := validation.Errors{}
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		errs.Add("name", "enter a name")
	case len(in.Name) > MaxNameLen:
		errs.Add("name", fmt.Sprintf("use at most %d characters", MaxNameLen))
	case !nameRe.MatchString(in.Name):
		errs.Add("name", "use lowercase letters, digits and dashes, starting and ending with a letter or digit")
	}
	dir := in.Directory
	if strings.TrimSpace(dir) == "" {
		dir = in.Name
	}
	if _, bad := errs["name"]; !bad || strings.TrimSpace(in.Directory) != "" {
		if rel, err = CleanRelative(dir); err != nil {
			errs.Add("directory", err.Error())
		}
	}
	in.Image = strings.TrimSpace(in.Image)
	if in.Image == "" {
		in.Image = s.def.Image
	} else if !imageRe.MatchString(in.Image) {
		errs.Add("image", "not a valid image reference")
	}
	if in.MemoryMB == 0 {
		in.MemoryMB = s.def.MemoryMB
	} else if in.MemoryMB < 16 || in.MemoryMB > s.def.MaxMemoryMB {
		errs.Add("memory_mb", fmt.Sprintf("choose between 16 and %d MiB", s.def.MaxMemoryMB))
	}
	if in.CPUs == 0 {
		in.CPUs = s.def.CPUs
	} else if math.IsNaN(in.CPUs) || in.CPUs < 0.01 || in.CPUs > s.def.MaxCPUs {
		errs.Add("cpus", fmt.Sprintf("choose between 0.01 and %g CPUs", s.def.MaxCPUs))
	}
	if in.PidsLimit == 0 {
		in.PidsLimit = s.def.PidsLimit
	} else if in.PidsLimit < 16 || in.PidsLimit > s.def.MaxPidsLimit {
		errs.Add("pids_limit", fmt.Sprintf("choose between 16 and %d processes", s.def.MaxPidsLimit))
	}
	return rel, errs.Err()
}

// Create validates the input, prepares the project directory, creates and
// starts the container. On any failure nothing is left behind.
func (s *Service) Create(ctx context.Context, p auth.Principal, in CreateInput) (store.Workspace, error) {
	if !auth.Allowed(p, auth.ActWorkspaceCreate, "") {
		s.record(ctx, p, "workspace.create", "", audit.ResultDenied, "")
		return store.Workspace{}, auth.ErrForbidden
	}
	rel, err := s.validate(&in)
	if err != nil {
		return store.Workspace{}, err
	}
	if _, err := s.store.GetWorkspaceByName(ctx, in.Name); err == nil {
		return store.Workspace{}, validation.Field("name", "a workspace with this name exists already")
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Workspace{}, fmt.Errorf("check name: %w", err)
	}
	path, exists, err := s.root.Resolve(rel)
	if err != nil {
		return store.Workspace{}, validation.Field("directory", err.Error())
	}
	if other, err := s.store.WorkspaceByPath(ctx, path); err == nil {
		return store.Workspace{}, validation.Field("directory", fmt.Sprintf("workspace %q already uses this directory", other.Name))
	}
	ok, err := s.engine.ImageExists(ctx, in.Image)
	if err != nil {
		return store.Workspace{}, err
	}
	if !ok {
		return store.Workspace{}, &ImageMissingError{Image: in.Image}
	}

	w := &store.Workspace{
		ID:          store.NewID(),
		Name:        in.Name,
		OwnerID:     p.UserID,
		OwnerName:   p.Username,
		ProjectPath: path,
		CreatedDir:  !exists,
		Image:       in.Image,
		Limits:      store.Limits{MemoryMB: in.MemoryMB, CPUs: in.CPUs, PidsLimit: in.PidsLimit},
		Desired:     store.DesiredRunning,
		Status:      store.StatusCreating,
	}
	// Locked before the row exists, so the watcher never sees it half made.
	unlock := s.locks.lock(w.ID)
	defer unlock()
	if err := s.store.CreateWorkspace(ctx, w); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Workspace{}, validation.Field("name", "a workspace with this name or directory exists already")
		}
		return store.Workspace{}, fmt.Errorf("save workspace: %w", err)
	}

	fail := func(err error) (store.Workspace, error) {
		// Undo in reverse; the engine and disk calls must run even if the
		// request was cancelled, or they would leak.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if w.ContainerID != "" {
			if rerr := s.engine.RemoveContainer(cctx, w.ContainerID); rerr != nil {
				s.log.Error("roll back container", "workspace", w.ID, "err", rerr)
			}
		}
		if w.CreatedDir {
			if rerr := s.root.RemoveAll(w.ProjectPath); rerr != nil {
				s.log.Error("roll back project directory", "workspace", w.ID, "err", rerr)
			}
		}
		if rerr := s.store.DeleteWorkspace(cctx, w.ID); rerr != nil {
			s.log.Error("roll back workspace row", "workspace", w.ID, "err", rerr)
		}
		// Lists may have shown it while it was being created.
		s.publish(*w, true)
		s.record(cctx, p, "workspace.create", w.ID, audit.ResultError, "name="+w.Name+": "+err.Error())
		return store.Workspace{}, err
	}
	if !exists {
		if err := s.root.Create(path, s.uid, s.gid); err != nil {
			return fail(err)
		}
	}
	id, err := s.engine.CreateContainer(ctx, s.spec(*w))
	if err != nil {
		return fail(err)
	}
	w.ContainerID = id
	if err := s.engine.StartContainer(ctx, id); err != nil {
		return fail(err)
	}
	s.record(ctx, p, "workspace.create", w.ID, audit.ResultOK, "name="+w.Name+" image="+w.Image)
	created, err := s.observe(ctx, w.ID, &id)
	if err != nil {
		return store.Workspace{}, err
	}
	s.bus.Publish(TopicStatus, Change{Workspace: created, Created: true})
	return created, nil
}

// Get returns a workspace p may see.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (store.Workspace, error) {
	w, _, err := s.GetWithAccess(ctx, p, id)
	return w, err
}

// GetWithAccess returns a workspace p may see and p's access to it.
func (s *Service) GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error) {
	w, err := s.store.GetWorkspace(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Workspace{}, auth.Access{}, ErrNotFound
	}
	if err != nil {
		return store.Workspace{}, auth.Access{}, fmt.Errorf("get workspace: %w", err)
	}
	acc, err := s.access(ctx, p, w)
	if err != nil {
		return store.Workspace{}, auth.Access{}, err
	}
	if !auth.CanSee(p, acc) {
		return store.Workspace{}, auth.Access{}, ErrNotFound
	}
	return w, acc, nil
}

// access works out p's standing on w; only a share needs a lookup.
func (s *Service) access(ctx context.Context, p auth.Principal, w store.Workspace) (auth.Access, error) {
	acc := auth.Access{OwnerID: w.OwnerID}
	if p.UserID == "" || p.UserID == w.OwnerID || p.Role == store.RoleAdmin {
		return acc, nil
	}
	sh, err := s.store.GetShare(ctx, w.ID, p.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return acc, nil
	case err != nil:
		return acc, fmt.Errorf("look up share: %w", err)
	}
	acc.Shared, acc.CanWrite = true, sh.CanWrite
	return acc, nil
}

// CanSee reports whether p may see w, looking up a share if needed (used to
// filter live events).
func (s *Service) CanSee(ctx context.Context, p auth.Principal, w store.Workspace) bool {
	acc, err := s.access(ctx, p, w)
	return err == nil && auth.CanSee(p, acc)
}

// ListOptions select a page of workspaces.
type ListOptions struct {
	Query   string
	Status  store.Status
	Page    int // 1-based
	PerPage int
}

// Page is one page of workspaces.
type Page struct {
	Items   []store.Workspace
	Total   int
	Page    int
	PerPage int
}

// Pages is the number of pages.
func (p Page) Pages() int {
	if p.PerPage <= 0 || p.Total == 0 {
		return 1
	}
	return (p.Total + p.PerPage - 1) / p.PerPage
}

// MaxPerPage bounds a list page.
const MaxPerPage = 200

// List returns the workspaces p may see, one page at a time.
func (s *Service) List(ctx context.Context, p auth.Principal, o ListOptions) (Page, error) {
	if !auth.Allowed(p, auth.ActWorkspaceList, "") {
		return Page{}, auth.ErrForbidden
	}
	if o.PerPage <= 0 || o.PerPage > MaxPerPage {
		o.PerPage = 50
	}
	if o.Page < 1 {
		o.Page = 1
	}
	q := strings.TrimSpace(o.Query)
	if len(q) > MaxNameLen {
		q = q[:MaxNameLen]
	}
	items, total, err := s.store.ListWorkspaces(ctx, store.WorkspaceFilter{
		VisibleTo: auth.ListScope(p),
		Query:     q,
		Status:    o.Status,
		Limit:     o.PerPage,
		Offset:    (o.Page - 1) * o.PerPage,
	})
	if err != nil {
		return Page{}, fmt.Errorf("list workspaces: %w", err)
	}
	return Page{Items: items, Total: total, Page: o.Page, PerPage: o.PerPage}, nil
}

// ContainerName is the engine-side name of a workspace's container: the
// workspace name for people reading `docker ps`, plus part of the id so a
// re-created workspace never collides with a leftover.
func ContainerName(w store.Workspace) string {
	id := w.ID
	if len(id) > 6 {
		id = id[:6]
	}
	return "aicode-" + w.Name + "-" + id
}

// keepAlive is the container's main process: it idles, and exits at once on
// SIGTERM (forwarded by the init) so stopping is quick.
var keepAlive = []string{"/bin/sh", "-c", `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`}

// WorkDir is where the project is mounted inside the container.
const WorkDir = "/workspace"

func (s *Service) spec(w store.Workspace) engine.ContainerSpec {
	return engine.ContainerSpec{
		Name:     ContainerName(w),
		Image:    w.Image,
		Cmd:      keepAlive,
		User:     s.def.User,
		Hostname: w.Name,
		WorkDir:  WorkDir,
		Env:      []string{"AICODE_WORKSPACE=" + w.Name},
		Labels: map[string]string{
			engine.LabelManagedBy:     engine.ManagedByValue,
			engine.LabelWorkspaceID:   w.ID,
			engine.LabelWorkspaceName: w.Name,
		},
		BindSource:  w.ProjectPath,
		BindTarget:  WorkDir,
		MemoryBytes: w.Limits.MemoryMB << 20,
		NanoCPUs:    int64(math.Round(w.Limits.CPUs * 1e9)),
		PidsLimit:   w.Limits.PidsLimit,
		NetworkMode: s.def.Network,
	}
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

func (s *Service) publish(w store.Workspace, deleted bool) {
	s.bus.Publish(TopicStatus, Change{Workspace: w, Deleted: deleted})
}

// keyedMutex serialises lifecycle actions per workspace, so a double click
// on Stop, or the watcher, never interleaves with an action in flight.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch   chan struct{}
	refs int
}

func (k *keyedMutex) entry(key string) *lockEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[key]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	return e
}

func (k *keyedMutex) release(key string, e *lockEntry) {
	k.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(k.m, key)
	}
	k.mu.Unlock()
}

// lock blocks until key is free.
func (k *keyedMutex) lock(key string) func() {
	e := k.entry(key)
	e.ch <- struct{}{}
	return func() { <-e.ch; k.release(key, e) }
}

// tryLock takes key only if it is free.
func (k *keyedMutex) tryLock(key string) (func(), bool) {
	e := k.entry(key)
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; k.release(key, e) }, true
	default:
		k.release(key, e)
		return nil, false
	}
}

// RunningWorkspaces returns every workspace last seen running (for the
// stats collector; no principal: it is the server's own bookkeeping).
func (s *Service) RunningWorkspaces(ctx context.Context) ([]store.Workspace, error) {
	all, err := s.store.AllWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, w := range all {
		if w.Status == store.StatusRunning && w.ContainerID != "" {
			out = append(out, w)
		}
	}
	return out, nil
}
