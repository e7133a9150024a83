package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCleanRelative(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string // substring of the error; empty means success
	}{
		{name: "empty", in: "", wantErr: "enter a directory"},
		{name: "spaces only", in: "   ", wantErr: "enter a directory"},
		{name: "tabs and newlines only", in: "\t\n ", wantErr: "enter a directory"},
		{name: "simple", in: "proj", want: "proj"},
		{name: "trimmed", in: "  proj \t", want: "proj"},
		{name: "nested", in: "team/proj", want: "team/proj"},
		{name: "dot slash prefix", in: "./a", want: "a"},
		{name: "double slash and trailing slash", in: "a//b/", want: "a/b"},
		{name: "inner dot", in: "a/./b", want: "a/b"},
		{name: "leading dots in a name are fine", in: "..a", want: "..a"},
		{name: "dots inside a name are fine", in: "a..b", want: "a..b"},
		{name: "three dots is a name", in: "a/...", want: "a/..."},
		{name: "unicode", in: "projekt-ü", want: "projekt-ü"},
		{name: "max length", in: strings.Repeat("a", MaxDirLen), want: strings.Repeat("a", MaxDirLen)},
		{name: "max length after trimming", in: "  " + strings.Repeat("a", MaxDirLen) + "  ", want: strings.Repeat("a", MaxDirLen)},
		{name: "too long", in: strings.Repeat("a", MaxDirLen+1), wantErr: "at most 255 characters"},
		{name: "too long in bytes with multibyte runes", in: strings.Repeat("ü", 128), wantErr: "at most 255 characters"},
		{name: "NUL", in: "a\x00b", wantErr: "invalid character"},
		{name: "trailing NUL", in: "a\x00", wantErr: "invalid character"},
		{name: "absolute", in: "/x", wantErr: "not an absolute path"},
		{name: "absolute root", in: "/", wantErr: "not an absolute path"},
		{name: "absolute after trimming", in: "  /etc", wantErr: "not an absolute path"},
		{name: "backslash leading", in: `\x`, wantErr: "not an absolute path"},
		{name: "UNC style", in: `\\server\share`, wantErr: "not an absolute path"},
		{name: "dot dot", in: "..", wantErr: `may not contain ".."`},
		{name: "dot dot slash", in: "../", wantErr: `may not contain ".."`},
		{name: "leading dot dot", in: "../a", wantErr: `may not contain ".."`},
		{name: "trailing dot dot", in: "a/..", wantErr: `may not contain ".."`},
		{name: "inner dot dot", in: "a/../b", wantErr: `may not contain ".."`},
		{name: "inner dot dot staying inside", in: "a/b/../c", wantErr: `may not contain ".."`},
		{name: "dot dot after dot", in: "./..", wantErr: `may not contain ".."`},
		{name: "dot", in: ".", wantErr: "root itself"},
		{name: "dot slash", in: "./", wantErr: "root itself"},
		{name: "dot slash dot", in: "./.", wantErr: "root itself"},
		{name: "dot slashes", in: ".//./", wantErr: "root itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanRelative(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("CleanRelative(%q) = %q, nil; want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CleanRelative(%q) error = %q; want it to contain %q", tt.in, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("CleanRelative(%q) returned %q along with an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("CleanRelative(%q) error = %v; want %q", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("CleanRelative(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// ptTempDir is a fresh temporary directory with symlinks resolved, so
// paths compare equal to what the code under test computes.
func ptTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ptMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func ptWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func ptOpenRoot(t *testing.T, dir string) Root {
	t.Helper()
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatalf("OpenRoot(%q): %v", dir, err)
	}
	return r
}

func ptIsDir(p string) bool {
	st, err := os.Lstat(p)
	return err == nil && st.IsDir()
}

func ptOwner(t *testing.T, p string) (uid, gid int) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no owner information for %s", p)
	}
	return int(sys.Uid), int(sys.Gid)
}

func ptExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestOpenRoot(t *testing.T) {
	t.Run("creates a missing nested directory", func(t *testing.T) {
		base := ptTempDir(t)
		dir := filepath.Join(base, "a", "b", "root")
		r := ptOpenRoot(t, dir)
		if r.Path() != dir {
			t.Fatalf("Path() = %q; want %q", r.Path(), dir)
		}
		if !ptIsDir(dir) {
			t.Fatalf("%s was not created", dir)
		}
	})
	t.Run("existing directory", func(t *testing.T) {
		base := ptTempDir(t)
		r := ptOpenRoot(t, base)
		if r.Path() != base {
			t.Fatalf("Path() = %q; want %q", r.Path(), base)
		}
	})
	t.Run("unclean path is cleaned", func(t *testing.T) {
		base := ptTempDir(t)
		ptMkdir(t, filepath.Join(base, "x"))
		r := ptOpenRoot(t, base+"/x/../root/")
		if want := filepath.Join(base, "root"); r.Path() != want {
			t.Fatalf("Path() = %q; want %q", r.Path(), want)
		}
	})
	t.Run("root that is a symlink is resolved", func(t *testing.T) {
		base := ptTempDir(t)
		real := filepath.Join(base, "real-root")
		ptMkdir(t, real)
		link := filepath.Join(base, "link-root")
		ptSymlink(t, real, link)
		r := ptOpenRoot(t, link)
		if r.Path() != real {
			t.Fatalf("Path() = %q; want the resolved %q", r.Path(), real)
		}
		// A directory below the link resolves to the real location and is
		// inside the root.
		ptMkdir(t, filepath.Join(real, "proj"))
		got, ok, err := r.Resolve("proj")
		if err != nil || !ok || got != filepath.Join(real, "proj") {
			t.Fatalf("Resolve(proj) = %q, %v, %v; want %q, true, nil", got, ok, err, filepath.Join(real, "proj"))
		}
		if !r.Inside(filepath.Join(real, "proj")) {
			t.Fatalf("Inside(real/proj) = false")
		}
		if r.Inside(filepath.Join(link, "proj")) {
			t.Fatalf("Inside(link/proj) = true; paths through the unresolved link are not the resolved root")
		}
	})
	t.Run("relative root is made absolute", func(t *testing.T) {
		base := ptTempDir(t)
		t.Chdir(base)
		r := ptOpenRoot(t, "data/workspaces")
		if want := filepath.Join(base, "data", "workspaces"); r.Path() != want {
			t.Fatalf("Path() = %q; want %q", r.Path(), want)
		}
	})
	t.Run("a file is refused", func(t *testing.T) {
		base := ptTempDir(t)
		f := filepath.Join(base, "file")
		ptWrite(t, f, "x")
		if _, err := OpenRoot(f); err == nil {
			t.Fatal("OpenRoot(file) succeeded; want an error")
		}
	})
}

func TestRootInside(t *testing.T) {
	base := ptTempDir(t)
	root := filepath.Join(base, "root")
	r := ptOpenRoot(t, root)
	tests := []struct {
		name string
		p    string
		want bool
	}{
		{"root itself", root, false},
		{"root with trailing slash", root + "/", false},
		{"child", filepath.Join(root, "a"), true},
		{"grandchild", filepath.Join(root, "a", "b"), true},
		{"name starting with dots", filepath.Join(root, "..a"), true},
		{"name that is three dots", filepath.Join(root, "..."), true},
		{"parent", base, false},
		{"filesystem root", "/", false},
		{"sibling", filepath.Join(base, "other"), false},
		{"sibling sharing the prefix", root + "2", false},
		{"child of a sibling sharing the prefix", filepath.Join(root+"-x", "a"), false},
		{"unclean path escaping", root + "/../other", false},
		{"unclean path escaping from a child", root + "/a/../../other", false},
		{"unclean path staying inside", root + "/a/../b", true},
		{"unclean path back to the root", root + "/a/..", false},
		{"relative path", "a", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Inside(tt.p); got != tt.want {
				t.Fatalf("Inside(%q) = %v; want %v (root %q)", tt.p, got, tt.want, root)
			}
		})
	}
}

// ptTree builds
//
//	base/
//	  outside/sub/          outside/secret.txt
//	  root/
//	    existing/deep/
//	    existing/link-up -> ../..        (base)
//	    file.txt
//	    link-in -> root/existing         (absolute)
//	    link-in-rel -> existing          (relative)
//	    link-chain -> link-in            (link to a link inside)
//	    link-out -> base/outside
//	    link-out-rel -> ../outside
//	    link-parent -> base
//	    link-root -> root
//	    link-slash -> /
//	    broken -> root/nowhere
//	    link-file-in -> root/file.txt
//	    link-file-out -> base/outside/secret.txt
func ptTree(t *testing.T) (base, root string, r Root) {
	t.Helper()
	base = ptTempDir(t)
	root = filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	ptMkdir(t, filepath.Join(outside, "sub"))
	ptWrite(t, filepath.Join(outside, "secret.txt"), "secret")
	ptMkdir(t, filepath.Join(root, "existing", "deep"))
	ptSymlink(t, "../..", filepath.Join(root, "existing", "link-up"))
	ptWrite(t, filepath.Join(root, "file.txt"), "x")
	ptSymlink(t, filepath.Join(root, "existing"), filepath.Join(root, "link-in"))
	ptSymlink(t, "existing", filepath.Join(root, "link-in-rel"))
	ptSymlink(t, "link-in", filepath.Join(root, "link-chain"))
	ptSymlink(t, outside, filepath.Join(root, "link-out"))
	ptSymlink(t, "../outside", filepath.Join(root, "link-out-rel"))
	ptSymlink(t, base, filepath.Join(root, "link-parent"))
	ptSymlink(t, root, filepath.Join(root, "link-root"))
	ptSymlink(t, "/", filepath.Join(root, "link-slash"))
	ptSymlink(t, filepath.Join(root, "nowhere"), filepath.Join(root, "broken"))
	ptSymlink(t, filepath.Join(root, "file.txt"), filepath.Join(root, "link-file-in"))
	ptSymlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(root, "link-file-out"))
	return base, root, ptOpenRoot(t, root)
}

func TestRootResolve(t *testing.T) {
	base, root, r := ptTree(t)
	in := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }

	type result int
	const (
		ok      result = iota // want path and exists
		outside               // want errors.Is(err, ErrOutsideRoot)
		refused               // want some other error
	)
	tests := []struct {
		name       string
		rel        string
		want       result
		wantPath   string
		wantExists bool
		errText    string // for refused: substring of the error
	}{
		{name: "existing directory", rel: "existing", want: ok, wantPath: in("existing"), wantExists: true},
		{name: "existing nested directory", rel: "existing/deep", want: ok, wantPath: in("existing", "deep"), wantExists: true},
		{name: "new directory", rel: "new", want: ok, wantPath: in("new")},
		{name: "new nested directory", rel: "new/nested/deeper", want: ok, wantPath: in("new", "nested", "deeper")},
		{name: "new below an existing directory", rel: "existing/new", want: ok, wantPath: in("existing", "new")},

		{name: "symlink inside to inside resolves to the target", rel: "link-in", want: ok, wantPath: in("existing"), wantExists: true},
		{name: "relative symlink inside", rel: "link-in-rel", want: ok, wantPath: in("existing"), wantExists: true},
		{name: "chain of symlinks inside", rel: "link-chain", want: ok, wantPath: in("existing"), wantExists: true},
		{name: "existing below a symlink inside", rel: "link-in/deep", want: ok, wantPath: in("existing", "deep"), wantExists: true},
		{name: "new below a symlink inside", rel: "link-in/new/x", want: ok, wantPath: in("existing", "new", "x")},
		{name: "new below a symlink to the root", rel: "link-root/new", want: ok, wantPath: in("new")},
		{name: "through the parent back into the root", rel: "link-parent/root/existing", want: ok, wantPath: in("existing"), wantExists: true},

		{name: "symlink pointing outside", rel: "link-out", want: outside},
		{name: "relative symlink pointing outside", rel: "link-out-rel", want: outside},
		{name: "existing below a symlink pointing outside", rel: "link-out/sub", want: outside},
		{name: "new below a symlink pointing outside", rel: "link-out/new", want: outside},
		{name: "new nested below a symlink pointing outside", rel: "link-out/new/deeper", want: outside},
		{name: "new below a relative symlink pointing outside", rel: "link-out-rel/new", want: outside},
		{name: "symlink to the parent of the root", rel: "link-parent", want: outside},
		{name: "below a symlink to the parent of the root", rel: "link-parent/outside", want: outside},
		{name: "new below a symlink to the parent of the root", rel: "link-parent/new", want: outside},
		{name: "symlink to the filesystem root", rel: "link-slash", want: outside},
		{name: "below a symlink to the filesystem root", rel: "link-slash/tmp", want: outside},
		{name: "symlink to the root itself", rel: "link-root", want: outside},
		{name: "relative symlink deeper escaping", rel: "existing/link-up", want: outside},
		{name: "below a relative symlink deeper escaping", rel: "existing/link-up/outside/sub", want: outside},
		{name: "new below a relative symlink deeper escaping", rel: "existing/link-up/new", want: outside},
		{name: "broken symlink", rel: "broken", want: outside},
		{name: "new below a broken symlink", rel: "broken/new", want: outside},
		{name: "symlink to a file outside", rel: "link-file-out", want: outside},

		{name: "a file", rel: "file.txt", want: refused, errText: "a file, not a directory"},
		{name: "symlink to a file inside", rel: "link-file-in", want: refused, errText: "a file, not a directory"},
		{name: "below a file", rel: "file.txt/new", want: refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotExists, err := r.Resolve(tt.rel)
			switch tt.want {
			case ok:
				if err != nil {
					t.Fatalf("Resolve(%q) error = %v; want %q", tt.rel, err, tt.wantPath)
				}
				if got != tt.wantPath || gotExists != tt.wantExists {
					t.Fatalf("Resolve(%q) = %q, exists=%v; want %q, exists=%v", tt.rel, got, gotExists, tt.wantPath, tt.wantExists)
				}
				if !r.Inside(got) {
					t.Fatalf("Resolve(%q) = %q, which is not inside the root", tt.rel, got)
				}
			case outside:
				if !errors.Is(err, ErrOutsideRoot) {
					t.Fatalf("Resolve(%q) = %q, %v, %v; want ErrOutsideRoot", tt.rel, got, gotExists, err)
				}
				if got != "" {
					t.Errorf("Resolve(%q) returned path %q with an error", tt.rel, got)
				}
			case refused:
				if err == nil {
					t.Fatalf("Resolve(%q) = %q, %v, nil; want an error", tt.rel, got, gotExists)
				}
				if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Resolve(%q) error = %q; want it to contain %q", tt.rel, err, tt.errText)
				}
				if got != "" {
					t.Errorf("Resolve(%q) returned path %q with an error", tt.rel, got)
				}
			}
		})
	}

	// Nothing above may have created anything.
	for _, p := range []string{in("new"), in("existing", "new"), filepath.Join(base, "outside", "new"), filepath.Join(base, "new")} {
		if ptExists(p) {
			t.Errorf("Resolve created %s", p)
		}
	}
}

func TestRootResolveThroughSymlinkedRoot(t *testing.T) {
	base := ptTempDir(t)
	real := filepath.Join(base, "real")
	ptMkdir(t, filepath.Join(real, "existing"))
	ptMkdir(t, filepath.Join(base, "outside"))
	ptSymlink(t, filepath.Join(base, "outside"), filepath.Join(real, "link-out"))
	// A link inside the root that points at the root's own symlinked name
	// still lands inside the resolved root.
	ptSymlink(t, filepath.Join(base, "alias", "existing"), filepath.Join(real, "via-alias"))
	ptSymlink(t, real, filepath.Join(base, "alias"))
	r := ptOpenRoot(t, filepath.Join(base, "alias"))

	tests := []struct {
		rel        string
		wantPath   string
		wantExists bool
		wantErr    error
	}{
		{rel: "existing", wantPath: filepath.Join(real, "existing"), wantExists: true},
		{rel: "new/x", wantPath: filepath.Join(real, "new", "x")},
		{rel: "via-alias", wantPath: filepath.Join(real, "existing"), wantExists: true},
		{rel: "link-out", wantErr: ErrOutsideRoot},
		{rel: "link-out/new", wantErr: ErrOutsideRoot},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			got, gotExists, err := r.Resolve(tt.rel)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %q, %v, %v; want %v", tt.rel, got, gotExists, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.wantPath || gotExists != tt.wantExists {
				t.Fatalf("Resolve(%q) = %q, %v, %v; want %q, %v, nil", tt.rel, got, gotExists, err, tt.wantPath, tt.wantExists)
			}
		})
	}
}

func TestRootCreate(t *testing.T) {
	t.Run("creates a new nested directory", func(t *testing.T) {
		_, root, r := ptTree(t)
		p, existed, err := r.Resolve("team/proj/src")
		if err != nil || existed {
			t.Fatalf("Resolve = %q, %v, %v", p, existed, err)
		}
		if err := r.Create(p, -1, -1); err != nil {
			t.Fatalf("Create(%q): %v", p, err)
		}
		if !ptIsDir(filepath.Join(root, "team", "proj", "src")) {
			t.Fatalf("%s was not created", p)
		}
	})
	t.Run("creates below a symlink inside at the resolved location", func(t *testing.T) {
		_, root, r := ptTree(t)
		p, _, err := r.Resolve("link-in/new")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Create(p, -1, -1); err != nil {
			t.Fatalf("Create(%q): %v", p, err)
		}
		if !ptIsDir(filepath.Join(root, "existing", "new")) {
			t.Fatalf("%s was not created", filepath.Join(root, "existing", "new"))
		}
	})
	t.Run("existing directory is accepted", func(t *testing.T) {
		_, root, r := ptTree(t)
		p := filepath.Join(root, "existing")
		if err := r.Create(p, -1, -1); err != nil {
			t.Fatalf("Create(%q): %v", p, err)
		}
		if !ptIsDir(filepath.Join(p, "deep")) {
			t.Fatal("Create disturbed the existing directory's contents")
		}
	})
	t.Run("hands the directory to the workspace user when root", func(t *testing.T) {
		_, _, r := ptTree(t)
		p, _, err := r.Resolve("owned")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Create(p, 12345, 23456); err != nil {
			t.Fatalf("Create(%q): %v", p, err)
		}
		uid, gid := ptOwner(t, p)
		if os.Geteuid() == 0 {
			if uid != 12345 || gid != 23456 {
				t.Fatalf("owner = %d:%d; want 12345:23456", uid, gid)
			}
		} else if uid != os.Geteuid() {
			t.Fatalf("owner = %d; want the current user %d", uid, os.Geteuid())
		}
	})
	t.Run("negative uid leaves the owner alone", func(t *testing.T) {
		_, _, r := ptTree(t)
		p, _, err := r.Resolve("unowned")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Create(p, -1, -1); err != nil {
			t.Fatalf("Create(%q): %v", p, err)
		}
		if uid, _ := ptOwner(t, p); uid != os.Geteuid() {
			t.Fatalf("owner = %d; want the current user %d", uid, os.Geteuid())
		}
	})
	t.Run("refuses when a parent was swapped for an outside symlink", func(t *testing.T) {
		base, root, r := ptTree(t)
		parent := filepath.Join(root, "parent")
		ptMkdir(t, parent)
		p, existed, err := r.Resolve("parent/child")
		if err != nil || existed || p != filepath.Join(parent, "child") {
			t.Fatalf("Resolve = %q, %v, %v", p, existed, err)
		}
		// The swap happens between Resolve and Create.
		if err := os.Remove(parent); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(base, "outside")
		ptSymlink(t, target, parent)

		if err := r.Create(p, 12345, 12345); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create after the swap = %v; want ErrOutsideRoot", err)
		}
		if ptExists(filepath.Join(target, "child")) {
			t.Fatal("Create left a directory outside the root")
		}
	})
	t.Run("refuses a path outside the root", func(t *testing.T) {
		base, _, r := ptTree(t)
		p := filepath.Join(base, "elsewhere")
		if err := r.Create(p, -1, -1); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create(%q) = %v; want ErrOutsideRoot", p, err)
		}
		if ptExists(p) {
			t.Fatal("Create left a directory outside the root")
		}
	})
	t.Run("refuses a symlink inside even to inside", func(t *testing.T) {
		_, root, r := ptTree(t)
		// Create expects the resolved path; an unresolved one is refused
		// (the real directory is left alone).
		p := filepath.Join(root, "link-in")
		if err := r.Create(p, -1, -1); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create(%q) = %v; want ErrOutsideRoot", p, err)
		}
		if !ptIsDir(filepath.Join(root, "existing", "deep")) {
			t.Fatal("the symlink's target was disturbed")
		}
	})
}

// TestRootCreateSwapLeavesOutsideAlone: when a parent is swapped for a
// symlink between Resolve and Create, Create refuses without creating or
// deleting anything outside the root, and removes only what it made.
func TestRootCreateSwapLeavesOutsideAlone(t *testing.T) {
	t.Run("an existing empty directory outside is not deleted", func(t *testing.T) {
		base, root, r := ptTree(t)
		parent := filepath.Join(root, "parent")
		ptMkdir(t, parent)
		p, _, err := r.Resolve("parent/victim")
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(base, "outside")
		victim := filepath.Join(target, "victim")
		ptMkdir(t, victim) // someone else's empty directory
		if err := os.Remove(parent); err != nil {
			t.Fatal(err)
		}
		ptSymlink(t, target, parent)

		if err := r.Create(p, -1, -1); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create after the swap = %v; want ErrOutsideRoot", err)
		}
		if !ptIsDir(victim) {
			t.Fatalf("Create deleted %s, an existing directory outside the root it never created", victim)
		}
	})
	t.Run("no intermediate directories are left outside", func(t *testing.T) {
		base, root, r := ptTree(t)
		parent := filepath.Join(root, "parent")
		ptMkdir(t, parent)
		p, _, err := r.Resolve("parent/a/b")
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(base, "outside")
		if err := os.Remove(parent); err != nil {
			t.Fatal(err)
		}
		ptSymlink(t, target, parent)

		if err := r.Create(p, -1, -1); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create after the swap = %v; want ErrOutsideRoot", err)
		}
		if ptExists(filepath.Join(target, "a")) {
			t.Fatalf("Create left %s behind outside the root", filepath.Join(target, "a"))
		}
	})
	t.Run("the root itself is refused and not deleted", func(t *testing.T) {
		base := ptTempDir(t)
		root := filepath.Join(base, "root")
		r := ptOpenRoot(t, root) // empty
		if err := r.Create(root, -1, -1); !errors.Is(err, ErrOutsideRoot) {
			t.Fatalf("Create(root) = %v; want ErrOutsideRoot", err)
		}
		if !ptIsDir(root) {
			t.Fatal("Create(root) deleted the workspaces root")
		}
	})
}

func TestRootRemoveAll(t *testing.T) {
	tests := []struct {
		name string
		// path returns the argument; gone and kept are checked afterwards.
		path    func(base, root string) string
		wantErr error
		gone    []string // relative to base
		kept    []string // relative to base
	}{
		{
			name:    "the root itself",
			path:    func(_, root string) string { return root },
			wantErr: ErrOutsideRoot,
			kept:    []string{"root", "root/existing/deep"},
		},
		{
			name:    "the root with a trailing slash",
			path:    func(_, root string) string { return root + "/" },
			wantErr: ErrOutsideRoot,
			kept:    []string{"root", "root/existing/deep"},
		},
		{
			name:    "the parent of the root",
			path:    func(base, _ string) string { return base },
			wantErr: ErrOutsideRoot,
			kept:    []string{"root", "outside/sub"},
		},
		{
			name:    "a directory outside",
			path:    func(base, _ string) string { return filepath.Join(base, "outside", "sub") },
			wantErr: ErrOutsideRoot,
			kept:    []string{"outside/sub"},
		},
		{
			name:    "an unclean path escaping the root",
			path:    func(_, root string) string { return root + "/existing/../../outside/sub" },
			wantErr: ErrOutsideRoot,
			kept:    []string{"outside/sub"},
		},
		{
			name:    "a symlink inside pointing outside",
			path:    func(_, root string) string { return filepath.Join(root, "link-out") },
			wantErr: ErrOutsideRoot,
			kept:    []string{"outside/sub", "outside/secret.txt", "root/link-out"},
		},
		{
			name:    "a path through a symlink pointing outside",
			path:    func(_, root string) string { return filepath.Join(root, "link-out", "sub") },
			wantErr: ErrOutsideRoot,
			kept:    []string{"outside/sub"},
		},
		{
			name:    "a symlink inside pointing inside",
			path:    func(_, root string) string { return filepath.Join(root, "link-in") },
			wantErr: ErrOutsideRoot,
			kept:    []string{"root/existing/deep", "root/link-in"},
		},
		{
			name:    "a symlink to the root",
			path:    func(_, root string) string { return filepath.Join(root, "link-root") },
			wantErr: ErrOutsideRoot,
			kept:    []string{"root/existing/deep", "root/link-root"},
		},
		{
			name: "a directory inside with contents",
			path: func(_, root string) string { return filepath.Join(root, "existing") },
			// The links inside it are removed, not followed.
			gone: []string{"root/existing"},
			kept: []string{"root", "root/file.txt", "outside/sub", "outside/secret.txt"},
		},
		{
			name: "a nested directory inside",
			path: func(_, root string) string { return filepath.Join(root, "existing", "deep") },
			gone: []string{"root/existing/deep"},
			kept: []string{"root/existing"},
		},
		{
			name: "a path that does not exist",
			path: func(_, root string) string { return filepath.Join(root, "nothing", "here") },
			kept: []string{"root/existing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, root, r := ptTree(t)
			p := tt.path(base, root)
			err := r.RemoveAll(p)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RemoveAll(%q) = %v; want %v", p, err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("RemoveAll(%q) = %v; want nil", p, err)
			}
			for _, g := range tt.gone {
				if ptExists(filepath.Join(base, g)) {
					t.Errorf("%s still exists", g)
				}
			}
			for _, k := range tt.kept {
				if !ptExists(filepath.Join(base, k)) {
					t.Errorf("%s was removed", k)
				}
			}
		})
	}
}

func TestRootCheckExisting(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, base, root string) string
		wantErr error  // errors.Is target
		errText string // substring, when wantErr is nil but an error is expected
	}{
		{
			name:  "existing directory inside",
			setup: func(_ *testing.T, _, root string) string { return filepath.Join(root, "existing") },
		},
		{
			name:  "existing nested directory inside",
			setup: func(_ *testing.T, _, root string) string { return filepath.Join(root, "existing", "deep") },
		},
		{
			name:    "missing",
			setup:   func(_ *testing.T, _, root string) string { return filepath.Join(root, "gone") },
			errText: "no longer exists",
		},
		{
			name: "swapped for a symlink pointing outside",
			setup: func(t *testing.T, base, root string) string {
				p := filepath.Join(root, "existing", "deep")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				ptSymlink(t, filepath.Join(base, "outside"), p)
				return p
			},
			wantErr: ErrOutsideRoot,
		},
		{
			name: "swapped for a symlink pointing inside",
			setup: func(t *testing.T, _, root string) string {
				p := filepath.Join(root, "existing", "deep")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				ptMkdir(t, filepath.Join(root, "other"))
				ptSymlink(t, filepath.Join(root, "other"), p)
				return p
			},
			wantErr: ErrOutsideRoot,
		},
		{
			name: "a parent swapped for a symlink pointing outside",
			setup: func(t *testing.T, base, root string) string {
				ptMkdir(t, filepath.Join(base, "outside", "proj"))
				parent := filepath.Join(root, "team")
				ptSymlink(t, filepath.Join(base, "outside"), parent)
				return filepath.Join(parent, "proj")
			},
			wantErr: ErrOutsideRoot,
		},
		{
			name:    "broken symlink",
			setup:   func(_ *testing.T, _, root string) string { return filepath.Join(root, "broken") },
			errText: "no longer exists",
		},
		{
			name:    "the root itself",
			setup:   func(_ *testing.T, _, root string) string { return root },
			wantErr: ErrOutsideRoot,
		},
		{
			name:    "a directory outside",
			setup:   func(_ *testing.T, base, _ string) string { return filepath.Join(base, "outside", "sub") },
			wantErr: ErrOutsideRoot,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, root, r := ptTree(t)
			p := tt.setup(t, base, root)
			err := r.CheckExisting(p)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CheckExisting(%q) = %v; want %v", p, err, tt.wantErr)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("CheckExisting(%q) = %v; want an error containing %q", p, err, tt.errText)
				}
				if errors.Is(err, ErrOutsideRoot) {
					t.Fatalf("CheckExisting(%q) = %v; a missing directory is not ErrOutsideRoot", p, err)
				}
			default:
				if err != nil {
					t.Fatalf("CheckExisting(%q) = %v; want nil", p, err)
				}
			}
		})
	}
}
