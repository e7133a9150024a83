// Package store persists users, sessions, workspaces and audit events behind
// one interface. Two backends implement it over database/sql: SQLite
// (modernc.org/sqlite, the zero-config default) and PostgreSQL (jackc/pgx v5).
// Both pass the same conformance suite (storetest).
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; backends wrap driver errors into these.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict is a unique-constraint violation (duplicate name, path...).
	ErrConflict = errors.New("already exists")
	// ErrSetupDone is returned by CreateFirstAdmin once any user exists.
	ErrSetupDone = errors.New("setup already completed")
)

// Role is a user's role. Viewers read, members manage their own workspaces,
// admins see and manage everything.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Roles lists every role, most privileged first.
var Roles = []Role{RoleAdmin, RoleMember, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleMember || r == RoleViewer
}

type User struct {
	ID           string
	Username     string
	PasswordHash string
	Role         Role
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  *time.Time
}

// Session is a server-side login session. The cookie carries a random token;
// only its SHA-256 (ID) is stored, so a database leak yields no usable cookie.
type Session struct {
	ID        string
	UserID    string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
	IP        string
	UserAgent string
}

// SessionUser is a session joined with its (enabled or not) user.
type SessionUser struct {
	Session Session
	User    User
}

// DesiredState is what the user asked for.
type DesiredState string

const (
	DesiredRunning DesiredState = "running"
	DesiredStopped DesiredState = "stopped"
)

// Status is the last state observed on the engine.
type Status string

const (
	StatusCreating   Status = "creating"
	StatusRunning    Status = "running"
	StatusStopped    Status = "stopped"
	StatusRestarting Status = "restarting"
	StatusPaused     Status = "paused"
	StatusStarting   Status = "starting"
	StatusStopping   Status = "stopping"
	StatusRemoving   Status = "removing"
	// StatusMissing: the container was removed outside the app.
	StatusMissing Status = "missing"
	// StatusError: the last lifecycle action failed; StatusDetail says why.
	StatusError Status = "error"
	// StatusUnknown: the engine could not be asked.
	StatusUnknown Status = "unknown"
)

// Limits are a workspace's container resource limits.
type Limits struct {
	MemoryMB  int64
	CPUs      float64
	PidsLimit int64
}

type Workspace struct {
	ID          string
	Name        string
	OwnerID     string
	OwnerName   string // filled by reads that join users
	ProjectPath string // absolute, symlinks resolved, inside the workspaces root
	// CreatedDir records whether the app created ProjectPath (and so may
	// offer to delete it) or adopted an existing directory.
	CreatedDir   bool
	Image        string
	Limits       Limits
	Desired      DesiredState
	Status       Status
	StatusDetail string
	ContainerID  string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// ObservedAt is when Status was last confirmed against the engine.
	ObservedAt *time.Time
}

// WorkspaceFilter selects and pages workspaces. Limit is required (<= 500).
type WorkspaceFilter struct {
	OwnerID string // empty: everyone's
	// VisibleTo, when set, keeps workspaces this user owns or that are
	// shared with them (OwnerID is then ignored).
	VisibleTo string
	Query     string // substring of the name, case-insensitive
	Status    Status // empty: any
	Limit     int
	Offset    int
}

// StatusUpdate records an observation of a workspace's container.
type StatusUpdate struct {
	Status      Status
	Detail      string
	ContainerID *string // nil leaves the stored id unchanged
	ObservedAt  time.Time
}

// Share gives a user access to someone else's workspace: watching its
// terminals, and with CanWrite typing into them.
type Share struct {
	WorkspaceID string
	UserID      string
	Username    string // filled by reads
	CanWrite    bool
	CreatedAt   time.Time
}

type AuditEvent struct {
	ID           int64
	At           time.Time
	ActorID      string // empty for anonymous (failed logins, setup)
	ActorName    string
	Action       string // e.g. "workspace.create"
	ResourceType string
	ResourceID   string
	Result       string // "ok", "denied" or "error"
	Detail       string
	IP           string
	UserAgent    string
}

// AuditFilter selects audit events, newest first. BeforeID pages backwards.
type AuditFilter struct {
	ActorID      string
	Action       string // prefix match: "workspace." matches all workspace actions
	ResourceType string
	ResourceID   string
	Result       string
	BeforeID     int64
	Limit        int
}

// Store is the persistence interface. All methods take ctx first; reads that
// miss return ErrNotFound, unique violations return ErrConflict.
type Store interface {
	// Tx runs fn in one transaction; fn's Store is bound to it.
	Tx(ctx context.Context, fn func(Store) error) error
	Ping(ctx context.Context) error
	Close() error
	// Dialect names the backend: "sqlite" or "postgres".
	Dialect() string

	CreateFirstAdmin(ctx context.Context, u *User) error
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	CountUsers(ctx context.Context) (int, error)
	CountActiveAdmins(ctx context.Context) (int, error)
	UpdateUserRole(ctx context.Context, id string, role Role) error
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	SetUserPassword(ctx context.Context, id, hash string) error
	TouchUserLogin(ctx context.Context, id string, at time.Time) error

	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session and its user if it has not expired at now.
	GetSession(ctx context.Context, id string, now time.Time) (SessionUser, error)
	ExtendSession(ctx context.Context, id string, expiresAt time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)

	CreateWorkspace(ctx context.Context, w *Workspace) error
	GetWorkspace(ctx context.Context, id string) (Workspace, error)
	GetWorkspaceByName(ctx context.Context, name string) (Workspace, error)
	// ListWorkspaces returns one page and the total matching count.
	ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, int, error)
	// AllWorkspaces returns every workspace (for reconciliation).
	AllWorkspaces(ctx context.Context) ([]Workspace, error)
	SetWorkspaceDesired(ctx context.Context, id string, d DesiredState) error
	SetWorkspaceStatus(ctx context.Context, id string, u StatusUpdate) error
	DeleteWorkspace(ctx context.Context, id string) error
	// WorkspaceByPath finds the workspace using a project directory.
	WorkspaceByPath(ctx context.Context, path string) (Workspace, error)

	// SetShare creates or updates a share.
	SetShare(ctx context.Context, sh Share) error
	// GetShare returns the share of a workspace with a user (ErrNotFound).
	GetShare(ctx context.Context, workspaceID, userID string) (Share, error)
	// ListShares returns a workspace's shares, by username.
	ListShares(ctx context.Context, workspaceID string) ([]Share, error)
	DeleteShare(ctx context.Context, workspaceID, userID string) error

	AppendAudit(ctx context.Context, e *AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// AppendWorkspaceEvent stores a container event once; it reports
	// whether it was new (the engine replays events after reconnecting).
	AppendWorkspaceEvent(ctx context.Context, e *WorkspaceEvent) (bool, error)
	// ListWorkspaceEvents returns workspace events, newest first.
	ListWorkspaceEvents(ctx context.Context, f WorkspaceEventFilter) ([]WorkspaceEvent, error)
	// TrimWorkspaceEvents keeps only a workspace's newest keep events.
	TrimWorkspaceEvents(ctx context.Context, workspaceID string, keep int) (int64, error)

	// SaveStatsPoints stores one-minute resource points (replacing a
	// minute already stored).
	SaveStatsPoints(ctx context.Context, points []StatsPoint) error
	// StatsPoints returns a workspace's points from since on, oldest first.
	StatsPoints(ctx context.Context, workspaceID string, since time.Time) ([]StatsPoint, error)
	// PruneStatsPoints deletes points older than before.
	PruneStatsPoints(ctx context.Context, before time.Time) (int64, error)

	CreateTask(ctx context.Context, t *Task) error
	GetTask(ctx context.Context, id string) (Task, error)
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, error)
	// QueueHead is a workspace's oldest queued task.
	QueueHead(ctx context.Context, workspaceID string) (Task, error)
	// QueuedWorkspaces lists workspaces with queued tasks and none running.
	QueuedWorkspaces(ctx context.Context) ([]string, error)
	// ClaimTask starts a queued task if it heads its workspace's queue,
	// nothing else there runs and fewer than maxRunning run in all.
	ClaimTask(ctx context.Context, id, runner string, maxRunning int) (bool, error)
	UpdateTaskRun(ctx context.Context, t *Task) error
	RequeueTask(ctx context.Context, id, detail string) error
	RequestTaskCancel(ctx context.Context, id, detail string) (TaskStatus, error)
	HeartbeatTasks(ctx context.Context, runner string) error
	OrphanedTasks(ctx context.Context, runner string, staleBefore time.Time) ([]Task, error)
	TaskTotals(ctx context.Context, f TaskTotalsFilter) (TaskTotals, error)
	// CountActiveTasks counts queued and running tasks (for metrics).
	CountActiveTasks(ctx context.Context) (queued, running int, err error)
	AppendTaskEvents(ctx context.Context, events []TaskEvent) error
	ListTaskEvents(ctx context.Context, taskID string, afterSeq int64, limit int) ([]TaskEvent, error)

	SetCredential(ctx context.Context, c Credential) error
	GetCredential(ctx context.Context, scope, ownerID string) (Credential, error)
	DeleteCredential(ctx context.Context, scope, ownerID string) error

	// Workspace snapshots and their schedules (snapshots.go).
	CreateSnapshot(ctx context.Context, n *Snapshot) error
	GetSnapshot(ctx context.Context, id string) (Snapshot, error)
	ListSnapshots(ctx context.Context, workspaceID string, limit int) ([]Snapshot, error)
	FinishSnapshot(ctx context.Context, id string, status SnapshotStatus, errMsg string, size, files int64) error
	TouchSnapshot(ctx context.Context, id string) error
	FailStaleSnapshots(ctx context.Context, before time.Time, errMsg string) ([]Snapshot, error)
	OrphanSnapshots(ctx context.Context, limit int) ([]Snapshot, error)
	DeleteSnapshot(ctx context.Context, id string) error
	SetSnapshotSchedule(ctx context.Context, sc SnapshotSchedule) error
	GetSnapshotSchedule(ctx context.Context, workspaceID string) (SnapshotSchedule, error)
	DeleteSnapshotSchedule(ctx context.Context, workspaceID string) error
	DueSnapshotSchedules(ctx context.Context, now time.Time, limit int) ([]SnapshotSchedule, error)
	ClaimSnapshotSchedule(ctx context.Context, workspaceID string, prev, next time.Time) (bool, error)

	// External sign-in (identities.go): provider users linked to local
	// users, and the provider's tokens behind a session.
	LinkIdentity(ctx context.Context, id *Identity) error
	GetIdentity(ctx context.Context, provider, subject string) (Identity, User, error)
	ListIdentities(ctx context.Context, provider string) (map[string]Identity, error)
	SetIdentityEmail(ctx context.Context, provider, subject, email string) error
	SaveSessionTokens(ctx context.Context, t SessionTokens) error
	GetSessionTokens(ctx context.Context, sessionID string) (SessionTokens, error)
}

// NewID returns a fresh random id of the form the store uses, for callers
// that need an entity's id before saving it.
func NewID() string { return newID() }
