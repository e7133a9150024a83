// Package engine is the narrow adapter between AICode Manager and the Docker
// Engine API. It is the only package that imports the Docker SDK; everything
// above it speaks in the types declared here.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
)

// MinAPIVersion is the oldest Engine API the app supports (Docker 20.10).
const MinAPIVersion = "1.41"

// Labels put on every container the app manages.
const (
	LabelManagedBy     = "io.aicode.managed-by"
	LabelWorkspaceID   = "io.aicode.workspace-id"
	LabelWorkspaceName = "io.aicode.workspace-name"
	ManagedByValue     = "aicode"
)

// Errors callers match with errors.Is. The wrapped message is the engine's
// own, cleaned of transport noise, so it can be shown to users.
var (
	ErrUnavailable   = errors.New("docker engine unreachable")
	ErrNotFound      = errors.New("container not found")
	ErrImageNotFound = errors.New("image not found")
	ErrConflict      = errors.New("conflict")
	ErrTooOld        = errors.New("docker engine too old")
)

// Engine wraps a Docker client with API version negotiation.
type Engine struct {
	cli  *client.Client
	host string
	// onError is told of every failed engine call (metrics).
	onError func(op, kind string)

	mu        sync.Mutex
	lastErr   error
	checkedAt time.Time
}

// Options select the engine endpoint.
type Options struct {
	Host       string // empty: DOCKER_HOST or the local socket
	APIVersion string // empty: negotiate
	// OnError, when set, is called for every failed engine API call with
	// the operation and the kind of failure (unavailable, not_found,
	// conflict, too_old, other); both come from bounded sets, fit for
	// metric labels. It must not block.
	OnError func(op, kind string)
}

// New builds a client; it does not contact the engine.
func New(opts Options) (*Engine, error) {
	clientOpts := []client.Opt{client.FromEnv}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	if opts.APIVersion != "" {
		clientOpts = append(clientOpts, client.WithVersion(opts.APIVersion))
	} else {
		clientOpts = append(clientOpts, client.WithAPIVersionNegotiation())
	}
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli, host: cli.DaemonHost(), onError: opts.OnError}, nil
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Host is the engine endpoint in use.
func (e *Engine) Host() string { return e.host }

// Info describes the engine.
type Info struct {
	ServerVersion string
	APIVersion    string // negotiated version used by this client
	OS            string
	CPUs          int
	MemoryBytes   int64
	Containers    int
	Running       int
	CgroupVersion string
}

// Ping checks the engine answers and is recent enough. It records the result
// for Health.
func (e *Engine) Ping(ctx context.Context) error {
	p, err := e.cli.Ping(ctx)
	if err == nil {
		// Settle the version now, so APIVersion reports what is spoken.
		e.cli.NegotiateAPIVersionPing(p)
	}
	if err == nil && p.APIVersion != "" && versions.LessThan(p.APIVersion, MinAPIVersion) {
		err = &Error{Op: "ping", Kind: ErrTooOld, Msg: fmt.Sprintf("the engine speaks API %s; AICode Manager needs %s or newer (Docker 20.10+)", p.APIVersion, MinAPIVersion)}
	}
	err = e.wrap(err, "ping")
	if errors.Is(err, ErrTooOld) {
		e.report("ping", err)
	}
	e.record(err)
	return err
}

// Health returns the outcome of the last engine call (nil when it worked)
// and when it was recorded. Calls of every kind feed it, so the dashboard
// learns about an outage from the first failing request.
func (e *Engine) Health() (error, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr, e.checkedAt
}

func (e *Engine) record(err error) {
	// Only transport-level failures say anything about reachability; a
	// missing container says the engine is fine.
	if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTooOld) {
		err = nil
	}
	e.mu.Lock()
	e.lastErr, e.checkedAt = err, time.Now()
	e.mu.Unlock()
}

// Info returns engine-wide facts.
func (e *Engine) Info(ctx context.Context) (Info, error) {
	in, err := e.cli.Info(ctx)
	if err = e.done(err, "engine info"); err != nil {
		return Info{}, err
	}
	return Info{
		ServerVersion: in.ServerVersion,
		APIVersion:    e.cli.ClientVersion(),
		OS:            in.OperatingSystem,
		CPUs:          in.NCPU,
		MemoryBytes:   in.MemTotal,
		Containers:    in.Containers,
		Running:       in.ContainersRunning,
		CgroupVersion: in.CgroupVersion,
	}, nil
}

// APIVersion is the API version the client speaks after negotiation.
func (e *Engine) APIVersion() string { return e.cli.ClientVersion() }

// ContainerSpec is everything the app decides about a workspace container.
type ContainerSpec struct {
	Name     string
	Image    string
	Cmd      []string
	User     string
	Hostname string
	WorkDir  string
	Env      []string
	Labels   map[string]string
	// BindSource is a host directory mounted read-write at BindTarget.
	BindSource string
	BindTarget string

	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
	NetworkMode string
	// CapAdd lists capabilities added back after dropping all of them.
	CapAdd []string
}

// ImageExists reports whether ref is present locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if err == nil {
		e.record(nil)
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		e.record(nil)
		return false, nil
	}
	return false, e.done(err, "inspect image "+ref)
}

// CreateContainer creates a hardened container and returns its id.
func (e *Engine) CreateContainer(ctx context.Context, s ContainerSpec) (string, error) {
	init := true
	pids := s.PidsLimit
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        s.Cmd,
		User:       s.User,
		Hostname:   s.Hostname,
		WorkingDir: s.WorkDir,
		Env:        s.Env,
		Labels:     s.Labels,
		// Keep stdin open and a TTY-less default: terminals are execs.
		AttachStdout: false,
		AttachStderr: false,
	}
	hc := &container.HostConfig{
		Mounts: []mount.Mount{{
			Type:   mount.TypeBind,
			Source: s.BindSource,
			Target: s.BindTarget,
		}},
		NetworkMode:   container.NetworkMode(s.NetworkMode),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		CapDrop:       []string{"ALL"},
		CapAdd:        s.CapAdd,
		SecurityOpt:   []string{"no-new-privileges:true"},
		Privileged:    false,
		// An init reaps the zombies left behind by terminal sessions and
		// forwards SIGTERM so stop is prompt.
		Init: &init,
		Resources: container.Resources{
			Memory:     s.MemoryBytes,
			MemorySwap: s.MemoryBytes, // no swap beyond the memory limit
			NanoCPUs:   s.NanoCPUs,
			PidsLimit:  &pids,
		},
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "10m", "max-file": "3"},
		},
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nil, nil, s.Name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			e.record(nil)
			return "", &Error{Op: "create container", Kind: ErrImageNotFound, Msg: "no image " + s.Image + " on the engine"}
		}
		return "", e.done(err, "create container")
	}
	e.record(nil)
	return resp.ID, nil
}

// StartContainer starts a created or stopped container.
func (e *Engine) StartContainer(ctx context.Context, id string) error {
	return e.done(e.cli.ContainerStart(ctx, id, container.StartOptions{}), "start container")
}

// StopContainer stops a container, killing it after timeout.
func (e *Engine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Seconds())
	return e.done(e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}), "stop container")
}

// RestartContainer stops then starts a container.
func (e *Engine) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Seconds())
	return e.done(e.cli.ContainerRestart(ctx, id, container.StopOptions{Timeout: &secs}), "restart container")
}

// RemoveContainer force-removes a container; a missing one is not an error.
func (e *Engine) RemoveContainer(ctx context.Context, id string) error {
	err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if cerrdefs.IsNotFound(err) {
		e.record(nil)
		return nil
	}
	return e.done(err, "remove container")
}

// ContainerState is what the app needs to know about a container.
type ContainerState struct {
	ID         string
	Name       string
	Labels     map[string]string
	State      string // created, running, paused, restarting, removing, exited, dead
	ExitCode   int
	OOMKilled  bool
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// InspectContainer returns a container's current state.
func (e *Engine) InspectContainer(ctx context.Context, id string) (ContainerState, error) {
	c, err := e.cli.ContainerInspect(ctx, id)
	if err = e.done(err, "inspect container"); err != nil {
		return ContainerState{}, err
	}
	st := ContainerState{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		st.Labels = c.Config.Labels
	}
	if c.State != nil {
		st.State = string(c.State.Status)
		st.ExitCode = c.State.ExitCode
		st.OOMKilled = c.State.OOMKilled
		st.Error = c.State.Error
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
		st.FinishedAt, _ = time.Parse(time.RFC3339Nano, c.State.FinishedAt)
	}
	return st, nil
}

// ListManaged lists every container (running or not) carrying the
// managed-by label.
func (e *Engine) ListManaged(ctx context.Context) ([]ContainerState, error) {
	list, err := e.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManagedBy+"="+ManagedByValue)),
	})
	if err = e.done(err, "list containers"); err != nil {
		return nil, err
	}
	out := make([]ContainerState, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, ContainerState{ID: c.ID, Name: name, Labels: c.Labels, State: string(c.State)})
	}
	return out, nil
}

// Event is one container lifecycle event.
type Event struct {
	ContainerID string
	Action      string // create, start, die, stop, kill, destroy, oom, pause, unpause, restart...
	Labels      map[string]string
	ExitCode    string
	Time        time.Time
}

// Events streams lifecycle events of managed containers, starting at since
// (zero: now), until ctx ends or the stream breaks; the error channel then
// yields exactly one error.
func (e *Engine) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	opts := events.ListOptions{}
	if !since.IsZero() {
		opts.Since = strconv.FormatInt(since.Unix(), 10)
	}
	opts.Filters = filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelManagedBy+"="+ManagedByValue),
	)
	msgs, errs := e.cli.Events(ctx, opts)
	out := make(chan Event, 64)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				ev := Event{
					ContainerID: m.Actor.ID,
					// exec_start: bash -> exec_start; keep the verb only.
					Action:   strings.SplitN(string(m.Action), ":", 2)[0],
					Labels:   m.Actor.Attributes,
					ExitCode: m.Actor.Attributes["exitCode"],
					Time:     time.Unix(0, m.TimeNano),
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					outErr <- ctx.Err()
					return
				}
			case err := <-errs:
				if err == nil || errors.Is(err, io.EOF) {
					err = &Error{Op: "event stream", Kind: ErrUnavailable, Msg: "the engine closed the event stream"}
				} else if ctx.Err() != nil {
					err = ctx.Err()
				} else {
					err = e.wrap(err, "event stream")
				}
				e.record(err)
				outErr <- err
				return
			}
		}
	}()
	return out, outErr
}

// ImportImage creates an image from a root filesystem tarball (docker import).
func (e *Engine) ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error {
	rc, err := e.cli.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return e.done(err, "import image")
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return e.done(err, "import image")
	}
	return e.done(nil, "import image")
}

// done wraps err and records the engine's health.
func (e *Engine) done(err error, op string) error {
	err = e.wrap(err, op)
	e.record(err)
	return err
}

// Error is an engine failure with a message fit for users. Kind is one of
// the sentinels above (or nil), so errors.Is still matches them.
type Error struct {
	Op   string
	Kind error
	Msg  string
}

func (e *Error) Error() string {
	if e.Kind != nil {
		return e.Op + ": " + e.Kind.Error() + ": " + e.Msg
	}
	return e.Op + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Kind }

// wrap turns an SDK error into an *Error with a readable message.
func (e *Engine) wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	var ours *Error
	if errors.As(err, &ours) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := Readable(err)
	var out *Error
	switch {
	case client.IsErrConnectionFailed(err) || isTransport(err):
		out = &Error{Op: op, Kind: ErrUnavailable, Msg: "cannot reach the Docker engine at " + e.host + "; check that it is running and that this process may use it"}
	case cerrdefs.IsNotFound(err):
		out = &Error{Op: op, Kind: ErrNotFound, Msg: msg}
	case cerrdefs.IsConflict(err):
		out = &Error{Op: op, Kind: ErrConflict, Msg: msg}
	default:
		out = &Error{Op: op, Msg: msg}
	}
	// Every SDK failure passes here exactly once (an error already ours
	// returned above), so this is where failed calls are counted.
	e.report(op, out)
	return out
}

// report tells the OnError hook of a failed call.
func (e *Engine) report(op string, err error) {
	if e.onError == nil {
		return
	}
	kind := "other"
	switch {
	case errors.Is(err, ErrUnavailable):
		kind = "unavailable"
	case errors.Is(err, ErrNotFound):
		kind = "not_found"
	case errors.Is(err, ErrConflict):
		kind = "conflict"
	case errors.Is(err, ErrTooOld):
		kind = "too_old"
	}
	// Operation names are fixed strings, except that some carry the
	// object they were about (an image reference): keep the verb and noun.
	if f := strings.Fields(op); len(f) > 2 && f[0] == "inspect" && f[1] == "image" {
		op = "inspect image"
	}
	e.onError(op, kind)
}

// isTransport recognises dial and connection errors the SDK does not wrap
// as connection failures (e.g. a socket that vanished mid-request).
func isTransport(err error) bool {
	s := err.Error()
	for _, frag := range []string{"connection refused", "no such file or directory", "connection reset", "broken pipe", "i/o timeout", "EOF"} {
		if strings.Contains(s, frag) && (strings.Contains(s, "dial") || strings.Contains(s, "connect") || strings.Contains(s, "Cannot connect")) {
			return true
		}
	}
	return false
}

// Readable strips transport prefixes from an engine error so it reads as a
// sentence a user can act on.
func Readable(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "Error response from daemon: ")
	return strings.TrimSpace(s)
}
