package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrOutsideRoot: a project directory resolves outside the workspaces root.
var ErrOutsideRoot = errors.New("the directory must be inside the workspaces root")

// MaxDirLen bounds the relative directory a user may type.
const MaxDirLen = 255

// Root is the workspaces root directory: absolute, symlinks resolved. Every
// project directory must resolve strictly inside it.
type Root struct{ path string }

// OpenRoot creates (if needed) and resolves the workspaces root.
func OpenRoot(dir string) (Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("workspaces root: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return Root{}, fmt.Errorf("create workspaces root: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return Root{}, fmt.Errorf("resolve workspaces root: %w", err)
	}
	return Root{path: real}, nil
}

// Path is the resolved root.
func (r Root) Path() string { return r.path }

// CleanRelative validates a directory typed by a user: relative, no ".."
// element, no NUL, bounded length. It returns the cleaned form.
func CleanRelative(rel string) (string, error) {
	rel = strings.TrimSpace(rel)
	switch {
	case rel == "":
		return "", errors.New("enter a directory")
	case len(rel) > MaxDirLen:
		return "", fmt.Errorf("the directory must be at most %d characters", MaxDirLen)
	case strings.ContainsRune(rel, 0):
		return "", errors.New("the directory contains an invalid character")
	case filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, `\`):
		return "", errors.New("give a path relative to the workspaces root, not an absolute path")
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if part == ".." {
			return "", errors.New(`the directory may not contain ".."`)
		}
	}
	clean := filepath.Clean(rel)
	if clean == "." {
		return "", errors.New("the directory cannot be the workspaces root itself")
	}
	return clean, nil
}

// Inside reports whether p (absolute, resolved) is strictly inside the root.
func (r Root) Inside(p string) bool {
	rel, err := filepath.Rel(r.path, p)
	if err != nil {
		return false
	}
	return rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Resolve maps a cleaned relative directory to an absolute path inside the
// root, following symlinks. exists says whether the directory is already
// there. A symlink anywhere on the way that leads out of the root is
// refused, as is an existing non-directory.
func (r Root) Resolve(rel string) (path string, exists bool, err error) {
	joined := filepath.Join(r.path, rel)
	_, err = os.Lstat(joined)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("inspect directory: %w", err)
	}
	if err == nil {
		real, err := filepath.EvalSymlinks(joined)
		if err != nil {
			return "", false, fmt.Errorf("%w (it is a broken link)", ErrOutsideRoot)
		}
		if !r.Inside(real) {
			return "", false, ErrOutsideRoot
		}
		st, err := os.Stat(real)
		if err != nil {
			return "", false, fmt.Errorf("inspect directory: %w", err)
		}
		if !st.IsDir() {
			return "", false, errors.New("a file, not a directory, exists at that path")
		}
		return real, true, nil
	}
	// Walk up to the deepest existing ancestor; it must resolve inside the
	// root (or be the root), so the directories created below it are too.
	ancestor := filepath.Dir(joined)
	for {
		if _, err := os.Lstat(ancestor); err == nil {
			break
		}
		ancestor = filepath.Dir(ancestor)
	}
	real, err := filepath.EvalSymlinks(ancestor)
	if err != nil {
		return "", false, fmt.Errorf("%w (a parent is a broken link)", ErrOutsideRoot)
	}
	if real != r.path && !r.Inside(real) {
		return "", false, ErrOutsideRoot
	}
	rest, err := filepath.Rel(ancestor, joined)
	if err != nil {
		return "", false, fmt.Errorf("resolve directory: %w", err)
	}
	return filepath.Join(real, rest), false, nil
}

// Create makes a directory returned by Resolve. It works through an
// os.Root, which refuses any step that would leave the workspaces root, so a
// parent swapped for a symlink after Resolve cannot redirect it; and on
// failure it removes only the directories it made itself.
func (r Root) Create(path string, uid, gid int) error {
	if !r.Inside(path) {
		return ErrOutsideRoot
	}
	rel, err := filepath.Rel(r.path, path)
	if err != nil {
		return ErrOutsideRoot
	}
	root, err := os.OpenRoot(r.path)
	if err != nil {
		return fmt.Errorf("open workspaces root: %w", err)
	}
	defer root.Close()
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			_ = root.Remove(made[i])
		}
	}
	cur := ""
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		err := root.Mkdir(cur, 0o755)
		if err == nil {
			made = append(made, cur)
			continue
		}
		if errors.Is(err, fs.ErrExist) {
			// Resolve returned a path free of symlinks, so a link here
			// means the tree changed since: refuse.
			fi, serr := root.Lstat(cur)
			if serr == nil && fi.IsDir() {
				continue
			}
			undo()
			if serr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return ErrOutsideRoot
			}
			return errors.New("a file, not a directory, exists at that path")
		}
		undo()
		if strings.Contains(err.Error(), "escapes") {
			return ErrOutsideRoot
		}
		return fmt.Errorf("create project directory: %w", err)
	}
	if uid >= 0 && os.Geteuid() == 0 {
		// The container runs as a non-root user that must be able to write
		// its project; only root can hand the directory over.
		if err := root.Chown(rel, uid, gid); err != nil {
			undo()
			return fmt.Errorf("hand project directory to the workspace user: %w", err)
		}
	}
	return nil
}

// RemoveAll deletes a project directory strictly inside the root. It works
// through an os.Root, so no symlink inside the tree can lead the deletion
// outside.
func (r Root) RemoveAll(path string) error {
	if !r.Inside(path) {
		return ErrOutsideRoot
	}
	rel, err := filepath.Rel(r.path, path)
	if err != nil {
		return ErrOutsideRoot
	}
	root, err := os.OpenRoot(r.path)
	if err != nil {
		return fmt.Errorf("open workspaces root: %w", err)
	}
	defer root.Close()
	if fi, err := root.Lstat(rel); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The directory itself was replaced by a link: remove nothing.
		return ErrOutsideRoot
	}
	if err := root.RemoveAll(rel); err != nil {
		if strings.Contains(err.Error(), "escapes") {
			return ErrOutsideRoot
		}
		return fmt.Errorf("delete project files: %w", err)
	}
	return nil
}

// CheckExisting verifies that a stored project directory still exists and
// still resolves to itself inside the root (nobody swapped in a symlink).
func (r Root) CheckExisting(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the project directory %s no longer exists; restore it or delete the workspace", path)
	}
	if err != nil {
		return fmt.Errorf("resolve project directory: %w", err)
	}
	if real != path || !r.Inside(real) {
		return ErrOutsideRoot
	}
	return nil
}
