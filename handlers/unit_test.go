package handlers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"aicode/services/auth"
	"aicode/services/engine"
	"aicode/services/validation"
	"aicode/services/workspace"
	wsview "aicode/views/pages/workspaces"
)

func TestUnitLocalPath(t *testing.T) {
	max512 := "/" + strings.Repeat("a", 511) // 512 bytes
	tests := []struct {
		name string
		in   string
		want string // "" means refused
	}{
		{"plain path", "/workspaces", "/workspaces"},
		{"path with query", "/workspaces?x=1", "/workspaces?x=1"},
		{"path with query and fragment", "/workspaces/abc?tab=logs#end", "/workspaces/abc?tab=logs#end"},
		{"site root", "/", "/"},
		{"encoded slashes stay a path", "/%2F%2Fevil.com", "/%2F%2Fevil.com"},
		{"colon later in the path", "/a:b", "/a:b"},
		{"512 characters", max512, max512},

		{"empty", "", ""},
		{"protocol-relative", "//evil.com", ""},
		{"protocol-relative with path", "//evil.com/workspaces", ""},
		{"triple slash", "///evil.com", ""},
		{"slash backslash", `/\evil.com`, ""},
		{"backslash backslash", `\\evil.com`, ""},
		{"backslash slash", `\/evil.com`, ""},
		{"absolute https", "https://x", ""},
		{"absolute http with path", "http://evil.com/workspaces", ""},
		{"upper-case scheme", "HTTPS://evil.com", ""},
		{"javascript", "javascript:alert(1)", ""},
		{"javascript with slashes", "javascript://%0aalert(1)", ""},
		{"data URL", "data:text/html,<script>alert(1)</script>", ""},
		{"relative", "foo", ""},
		{"relative with slash", "foo/bar", ""},
		{"dot relative", "./foo", ""},
		{"query only", "?x=1", ""},
		{"fragment only", "#x", ""},
		{"leading space", " /workspaces", ""},
		{"tab between slashes", "/\t/evil.com", ""},
		{"newline between slashes", "/\n/evil.com", ""},
		{"CRLF injection", "/ok\r\nSet-Cookie: x=1", ""},
		{"NUL", "/ok\x00", ""},
		{"bad escape", "/%zz", ""},
		{"513 characters", max512 + "a", ""},
		{"very long", "/" + strings.Repeat("a", 10000), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := localPath(tt.in); got != tt.want {
				t.Fatalf("localPath(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnitSentence(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"   ", ""},
		{"\t\n", ""},
		{"a", "A."},
		{"hello", "Hello."},
		{"hello world", "Hello world."},
		{"Hello.", "Hello."},
		{"already capital", "Already capital."},
		{"why?", "Why?"},
		{"stop!", "Stop!"},
		{"  padded  ", "Padded."},
		{"ends with a colon:", "Ends with a colon:."},
		{"1 container", "1 container."},
		{"cannot reach the Docker engine at unix:///var/run/docker.sock; check it", "Cannot reach the Docker engine at unix:///var/run/docker.sock; check it."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := sentence(tt.in); got != tt.want {
				t.Fatalf("sentence(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestUnitSentenceMultibyteFirstRune: sentence capitalises the first
// character, not the first byte, so messages starting with a multi-byte
// letter stay valid UTF-8.
func TestUnitSentenceMultibyteFirstRune(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"état inconnu", "État inconnu."},
		{"über", "Über."},
		{"ünchanged?", "Ünchanged?"},
		{"日本", "日本."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := sentence(tt.in); got != tt.want {
				t.Fatalf("sentence(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnitClassify(t *testing.T) {
	const internal = "An unexpected error occurred. It has been logged; try again, and tell an admin if it persists."
	tests := []struct {
		name      string
		err       error
		status    int
		title     string
		msg       string // exact, when set
		msgSubstr string // substring, when set
	}{
		// Fiber's own errors.
		{name: "fiber not found", err: fiber.ErrNotFound, status: 404, title: "Page not found", msg: "There is nothing at this address."},
		{name: "fiber method not allowed", err: fiber.ErrMethodNotAllowed, status: 405, title: "Not allowed", msg: "Method Not Allowed."},
		{name: "fiber too large", err: fiber.ErrRequestEntityTooLarge, status: 413, title: "Too large", msg: "The request is larger than this server accepts."},
		{name: "fiber bad request", err: fiber.NewError(fiber.StatusBadRequest, "missing form field"), status: 400, title: "Bad request", msg: "Missing form field."},
		{name: "fiber other code", err: fiber.NewError(fiber.StatusTeapot, "short and stout"), status: 418, title: "Error 418", msg: "Short and stout."},
		{name: "wrapped fiber error", err: fmt.Errorf("route: %w", fiber.ErrNotFound), status: 404, title: "Page not found"},

		// Not found.
		{name: "workspace not found", err: workspace.ErrNotFound, status: 404, title: "Workspace not found"},
		{name: "wrapped workspace not found", err: fmt.Errorf("get: %w", workspace.ErrNotFound), status: 404, title: "Workspace not found"},
		{name: "user not found", err: auth.ErrUserNotFound, status: 404, title: "User not found", msg: "This user does not exist."},

		// Authentication and authorization.
		{name: "unauthenticated", err: auth.ErrUnauthenticated, status: 401, title: "Sign in required"},
		{name: "forbidden", err: auth.ErrForbidden, status: 403, title: "Not allowed"},
		{name: "wrapped forbidden", err: fmt.Errorf("delete: %w", auth.ErrForbidden), status: 403, title: "Not allowed"},
		{name: "csrf", err: errCSRF, status: 403, title: "Request refused", msgSubstr: "reload the page and try again"},
		{name: "cross origin", err: errCrossOrigin, status: 403, title: "Request refused", msg: "This request came from another site and was refused."},
		{name: "invalid credentials are not a server error", err: auth.ErrInvalidCredentials, status: 500, title: "Something went wrong", msg: internal},

		// Input.
		{name: "validation errors", err: validation.Errors{"name": "enter a name", "cpus": "too many"}, status: 422, title: "Check your input", msg: "invalid input: cpus: too many; name: enter a name"},
		{name: "validation field", err: validation.Field("directory", "in use"), status: 422, title: "Check your input", msgSubstr: "directory: in use"},
		{name: "wrapped validation errors", err: fmt.Errorf("create: %w", validation.Field("name", "taken")), status: 422, title: "Check your input", msgSubstr: "name: taken"},
		{name: "image missing", err: &workspace.ImageMissingError{Image: "foo:1"}, status: 422, title: "Image missing", msgSubstr: `"foo:1"`},
		{name: "outside root", err: workspace.ErrOutsideRoot, status: 422, title: "Directory refused", msg: "The directory must be inside the workspaces root."},
		{name: "wrapped outside root", err: fmt.Errorf("%w (it is a broken link)", workspace.ErrOutsideRoot), status: 422, title: "Directory refused", msg: "The directory must be inside the workspaces root (it is a broken link)."},

		// Throttling and conflicts.
		{name: "rate limited", err: &auth.RateLimitedError{RetryAfter: 90 * time.Second}, status: 429, title: "Slow down", msgSubstr: "try again in 1m30s"},
		{name: "last admin", err: auth.ErrLastAdmin, status: 409, title: "Not possible", msg: "This is the last active admin; make another user admin first."},
		{name: "self", err: auth.ErrSelf, status: 409, title: "Not possible", msg: "You cannot do that to your own account."},
		{name: "setup done", err: auth.ErrSetupDone, status: 409, title: "Not possible", msg: "Setup has already been completed."},

		// The Docker engine.
		{name: "engine unreachable", err: &engine.Error{Op: "ping", Kind: engine.ErrUnavailable, Msg: "cannot reach the Docker engine at unix:///x.sock"},
			status: 503, title: "Docker engine unreachable", msg: "Cannot reach the Docker engine at unix:///x.sock."},
		{name: "wrapped engine unreachable", err: fmt.Errorf("start: %w", &engine.Error{Op: "start", Kind: engine.ErrUnavailable, Msg: "down"}),
			status: 503, title: "Docker engine unreachable", msg: "Down."},
		{name: "bare engine unreachable", err: engine.ErrUnavailable, status: 503, title: "Docker engine unreachable"},
		{name: "engine too old", err: &engine.Error{Op: "ping", Kind: engine.ErrTooOld, Msg: "the engine speaks API 1.40"},
			status: 503, title: "Docker engine unreachable", msg: "The engine speaks API 1.40."},
		{name: "engine conflict", err: &engine.Error{Op: "create container", Kind: engine.ErrConflict, Msg: "name already in use"},
			status: 409, title: "The Docker engine refused", msg: "Name already in use."},
		{name: "engine not found", err: &engine.Error{Op: "start container", Kind: engine.ErrNotFound, Msg: "no such container"},
			status: 502, title: "The Docker engine refused", msg: "No such container."},
		{name: "engine image not found", err: &engine.Error{Op: "create container", Kind: engine.ErrImageNotFound, Msg: "no such image"},
			status: 502, title: "The Docker engine refused", msg: "No such image."},
		{name: "engine other", err: &engine.Error{Op: "start container", Msg: "cgroup error!"},
			status: 502, title: "The Docker engine refused", msg: "Cgroup error!"},
		{name: "wrapped engine other", err: fmt.Errorf("restart: %w", &engine.Error{Op: "restart", Msg: "failed"}),
			status: 502, title: "The Docker engine refused", msg: "Failed."},

		// Time and the rest.
		{name: "deadline", err: context.DeadlineExceeded, status: 504, title: "Timed out"},
		{name: "wrapped deadline", err: fmt.Errorf("inspect: %w", context.DeadlineExceeded), status: 504, title: "Timed out"},
		{name: "unknown error", err: errors.New("pq: connection refused to 10.0.0.5"), status: 500, title: "Something went wrong", msg: internal},
		{name: "wrapped unknown error", err: fmt.Errorf("list: %w", errors.New("secret detail")), status: 500, title: "Something went wrong", msg: internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, title, msg := classify(tt.err)
			if status != tt.status || title != tt.title {
				t.Fatalf("classify(%v) = %d %q; want %d %q", tt.err, status, title, tt.status, tt.title)
			}
			if tt.msg != "" && msg != tt.msg {
				t.Fatalf("classify(%v) message = %q; want %q", tt.err, msg, tt.msg)
			}
			if tt.msgSubstr != "" && !strings.Contains(msg, tt.msgSubstr) {
				t.Fatalf("classify(%v) message = %q; want it to contain %q", tt.err, msg, tt.msgSubstr)
			}
			if status == 500 && strings.Contains(msg, tt.err.Error()) {
				t.Fatalf("a 500 shows the internal error to the user: %q", msg)
			}
			if got := statusOf(tt.err); got != status {
				t.Fatalf("statusOf = %d; classify said %d", got, status)
			}
		})
	}
}

func TestUnitParseCreate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name     string
		form     wsview.CreateForm
		want     workspace.CreateInput // checked when wantKeys is nil
		wantKeys []string
	}{
		{
			name: "all blank gives zero limits",
			form: wsview.CreateForm{Name: "proj"},
			want: workspace.CreateInput{Name: "proj"},
		},
		{
			name: "whitespace numbers are blank",
			form: wsview.CreateForm{Name: "proj", MemoryMB: "  ", CPUs: "\t", PidsLimit: " "},
			want: workspace.CreateInput{Name: "proj"},
		},
		{
			name: "strings pass through untouched",
			form: wsview.CreateForm{Name: " Proj ", Directory: " team/x ", Image: " img:1 "},
			want: workspace.CreateInput{Name: " Proj ", Directory: " team/x ", Image: " img:1 "},
		},
		{
			name: "numbers",
			form: wsview.CreateForm{Name: "proj", MemoryMB: "1024", CPUs: "1.5", PidsLimit: "256"},
			want: workspace.CreateInput{Name: "proj", MemoryMB: 1024, CPUs: 1.5, PidsLimit: 256},
		},
		{
			name: "numbers are trimmed",
			form: wsview.CreateForm{Name: "proj", MemoryMB: " 2048 ", CPUs: " 2 ", PidsLimit: " 64\n"},
			want: workspace.CreateInput{Name: "proj", MemoryMB: 2048, CPUs: 2, PidsLimit: 64},
		},
		{
			name: "small cpus",
			form: wsview.CreateForm{CPUs: "0.01"},
			want: workspace.CreateInput{CPUs: 0.01},
		},
		{
			name: "cpus in exponent form",
			form: wsview.CreateForm{CPUs: "1e0"},
			want: workspace.CreateInput{CPUs: 1},
		},
		{
			name: "out-of-range positives are left to the service",
			form: wsview.CreateForm{MemoryMB: "1", CPUs: "1000", PidsLimit: "1"},
			want: workspace.CreateInput{MemoryMB: 1, CPUs: 1000, PidsLimit: 1},
		},
		{name: "memory not a number", form: wsview.CreateForm{MemoryMB: "lots"}, wantKeys: []string{"memory_mb"}},
		{name: "memory fractional", form: wsview.CreateForm{MemoryMB: "1.5"}, wantKeys: []string{"memory_mb"}},
		{name: "memory with a unit", form: wsview.CreateForm{MemoryMB: "2g"}, wantKeys: []string{"memory_mb"}},
		{name: "memory exponent", form: wsview.CreateForm{MemoryMB: "1e3"}, wantKeys: []string{"memory_mb"}},
		{name: "memory zero", form: wsview.CreateForm{MemoryMB: "0"}, wantKeys: []string{"memory_mb"}},
		{name: "memory negative", form: wsview.CreateForm{MemoryMB: "-5"}, wantKeys: []string{"memory_mb"}},
		{name: "memory overflow", form: wsview.CreateForm{MemoryMB: "99999999999999999999"}, wantKeys: []string{"memory_mb"}},
		{name: "pids not a number", form: wsview.CreateForm{PidsLimit: "x"}, wantKeys: []string{"pids_limit"}},
		{name: "pids zero", form: wsview.CreateForm{PidsLimit: "0"}, wantKeys: []string{"pids_limit"}},
		{name: "pids negative", form: wsview.CreateForm{PidsLimit: "-1"}, wantKeys: []string{"pids_limit"}},
		{name: "cpus not a number", form: wsview.CreateForm{CPUs: "two"}, wantKeys: []string{"cpus"}},
		{name: "cpus with a comma", form: wsview.CreateForm{CPUs: "1,5"}, wantKeys: []string{"cpus"}},
		{name: "cpus zero", form: wsview.CreateForm{CPUs: "0"}, wantKeys: []string{"cpus"}},
		{name: "cpus negative", form: wsview.CreateForm{CPUs: "-0.5"}, wantKeys: []string{"cpus"}},
		{name: "cpus negative infinity", form: wsview.CreateForm{CPUs: "-Inf"}, wantKeys: []string{"cpus"}},
		{name: "name too long", form: wsview.CreateForm{Name: long(201)}, wantKeys: []string{"name"}},
		{name: "image too long", form: wsview.CreateForm{Image: long(256)}, wantKeys: []string{"image"}},
		{name: "directory too long", form: wsview.CreateForm{Directory: long(256)}, wantKeys: []string{"directory"}},
		{
			name: "lengths at the bounds are accepted here",
			form: wsview.CreateForm{Name: long(200), Image: long(255), Directory: long(255)},
			want: workspace.CreateInput{Name: long(200), Image: long(255), Directory: long(255)},
		},
		{
			name:     "every bad field at once",
			form:     wsview.CreateForm{Name: long(300), Image: long(300), Directory: long(300), MemoryMB: "m", CPUs: "c", PidsLimit: "p"},
			wantKeys: []string{"cpus", "directory", "image", "memory_mb", "name", "pids_limit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCreate(tt.form)
			if tt.wantKeys == nil {
				if err != nil {
					t.Fatalf("parseCreate(%+v) error: %v", tt.form, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("parseCreate(%+v) = %+v; want %+v", tt.form, got, tt.want)
				}
				return
			}
			var verrs validation.Errors
			if !errors.As(err, &verrs) {
				t.Fatalf("parseCreate(%+v) error = %v (%T); want validation.Errors", tt.form, err, err)
			}
			keys := make([]string, 0, len(verrs))
			for k := range verrs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if !reflect.DeepEqual(keys, tt.wantKeys) {
				t.Fatalf("error fields = %v; want %v (%v)", keys, tt.wantKeys, verrs)
			}
			if status, _, _ := classify(err); status != fiber.StatusUnprocessableEntity {
				t.Fatalf("parse errors classify as %d; want 422", status)
			}
		})
	}
}
