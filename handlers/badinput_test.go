package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"aicode/services/store"
	"aicode/testutil"
)

// Bad input of every kind gets a clear 4xx, and nothing changes: no row, no
// container, no directory.
func TestBadInputChangesNothing(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{})
	ctx := context.Background()
	admin := testutil.Setup(t, s.URL, "admin", adminPW)
	admin.CreateUser("member", adminPW, "member")
	admin.CreateUser("viewer", adminPW, "viewer")
	member := testutil.Login(t, s.URL, "member", adminPW)
	viewer := testutil.Login(t, s.URL, "viewer", adminPW)

	existing := createWorkspace(t, s, admin, url.Values{"name": {testutil.UniqueName("keep")}})

	// Traps in and around the root.
	outside := t.TempDir()
	root := s.WorkspacesRoot()
	if err := os.Symlink(outside, filepath.Join(root, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "etc-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "plain-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	snapshot := func() []string {
		var out []string
		filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
			out = append(out, p)
			return nil
		})
		filepath.Walk(outside, func(p string, _ os.FileInfo, err error) error {
			out = append(out, p)
			return nil
		})
		sort.Strings(out)
		return out
	}
	before := snapshot()
	containersBefore, err := s.App.Engine.ListManaged(ctx)
	if err != nil {
		t.Fatal(err)
	}

	long := strings.Repeat("a", 5000)
	cases := []struct {
		name      string
		vals      url.Values
		field     string // data-testid error-<field> expected; "" for a form-wide message
		wantInMsg string
	}{
		{"empty name", url.Values{"name": {""}}, "name", "enter a name"},
		{"uppercase and underscore", url.Values{"name": {"Bad_Name"}}, "name", "lowercase"},
		{"leading dash", url.Values{"name": {"-abc"}}, "name", "lowercase"},
		{"41 characters", url.Values{"name": {strings.Repeat("a", 41)}}, "name", "at most 40"},
		{"oversized name", url.Values{"name": {long}}, "name", "at most 40"},
		{"duplicate name", url.Values{"name": {existing.Name}}, "name", "exists already"},
		{"dot-dot", url.Values{"name": {"ok-1"}, "directory": {"../escape"}}, "directory", "may not contain"},
		{"nested dot-dot", url.Values{"name": {"ok-2"}, "directory": {"a/../../escape"}}, "directory", "may not contain"},
		{"absolute path", url.Values{"name": {"ok-3"}, "directory": {"/etc"}}, "directory", "not an absolute path"},
		{"symlink out of root", url.Values{"name": {"ok-4"}, "directory": {"link-out"}}, "directory", "inside the workspaces root"},
		{"below a symlink out", url.Values{"name": {"ok-5"}, "directory": {"link-out/deeper/still"}}, "directory", "inside the workspaces root"},
		{"symlink to /etc", url.Values{"name": {"ok-6"}, "directory": {"etc-link"}}, "directory", "inside the workspaces root"},
		{"a file", url.Values{"name": {"ok-7"}, "directory": {"plain-file"}}, "directory", "not a directory"},
		{"root itself", url.Values{"name": {"ok-8"}, "directory": {"."}}, "directory", "root itself"},
		{"directory in use", url.Values{"name": {"ok-9"}, "directory": {existing.Name}}, "directory", "already uses"},
		{"oversized directory", url.Values{"name": {"ok-10"}, "directory": {long}}, "directory", "at most 255"},
		{"memory not a number", url.Values{"name": {"ok-11"}, "memory_mb": {"lots"}}, "memory_mb", "whole number"},
		{"memory too large", url.Values{"name": {"ok-12"}, "memory_mb": {"99999999"}}, "memory_mb", "choose between"},
		{"negative cpus", url.Values{"name": {"ok-13"}, "cpus": {"-1"}}, "cpus", "positive"},
		{"too many cpus", url.Values{"name": {"ok-14"}, "cpus": {"1000"}}, "cpus", "choose between"},
		{"tiny pids", url.Values{"name": {"ok-15"}, "pids_limit": {"3"}}, "pids_limit", "choose between"},
		{"bad image reference", url.Values{"name": {"ok-16"}, "image": {"no spaces allowed!"}}, "image", "not a valid image"},
		{"missing image", url.Values{"name": {"ok-17"}, "image": {"aicode-no-such-image:1"}}, "", "make workspace-image"},
	}
	for _, tc := range cases {
		r := admin.Post("/workspaces", tc.vals, true)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", tc.name, r.Status)
			continue
		}
		if tc.field != "" && !strings.Contains(r.Body, `data-testid="error-`+tc.field+`"`) {
			t.Errorf("%s: no error shown next to %s", tc.name, tc.field)
		}
		if !strings.Contains(r.Body, tc.wantInMsg) {
			t.Errorf("%s: message does not say %q", tc.name, tc.wantInMsg)
		}
		// The user's input is kept for correction (except oversized junk).
		if n := tc.vals.Get("name"); n != "" && len(n) < 100 && !strings.Contains(r.Body, `value="`+n+`"`) {
			t.Errorf("%s: typed name not kept in the form", tc.name)
		}
	}

	// The same without htmx: a full page with the form open, still 422.
	r := admin.Post("/workspaces", url.Values{"name": {"Nope!"}}, false)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `data-testid="error-name"`) || !strings.Contains(r.Body, "<html") {
		t.Errorf("non-htmx bad create: %d", r.Status)
	}

	// Requests too large for the server.
	// The server answers 413 and closes the connection; a client still
	// sending may see the reset before it reads the answer.
	bigReq, _ := http.NewRequest(http.MethodPost, s.URL+"/workspaces", strings.NewReader("name="+strings.Repeat("x", 2<<20)))
	bigReq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	bigReq.Header.Set("X-CSRF-Token", admin.CSRF)
	if resp, err := admin.HTTP.Do(bigReq); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB body: %d, want 413", resp.StatusCode)
		}
	} else if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("2 MiB body: %v", err)
	}

	// CSRF: missing, wrong, and a cross-site Origin.
	good := url.Values{"name": {"csrf-victim"}}
	saved := admin.CSRF
	admin.CSRF = ""
	if r := admin.Post("/workspaces", good, false); r.Status != http.StatusForbidden {
		t.Errorf("missing CSRF token: %d", r.Status)
	}
	admin.CSRF = "forged-token"
	if r := admin.Post("/workspaces", good, true); r.Status != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %d", r.Status)
	}
	if r := admin.Post("/workspaces/"+existing.ID+"/stop", nil, true); r.Status != http.StatusForbidden {
		t.Errorf("wrong CSRF token on stop: %d", r.Status)
	}
	admin.CSRF = saved
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/workspaces/"+existing.ID+"/stop", strings.NewReader(""))
	req.Header.Set("X-CSRF-Token", admin.CSRF)
	req.Header.Set("Origin", "https://evil.example")
	if r := admin.Do(req); r.Status != http.StatusForbidden {
		t.Errorf("cross-site origin: %d", r.Status)
	}
	// Another member's token is no good for this session either.
	admin.CSRF = member.CSRF
	if r := admin.Post("/workspaces/"+existing.ID+"/stop", nil, true); r.Status != http.StatusForbidden {
		t.Errorf("someone else's CSRF token: %d", r.Status)
	}
	admin.CSRF = saved

	// Someone else's workspace, and ids that do not exist.
	for _, path := range []string{"/workspaces/" + existing.ID, "/workspaces/" + existing.ID + "/stop", "/workspaces/" + existing.ID + "/delete"} {
		var r testutil.Response
		if strings.HasSuffix(path, "/stop") || strings.HasSuffix(path, "/delete") {
			r = member.Post(path, url.Values{"files": {"delete"}, "confirm_name": {existing.Name}}, true)
		} else {
			r = member.Get(path)
		}
		if r.Status != http.StatusNotFound {
			t.Errorf("member on admin's workspace %s: %d, want 404", path, r.Status)
		}
	}
	for _, id := range []string{"doesnotexist", "../../etc", strings.Repeat("z", 300)} {
		if r := admin.Get("/workspaces/" + url.PathEscape(id)); r.Status != http.StatusNotFound {
			t.Errorf("unknown id %q: %d", id, r.Status)
		}
	}

	// A viewer can change nothing.
	for _, path := range []string{"/workspaces", "/workspaces/" + existing.ID + "/stop", "/workspaces/" + existing.ID + "/restart", "/workspaces/" + existing.ID + "/delete", "/admin/users"} {
		r := viewer.Post(path, url.Values{"name": {"viewer-made"}, "files": {"delete"}, "confirm_name": {existing.Name}, "username": {"sneaky"}, "password": {adminPW}}, true)
		if r.Status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, r.Status)
		}
	}

	// Nothing changed anywhere.
	all, err := s.App.Store.AllWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != existing.ID {
		t.Errorf("workspaces changed: %+v", all)
	}
	if w, _ := s.App.Store.GetWorkspace(ctx, existing.ID); w.Status != store.StatusRunning || w.Desired != store.DesiredRunning {
		t.Errorf("existing workspace touched: %s/%s", w.Status, w.Desired)
	}
	containersAfter, _ := s.App.Engine.ListManaged(ctx)
	if len(containersAfter) != len(containersBefore) {
		t.Errorf("containers changed: %d -> %d", len(containersBefore), len(containersAfter))
	}
	if after := snapshot(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("files changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := s.App.Store.GetUserByUsername(ctx, "sneaky"); err == nil {
		t.Error("viewer created a user")
	}
}
