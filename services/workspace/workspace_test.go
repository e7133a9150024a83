package workspace

import (
	"errors"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"aicode/services/config"
	"aicode/services/engine"
	"aicode/services/store"
	"aicode/services/validation"
)

var vtDefaults = config.WorkspaceDefaults{
	Image:        "aicode-workspace:latest",
	MemoryMB:     2048,
	CPUs:         2,
	PidsLimit:    512,
	Network:      "bridge",
	User:         "1000:1000",
	MaxMemoryMB:  16384,
	MaxCPUs:      8,
	MaxPidsLimit: 4096,
}

// vtService is a Service with no store, engine, bus, audit or root:
// validate reads only the defaults.
func vtService() *Service {
	return NewService(nil, nil, nil, nil, nil, Root{}, vtDefaults)
}

func vtSortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestValidate(t *testing.T) {
	name40 := "a" + strings.Repeat("b", 38) + "c"
	name41 := "a" + strings.Repeat("b", 39) + "c"
	image255 := "i" + strings.Repeat("m", 254)
	// A valid input with every field set; cases change one thing.
	base := func(mod func(*CreateInput)) CreateInput {
		in := CreateInput{Name: "proj", Directory: "", Image: "", MemoryMB: 0, CPUs: 0, PidsLimit: 0}
		if mod != nil {
			mod(&in)
		}
		return in
	}
	tests := []struct {
		name     string
		in       CreateInput
		wantRel  string
		wantKeys []string // nil: valid
		// msgs are substrings expected in the messages of wantKeys.
		msgs map[string]string
		// want is the input after defaults were filled (valid cases only);
		// zero fields are not checked.
		want *CreateInput
	}{
		// Names.
		{name: "one character name", in: base(func(in *CreateInput) { in.Name = "a" }), wantRel: "a"},
		{name: "one digit name", in: base(func(in *CreateInput) { in.Name = "7" }), wantRel: "7"},
		{name: "two characters", in: base(func(in *CreateInput) { in.Name = "a1" }), wantRel: "a1"},
		{name: "digit first", in: base(func(in *CreateInput) { in.Name = "1a" }), wantRel: "1a"},
		{name: "inner dashes", in: base(func(in *CreateInput) { in.Name = "my-cool--proj" }), wantRel: "my-cool--proj"},
		{name: "40 characters", in: base(func(in *CreateInput) { in.Name = name40 }), wantRel: name40},
		{name: "surrounding spaces are trimmed", in: base(func(in *CreateInput) { in.Name = "  proj \t" }), wantRel: "proj",
			want: &CreateInput{Name: "proj"}},
		{name: "empty name", in: base(func(in *CreateInput) { in.Name = "" }), wantKeys: []string{"name"}, msgs: map[string]string{"name": "enter a name"}},
		{name: "blank name", in: base(func(in *CreateInput) { in.Name = "   " }), wantKeys: []string{"name"}, msgs: map[string]string{"name": "enter a name"}},
		{name: "41 characters", in: base(func(in *CreateInput) { in.Name = name41 }), wantKeys: []string{"name"}, msgs: map[string]string{"name": "at most 40"}},
		{name: "very long", in: base(func(in *CreateInput) { in.Name = strings.Repeat("a", 1000) }), wantKeys: []string{"name"}, msgs: map[string]string{"name": "at most 40"}},
		{name: "leading dash", in: base(func(in *CreateInput) { in.Name = "-a" }), wantKeys: []string{"name"}, msgs: map[string]string{"name": "lowercase"}},
		{name: "trailing dash", in: base(func(in *CreateInput) { in.Name = "a-" }), wantKeys: []string{"name"}},
		{name: "only a dash", in: base(func(in *CreateInput) { in.Name = "-" }), wantKeys: []string{"name"}},
		{name: "uppercase", in: base(func(in *CreateInput) { in.Name = "Proj" }), wantKeys: []string{"name"}},
		{name: "underscore", in: base(func(in *CreateInput) { in.Name = "a_b" }), wantKeys: []string{"name"}},
		{name: "dot", in: base(func(in *CreateInput) { in.Name = "a.b" }), wantKeys: []string{"name"}},
		{name: "inner space", in: base(func(in *CreateInput) { in.Name = "a b" }), wantKeys: []string{"name"}},
		{name: "slash", in: base(func(in *CreateInput) { in.Name = "a/b" }), wantKeys: []string{"name"}},
		{name: "dot dot", in: base(func(in *CreateInput) { in.Name = ".." }), wantKeys: []string{"name"}},
		{name: "unicode letter", in: base(func(in *CreateInput) { in.Name = "café" }), wantKeys: []string{"name"}},
		{name: "unicode only", in: base(func(in *CreateInput) { in.Name = "ü" }), wantKeys: []string{"name"}},
		{name: "unicode within 40 bytes", in: base(func(in *CreateInput) { in.Name = strings.Repeat("é", 20) }), wantKeys: []string{"name"}},
		{name: "unicode digit", in: base(func(in *CreateInput) { in.Name = "a١" }), wantKeys: []string{"name"}},
		{name: "newline inside", in: base(func(in *CreateInput) { in.Name = "a\nb" }), wantKeys: []string{"name"}},

		// Directories.
		{name: "directory defaults to the name", in: base(func(in *CreateInput) { in.Name = "web" }), wantRel: "web",
			want: &CreateInput{Name: "web", Directory: ""}},
		{name: "blank directory defaults to the name", in: base(func(in *CreateInput) { in.Name = "web"; in.Directory = "  " }), wantRel: "web"},
		{name: "explicit directory", in: base(func(in *CreateInput) { in.Directory = "team/web" }), wantRel: "team/web"},
		{name: "directory is cleaned", in: base(func(in *CreateInput) { in.Directory = " ./team//web/ " }), wantRel: "team/web"},
		{name: "directory may differ in case from the name rules", in: base(func(in *CreateInput) { in.Directory = "My_Project" }), wantRel: "My_Project"},
		{name: "directory with dot dot", in: base(func(in *CreateInput) { in.Directory = "../etc" }), wantKeys: []string{"directory"}, msgs: map[string]string{"directory": ".."}},
		{name: "directory a/..", in: base(func(in *CreateInput) { in.Directory = "a/.." }), wantKeys: []string{"directory"}},
		{name: "absolute directory", in: base(func(in *CreateInput) { in.Directory = "/etc" }), wantKeys: []string{"directory"}, msgs: map[string]string{"directory": "absolute"}},
		{name: "directory is the root", in: base(func(in *CreateInput) { in.Directory = "." }), wantKeys: []string{"directory"}, msgs: map[string]string{"directory": "root itself"}},
		{name: "directory too long", in: base(func(in *CreateInput) { in.Directory = strings.Repeat("d", 256) }), wantKeys: []string{"directory"}},
		{name: "bad name with blank directory reports only the name", in: base(func(in *CreateInput) { in.Name = "../x" }), wantKeys: []string{"name"}},
		{name: "bad name with good directory reports only the name", in: base(func(in *CreateInput) { in.Name = "Bad"; in.Directory = "ok" }), wantKeys: []string{"name"}},
		{name: "bad name and bad directory reports both", in: base(func(in *CreateInput) { in.Name = "Bad"; in.Directory = "/abs" }), wantKeys: []string{"directory", "name"}},
		{name: "empty name and bad directory reports both", in: base(func(in *CreateInput) { in.Name = ""; in.Directory = ".." }), wantKeys: []string{"directory", "name"}},

		// Images.
		{name: "image defaults", in: base(nil), wantRel: "proj", want: &CreateInput{Image: "aicode-workspace:latest"}},
		{name: "blank image defaults", in: base(func(in *CreateInput) { in.Image = "   " }), wantRel: "proj", want: &CreateInput{Image: "aicode-workspace:latest"}},
		{name: "image is trimmed", in: base(func(in *CreateInput) { in.Image = " alpine:3 " }), wantRel: "proj", want: &CreateInput{Image: "alpine:3"}},
		{name: "image with registry, port and path", in: base(func(in *CreateInput) { in.Image = "registry.example.com:5000/team/img:1.2" }), wantRel: "proj"},
		{name: "image with digest", in: base(func(in *CreateInput) { in.Image = "img@sha256:" + strings.Repeat("a", 64) }), wantRel: "proj"},
		{name: "image 255 characters", in: base(func(in *CreateInput) { in.Image = image255 }), wantRel: "proj"},
		{name: "image 256 characters", in: base(func(in *CreateInput) { in.Image = image255 + "m" }), wantKeys: []string{"image"}},
		{name: "image with a space", in: base(func(in *CreateInput) { in.Image = "bad image" }), wantKeys: []string{"image"}, msgs: map[string]string{"image": "not a valid image reference"}},
		{name: "image starting with a dash", in: base(func(in *CreateInput) { in.Image = "-img" }), wantKeys: []string{"image"}},
		{name: "image starting with a slash", in: base(func(in *CreateInput) { in.Image = "/img" }), wantKeys: []string{"image"}},
		{name: "image with a shell character", in: base(func(in *CreateInput) { in.Image = "img;rm" }), wantKeys: []string{"image"}},
		{name: "image with a newline", in: base(func(in *CreateInput) { in.Image = "img\nx" }), wantKeys: []string{"image"}},
		{name: "image with unicode", in: base(func(in *CreateInput) { in.Image = "imäge" }), wantKeys: []string{"image"}},

		// Memory.
		{name: "memory defaults", in: base(nil), wantRel: "proj", want: &CreateInput{MemoryMB: 2048}},
		{name: "memory minimum", in: base(func(in *CreateInput) { in.MemoryMB = 16 }), wantRel: "proj", want: &CreateInput{MemoryMB: 16}},
		{name: "memory maximum", in: base(func(in *CreateInput) { in.MemoryMB = 16384 }), wantRel: "proj", want: &CreateInput{MemoryMB: 16384}},
		{name: "memory below minimum", in: base(func(in *CreateInput) { in.MemoryMB = 15 }), wantKeys: []string{"memory_mb"}, msgs: map[string]string{"memory_mb": "between 16 and 16384 MiB"}},
		{name: "memory above maximum", in: base(func(in *CreateInput) { in.MemoryMB = 16385 }), wantKeys: []string{"memory_mb"}},
		{name: "memory negative", in: base(func(in *CreateInput) { in.MemoryMB = -1 }), wantKeys: []string{"memory_mb"}},
		{name: "memory huge", in: base(func(in *CreateInput) { in.MemoryMB = math.MaxInt64 }), wantKeys: []string{"memory_mb"}},

		// CPUs.
		{name: "cpus default", in: base(nil), wantRel: "proj", want: &CreateInput{CPUs: 2}},
		{name: "cpus minimum", in: base(func(in *CreateInput) { in.CPUs = 0.01 }), wantRel: "proj", want: &CreateInput{CPUs: 0.01}},
		{name: "cpus fraction", in: base(func(in *CreateInput) { in.CPUs = 0.5 }), wantRel: "proj", want: &CreateInput{CPUs: 0.5}},
		{name: "cpus maximum", in: base(func(in *CreateInput) { in.CPUs = 8 }), wantRel: "proj", want: &CreateInput{CPUs: 8}},
		{name: "cpus below minimum", in: base(func(in *CreateInput) { in.CPUs = 0.009 }), wantKeys: []string{"cpus"}, msgs: map[string]string{"cpus": "between 0.01 and 8 CPUs"}},
		{name: "cpus above maximum", in: base(func(in *CreateInput) { in.CPUs = 8.01 }), wantKeys: []string{"cpus"}},
		{name: "cpus negative", in: base(func(in *CreateInput) { in.CPUs = -1 }), wantKeys: []string{"cpus"}},
		{name: "cpus NaN", in: base(func(in *CreateInput) { in.CPUs = math.NaN() }), wantKeys: []string{"cpus"}},
		{name: "cpus +Inf", in: base(func(in *CreateInput) { in.CPUs = math.Inf(1) }), wantKeys: []string{"cpus"}},
		{name: "cpus -Inf", in: base(func(in *CreateInput) { in.CPUs = math.Inf(-1) }), wantKeys: []string{"cpus"}},

		// Processes.
		{name: "pids default", in: base(nil), wantRel: "proj", want: &CreateInput{PidsLimit: 512}},
		{name: "pids minimum", in: base(func(in *CreateInput) { in.PidsLimit = 16 }), wantRel: "proj", want: &CreateInput{PidsLimit: 16}},
		{name: "pids maximum", in: base(func(in *CreateInput) { in.PidsLimit = 4096 }), wantRel: "proj", want: &CreateInput{PidsLimit: 4096}},
		{name: "pids below minimum", in: base(func(in *CreateInput) { in.PidsLimit = 15 }), wantKeys: []string{"pids_limit"}, msgs: map[string]string{"pids_limit": "between 16 and 4096 processes"}},
		{name: "pids above maximum", in: base(func(in *CreateInput) { in.PidsLimit = 4097 }), wantKeys: []string{"pids_limit"}},
		{name: "pids negative", in: base(func(in *CreateInput) { in.PidsLimit = -5 }), wantKeys: []string{"pids_limit"}},

		// Everything at once.
		{
			name: "every bad field is reported together",
			in: CreateInput{
				Name: "-bad-", Directory: "../up", Image: "bad image",
				MemoryMB: 1, CPUs: math.NaN(), PidsLimit: 1,
			},
			wantKeys: []string{"cpus", "directory", "image", "memory_mb", "name", "pids_limit"},
		},
		{
			name: "every limit out of range above",
			in: CreateInput{
				Name: "ok", MemoryMB: 1 << 40, CPUs: 1000, PidsLimit: 1 << 40,
			},
			wantKeys: []string{"cpus", "memory_mb", "pids_limit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := vtService()
			in := tt.in
			rel, err := s.validate(&in)
			if tt.wantKeys == nil {
				if err != nil {
					t.Fatalf("validate(%+v) = %v; want nil", tt.in, err)
				}
				if rel != tt.wantRel {
					t.Fatalf("rel = %q; want %q", rel, tt.wantRel)
				}
				// Defaults are always filled on success.
				if in.Image == "" || in.MemoryMB == 0 || in.CPUs == 0 || in.PidsLimit == 0 {
					t.Fatalf("defaults not filled: %+v", in)
				}
				if w := tt.want; w != nil {
					if w.Name != "" && in.Name != w.Name {
						t.Errorf("Name = %q; want %q", in.Name, w.Name)
					}
					if w.Image != "" && in.Image != w.Image {
						t.Errorf("Image = %q; want %q", in.Image, w.Image)
					}
					if w.MemoryMB != 0 && in.MemoryMB != w.MemoryMB {
						t.Errorf("MemoryMB = %d; want %d", in.MemoryMB, w.MemoryMB)
					}
					if w.CPUs != 0 && in.CPUs != w.CPUs {
						t.Errorf("CPUs = %g; want %g", in.CPUs, w.CPUs)
					}
					if w.PidsLimit != 0 && in.PidsLimit != w.PidsLimit {
						t.Errorf("PidsLimit = %d; want %d", in.PidsLimit, w.PidsLimit)
					}
				}
				return
			}
			var verrs validation.Errors
			if !errors.As(err, &verrs) {
				t.Fatalf("validate(%+v) = %v (%T); want validation.Errors", tt.in, err, err)
			}
			if got := vtSortedKeys(verrs); !reflect.DeepEqual(got, tt.wantKeys) {
				t.Fatalf("error fields = %v; want %v (%v)", got, tt.wantKeys, verrs)
			}
			for field, sub := range tt.msgs {
				if !strings.Contains(verrs[field], sub) {
					t.Errorf("%s message = %q; want it to contain %q", field, verrs[field], sub)
				}
			}
			for field, msg := range verrs {
				if strings.TrimSpace(msg) == "" {
					t.Errorf("%s has an empty message", field)
				}
			}
		})
	}
}

func TestContainerName(t *testing.T) {
	tests := []struct {
		name string
		w    store.Workspace
		want string
	}{
		{"long id is cut to six", store.Workspace{ID: "abcdef123456", Name: "proj"}, "aicode-proj-abcdef"},
		{"id of exactly six", store.Workspace{ID: "abcdef", Name: "proj"}, "aicode-proj-abcdef"},
		{"id of seven", store.Workspace{ID: "abcdefg", Name: "proj"}, "aicode-proj-abcdef"},
		{"short id kept", store.Workspace{ID: "abc", Name: "proj"}, "aicode-proj-abc"},
		{"empty id", store.Workspace{ID: "", Name: "proj"}, "aicode-proj-"},
		{"dashed name", store.Workspace{ID: "0123456789", Name: "my-proj"}, "aicode-my-proj-012345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainerName(tt.w); got != tt.want {
				t.Fatalf("ContainerName(%+v) = %q; want %q", tt.w, got, tt.want)
			}
		})
	}
	// Two workspaces with the same name but different ids never collide.
	a := ContainerName(store.Workspace{ID: "aaaaaa-1", Name: "x"})
	b := ContainerName(store.Workspace{ID: "bbbbbb-1", Name: "x"})
	if a == b {
		t.Fatalf("container names collide: %q", a)
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in       string
		uid, gid int
	}{
		{"1000:1000", 1000, 1000},
		{"1000:2000", 1000, 2000},
		{"1000", 1000, 1000},
		{"1000:", 1000, 1000},
		{"1000:staff", 1000, 1000},
		{"0:0", 0, 0},
		{"65534:65534", 65534, 65534},
		{"1:2:3", 1, 1},
		{"user", -1, -1},
		{"user:1000", -1, -1},
		{"user:group", -1, -1},
		{"", -1, -1},
		{":1000", -1, -1},
		{" 1000", -1, -1},
		{"1e3", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			uid, gid := ParseUser(tt.in)
			if uid != tt.uid || gid != tt.gid {
				t.Fatalf("ParseUser(%q) = %d, %d; want %d, %d", tt.in, uid, gid, tt.uid, tt.gid)
			}
		})
	}
	t.Run("NewService uses it", func(t *testing.T) {
		def := vtDefaults
		def.User = "1234:5678"
		s := NewService(nil, nil, nil, nil, nil, Root{}, def)
		if s.uid != 1234 || s.gid != 5678 {
			t.Fatalf("uid, gid = %d, %d; want 1234, 5678", s.uid, s.gid)
		}
		def.User = "dev"
		s = NewService(nil, nil, nil, nil, nil, Root{}, def)
		if s.uid != -1 || s.gid != -1 {
			t.Fatalf("uid, gid = %d, %d; want -1, -1", s.uid, s.gid)
		}
	})
}

func TestStatusOf(t *testing.T) {
	finished := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	zone := time.FixedZone("UTC+2", 2*3600)
	tests := []struct {
		name       string
		st         engine.ContainerState
		desired    store.DesiredState
		wantStatus store.Status
		wantDetail string
	}{
		{"running", engine.ContainerState{State: "running"}, store.DesiredRunning, store.StatusRunning, ""},
		{"running though stop was asked", engine.ContainerState{State: "running"}, store.DesiredStopped, store.StatusRunning, ""},
		{"running ignores a stale exit code", engine.ContainerState{State: "running", ExitCode: 1, OOMKilled: true}, store.DesiredRunning, store.StatusRunning, ""},
		{"restarting", engine.ContainerState{State: "restarting", ExitCode: 1}, store.DesiredRunning, store.StatusRestarting, "exited with code 1"},
		{"restarting after OOM", engine.ContainerState{State: "restarting", ExitCode: 137, OOMKilled: true}, store.DesiredRunning, store.StatusRestarting, "killed: out of memory"},
		{"paused", engine.ContainerState{State: "paused"}, store.DesiredRunning, store.StatusPaused, ""},
		{"removing", engine.ContainerState{State: "removing"}, store.DesiredRunning, store.StatusRemoving, ""},
		{"created", engine.ContainerState{State: "created"}, store.DesiredRunning, store.StatusStopped, "created, never started"},
		{"created while stopped", engine.ContainerState{State: "created"}, store.DesiredStopped, store.StatusStopped, "created, never started"},
		{"exited while desired running", engine.ContainerState{State: "exited"}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 0"},
		{"exited with a code while desired running", engine.ContainerState{State: "exited", ExitCode: 2}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 2"},
		{"exited while desired stopped", engine.ContainerState{State: "exited", ExitCode: 0}, store.DesiredStopped, store.StatusStopped, ""},
		{"exited with a code while desired stopped", engine.ContainerState{State: "exited", ExitCode: 143, OOMKilled: true}, store.DesiredStopped, store.StatusStopped, ""},
		{"exited OOMKilled", engine.ContainerState{State: "exited", ExitCode: 137, OOMKilled: true}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: killed: out of memory"},
		{"exited OOMKilled with another code", engine.ContainerState{State: "exited", ExitCode: 1, OOMKilled: true}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: killed: out of memory"},
		{"exited 137", engine.ContainerState{State: "exited", ExitCode: 137}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: killed (exit code 137)"},
		{"exited with an engine error", engine.ContainerState{State: "exited", ExitCode: 127, Error: "exec: not found"}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 127 (exec: not found)"},
		{"exited with a finish time", engine.ContainerState{State: "exited", ExitCode: 1, FinishedAt: finished}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 1 at 2024-01-02T03:04:05Z"},
		{"finish time is shown in UTC", engine.ContainerState{State: "exited", ExitCode: 1, FinishedAt: time.Date(2024, 1, 2, 5, 4, 5, 0, zone)}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 1 at 2024-01-02T03:04:05Z"},
		{"engine zero time is not shown", engine.ContainerState{State: "exited", ExitCode: 1, FinishedAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: exited with code 1"},
		{"OOM, error and time together", engine.ContainerState{State: "exited", ExitCode: 137, OOMKilled: true, Error: "oom", FinishedAt: finished}, store.DesiredRunning, store.StatusStopped, "stopped outside the app: killed: out of memory (oom) at 2024-01-02T03:04:05Z"},
		{"dead", engine.ContainerState{State: "dead", ExitCode: 0}, store.DesiredRunning, store.StatusError, "the engine reports the container dead: exited with code 0"},
		{"dead while stopped", engine.ContainerState{State: "dead", ExitCode: 1}, store.DesiredStopped, store.StatusError, "the engine reports the container dead: exited with code 1"},
		{"dead OOMKilled", engine.ContainerState{State: "dead", OOMKilled: true}, store.DesiredRunning, store.StatusError, "the engine reports the container dead: killed: out of memory"},
		{"dead 137", engine.ContainerState{State: "dead", ExitCode: 137}, store.DesiredRunning, store.StatusError, "the engine reports the container dead: killed (exit code 137)"},
		{"unknown state", engine.ContainerState{State: "hibernating"}, store.DesiredRunning, store.StatusUnknown, "engine state hibernating"},
		{"empty state", engine.ContainerState{}, store.DesiredRunning, store.StatusUnknown, "engine state "},
		{"state is case sensitive", engine.ContainerState{State: "Running"}, store.DesiredRunning, store.StatusUnknown, "engine state Running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, detail := StatusOf(tt.st, tt.desired)
			if status != tt.wantStatus || detail != tt.wantDetail {
				t.Fatalf("StatusOf(%+v, %s) = %q, %q; want %q, %q", tt.st, tt.desired, status, detail, tt.wantStatus, tt.wantDetail)
			}
		})
	}
}

func kmNew() *keyedMutex { return &keyedMutex{m: map[string]*lockEntry{}} }

func kmEntries(k *keyedMutex) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

func TestKeyedMutexLockAndTryLock(t *testing.T) {
	k := kmNew()

	unlockA := k.lock("a")
	if n := kmEntries(k); n != 1 {
		t.Fatalf("entries while a is held = %d; want 1", n)
	}
	if _, ok := k.tryLock("a"); ok {
		t.Fatal("tryLock(a) succeeded while a is held")
	}
	if n := kmEntries(k); n != 1 {
		t.Fatalf("entries after a failed tryLock = %d; want 1", n)
	}
	if got := k.m["a"].refs; got != 1 {
		t.Fatalf("refs of a after a failed tryLock = %d; want 1", got)
	}
	unlockB, ok := k.tryLock("b")
	if !ok {
		t.Fatal("tryLock(b) failed while only a is held")
	}
	if n := kmEntries(k); n != 2 {
		t.Fatalf("entries while a and b are held = %d; want 2", n)
	}
	unlockA()
	if n := kmEntries(k); n != 1 {
		t.Fatalf("entries after releasing a = %d; want 1", n)
	}
	unlockA2, ok := k.tryLock("a")
	if !ok {
		t.Fatal("tryLock(a) failed after a was released")
	}
	unlockA2()
	unlockB()
	if n := kmEntries(k); n != 0 {
		t.Fatalf("entries after everything was released = %d; want 0 (%v)", n, k.m)
	}

	// A failed tryLock on a free-then-held key leaves no entry behind.
	unlock := k.lock("c")
	for range 10 {
		if _, ok := k.tryLock("c"); ok {
			t.Fatal("tryLock(c) succeeded while c is held")
		}
	}
	unlock()
	if n := kmEntries(k); n != 0 {
		t.Fatalf("entries after failed tryLocks and release = %d; want 0", n)
	}
}

func TestKeyedMutexLockWaits(t *testing.T) {
	k := kmNew()
	unlock := k.lock("w")

	acquired := make(chan func())
	go func() { acquired <- k.lock("w") }()

	select {
	case <-acquired:
		t.Fatal("a second lock(w) was granted while w was held")
	case <-time.After(50 * time.Millisecond):
	}
	// A different key is not held up.
	other, ok := k.tryLock("other")
	if !ok {
		t.Fatal("tryLock(other) failed while only w is held")
	}
	other()

	unlock()
	var unlock2 func()
	select {
	case unlock2 = <-acquired:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting lock(w) was not granted after release")
	}
	if n := kmEntries(k); n != 1 {
		t.Fatalf("entries while the waiter holds w = %d; want 1", n)
	}
	unlock2()
	if n := kmEntries(k); n != 0 {
		t.Fatalf("entries after release = %d; want 0", n)
	}
}

func TestKeyedMutexConcurrent(t *testing.T) {
	k := kmNew()
	keys := []string{"k0", "k1", "k2", "k3"}
	// counters are deliberately unsynchronised: only the keyed lock
	// protects them, so the race detector sees any lapse.
	counters := make(map[string]*int, len(keys))
	holders := make(map[string]*int, len(keys))
	for _, key := range keys {
		counters[key] = new(int)
		holders[key] = new(int)
	}
	var tries sync.Map // key -> successful tryLocks

	const goroutines, iterations = 16, 200
	var wg sync.WaitGroup
	var failures sync.Map
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iterations {
				key := keys[(g+i)%len(keys)]
				var unlock func()
				if i%3 == 0 {
					u, ok := k.tryLock(key)
					if !ok {
						continue
					}
					unlock = u
					v, _ := tries.LoadOrStore(key, new(int))
					*(v.(*int))++
				} else {
					unlock = k.lock(key)
				}
				*holders[key]++
				if *holders[key] != 1 {
					failures.Store(key, *holders[key])
				}
				*counters[key]++
				*holders[key]--
				unlock()
			}
		}()
	}
	wg.Wait()
	failures.Range(func(key, n any) bool {
		t.Errorf("%v was held by %v goroutines at once", key, n)
		return true
	})
	total := 0
	for _, key := range keys {
		total += *counters[key]
	}
	// Every blocking lock counted; tryLocks counted only when they succeeded.
	wantBlocking := 0
	for i := range iterations {
		if i%3 != 0 {
			wantBlocking += goroutines
		}
	}
	succeededTries := 0
	tries.Range(func(_, v any) bool { succeededTries += *(v.(*int)); return true })
	if total != wantBlocking+succeededTries {
		t.Fatalf("total increments = %d; want %d blocking + %d tryLocks", total, wantBlocking, succeededTries)
	}
	if n := kmEntries(k); n != 0 {
		t.Fatalf("entries after all goroutines finished = %d; want 0", n)
	}
}
