// Package files lets people browse a workspace's project directory, upload
// files into it and download files or folders. Every path goes through an
// os.Root opened on the project directory, so neither ".." nor a symlink
// can reach anything outside it; uploads stream to disk and are handed to
// the workspace user.
package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"aicode/services/archive"
	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/store"
	"aicode/services/workspace"
)

// Who may do what: the files show as much as a shell in the workspace, so
// reading them is watching a terminal and writing them is typing into one.
const (
	ActView  = auth.ActTerminalView
	ActWrite = auth.ActTerminalWrite
)

// Errors callers match with errors.Is.
var (
	ErrBadPath  = errors.New("invalid path")
	ErrNotFound = errors.New("no such file or folder")
	ErrExists   = errors.New("a file with this name exists already; tick \"Replace\" to overwrite it")
	ErrTooLarge = errors.New("the upload is larger than the limit")
	ErrNotDir   = errors.New("not a folder")
	ErrNotFile  = errors.New("not a file")
)

// Workspaces is what the service needs from the workspace service.
type Workspaces interface {
	GetWithAccess(ctx context.Context, p auth.Principal, id string) (store.Workspace, auth.Access, error)
}

// Service browses and transfers workspace files.
type Service struct {
	ws    Workspaces
	audit *audit.Recorder
	log   *slog.Logger
	// uid and gid own uploaded files (when the app runs as root); -1: leave.
	uid, gid int
}

// New wires the service; user is the workspace user "uid:gid".
func New(ws Workspaces, rec *audit.Recorder, log *slog.Logger, user string) *Service {
	uid, gid := workspace.ParseUser(user)
	return &Service{ws: ws, audit: rec, log: log, uid: uid, gid: gid}
}

// CleanDir validates a path inside the workspace as typed in a URL and
// returns it slash-separated ("." for the top).
func CleanDir(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == "/" || p == "." {
		return ".", nil
	}
	if len(p) > 4096 || !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: the path is too long or has invalid characters", ErrBadPath)
	}
	p = strings.TrimPrefix(p, "/")
	var out []string
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf(`%w: ".." is not allowed`, ErrBadPath)
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// CheckName validates the name of a file to create.
func CheckName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: give the file a name", ErrBadPath)
	case len(name) > 255:
		return fmt.Errorf("%w: the file name is longer than 255 bytes", ErrBadPath)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: the file name is not valid UTF-8", ErrBadPath)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%w: the file name may not contain / or \\", ErrBadPath)
	case strings.HasPrefix(name, ".aicode-upload-"):
		return fmt.Errorf("%w: that name is reserved", ErrBadPath)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: the file name contains a control character", ErrBadPath)
		}
	}
	return nil
}

// Entry is one item of a folder listing.
type Entry struct {
	Name    string
	Dir     bool
	Link    bool
	Target  string // a link's target
	Size    int64
	ModTime time.Time
	Mode    fs.FileMode
}

// Listing is a folder's content.
type Listing struct {
	Workspace store.Workspace
	Access    auth.Access
	Dir       string // "." for the top
	Entries   []Entry
	// Truncated: the folder holds more than MaxEntries entries.
	Truncated bool
}

// MaxEntries bounds a listing.
const MaxEntries = 5000

// open authorizes p and opens the workspace's project directory.
func (s *Service) open(ctx context.Context, p auth.Principal, wsID string, act auth.Action) (store.Workspace, auth.Access, *os.Root, error) {
	w, acc, err := s.ws.GetWithAccess(ctx, p, wsID)
	if err != nil {
		return w, acc, nil, err
	}
	if !auth.AllowedOn(p, act, acc) {
		return w, acc, nil, auth.ErrForbidden
	}
	root, err := os.OpenRoot(w.ProjectPath)
	if err != nil {
		return w, acc, nil, fmt.Errorf("open the project directory: %w", err)
	}
	return w, acc, root, nil
}

func pathError(err error, what string) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	case strings.Contains(err.Error(), "path escapes from parent"):
		return fmt.Errorf("%w: %s leads outside the workspace", ErrBadPath, what)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %s", ErrNotDir, what)
	}
	return err
}

// List returns a folder's entries, folders first, then by name.
func (s *Service) List(ctx context.Context, p auth.Principal, wsID, dir string) (Listing, error) {
	w, acc, root, err := s.open(ctx, p, wsID, ActView)
	if err != nil {
		return Listing{}, err
	}
	defer root.Close()
	dir, err = CleanDir(dir)
	if err != nil {
		return Listing{}, err
	}
	f, err := root.Open(dir)
	if err != nil {
		return Listing{}, pathError(err, dir)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return Listing{}, err
	} else if !fi.IsDir() {
		return Listing{}, fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	ents, err := f.ReadDir(MaxEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return Listing{}, fmt.Errorf("read %s: %w", dir, err)
	}
	l := Listing{Workspace: w, Access: acc, Dir: dir}
	if len(ents) > MaxEntries {
		ents, l.Truncated = ents[:MaxEntries], true
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		en := Entry{Name: e.Name(), Dir: fi.IsDir(), Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			en.Link = true
			rel := e.Name()
			if dir != "." {
				rel = dir + "/" + e.Name()
			}
			en.Target, _ = root.Readlink(rel)
			// A link to a folder inside the workspace browses like one.
			if st, err := root.Stat(rel); err == nil && st.IsDir() {
				en.Dir = true
			}
		}
		l.Entries = append(l.Entries, en)
	}
	slices.SortFunc(l.Entries, func(a, b Entry) int {
		if a.Dir != b.Dir {
			if a.Dir {
				return -1
			}
			return 1
		}
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return l, nil
}

// Open opens a file for download. The caller closes it.
func (s *Service) Open(ctx context.Context, p auth.Principal, wsID, file string) (*os.File, fs.FileInfo, error) {
	w, _, root, err := s.open(ctx, p, wsID, ActView)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	file, err = CleanDir(file)
	if err != nil {
		return nil, nil, err
	}
	if file == "." {
		return nil, nil, fmt.Errorf("%w: choose a file", ErrNotFile)
	}
	f, err := root.Open(file)
	if err != nil {
		return nil, nil, pathError(err, file)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFile, file)
	}
	s.record(ctx, p, "files.download", w.ID, audit.ResultOK, "file="+file)
	return f, fi, nil
}

// WriteFolder streams a folder of the workspace as a gzipped tar to out,
// its entries under the folder's name.
func (s *Service) WriteFolder(ctx context.Context, p auth.Principal, wsID, dir string, out io.Writer) (archive.Stats, error) {
	w, _, root, err := s.open(ctx, p, wsID, ActView)
	if err != nil {
		return archive.Stats{}, err
	}
	defer root.Close()
	if dir, err = CleanDir(dir); err != nil {
		return archive.Stats{}, err
	}
	sub := root
	if dir != "." {
		if sub, err = root.OpenRoot(dir); err != nil {
			return archive.Stats{}, pathError(err, dir)
		}
		defer sub.Close()
	}
	st, err := archive.Write(ctx, out, sub, archive.WriteOptions{Gzip: true, Prefix: FolderName(w, dir) + "/"})
	result := audit.ResultOK
	detail := "folder=" + dir
	if err != nil {
		result, detail = audit.ResultError, detail+": "+err.Error()
	}
	s.record(context.WithoutCancel(ctx), p, "files.download", w.ID, result, detail)
	return st, err
}

// CheckFolder verifies, before a download starts streaming, that p may
// read the folder and that it is one; it returns the name the download
// gets and the cleaned folder path.
func (s *Service) CheckFolder(ctx context.Context, p auth.Principal, wsID, dir string) (string, string, error) {
	w, _, root, err := s.open(ctx, p, wsID, ActView)
	if err != nil {
		return "", "", err
	}
	defer root.Close()
	dir, err = CleanDir(dir)
	if err != nil {
		return "", "", err
	}
	fi, err := root.Stat(dir)
	if err != nil {
		return "", "", pathError(err, dir)
	}
	if !fi.IsDir() {
		return "", "", fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	return FolderName(w, dir), dir, nil
}

// FolderName is the name a downloaded folder gets.
func FolderName(w store.Workspace, dir string) string {
	if dir == "." || dir == "" {
		return w.Name
	}
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		return dir[i+1:]
	}
	return dir
}

// Upload is one file being uploaded.
type Upload struct {
	Dir     string
	Name    string
	Replace bool
	// Limit is how many bytes the file may still have.
	Limit int64
}

// Target checks that p may write into the folder and returns its cleaned
// path; handlers call it before reading the request body.
func (s *Service) Target(ctx context.Context, p auth.Principal, wsID, dir string) (string, error) {
	_, _, root, err := s.open(ctx, p, wsID, ActWrite)
	if err != nil {
		return "", err
	}
	defer root.Close()
	dir, err = CleanDir(dir)
	if err != nil {
		return "", err
	}
	fi, err := root.Stat(dir)
	if err != nil {
		return "", pathError(err, dir)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	return dir, nil
}

// Save streams r into a new file: first a temporary file in the same
// folder, then, once complete, renamed into place (or, without Replace,
// linked, which fails if the name was taken meanwhile). A file past the
// limit is removed and ErrTooLarge returned. The file is given to the
// workspace user.
func (s *Service) Save(ctx context.Context, p auth.Principal, wsID string, up Upload, r io.Reader) (int64, error) {
	w, _, root, err := s.open(ctx, p, wsID, ActWrite)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	dir, err := CleanDir(up.Dir)
	if err != nil {
		return 0, err
	}
	if err := CheckName(up.Name); err != nil {
		return 0, err
	}
	rel := up.Name
	if dir != "." {
		rel = dir + "/" + up.Name
	}
	fi, err := root.Lstat(rel)
	switch {
	case err == nil && fi.IsDir():
		return 0, fmt.Errorf("%w: a folder called %q is there", ErrExists, up.Name)
	case err == nil && !up.Replace:
		return 0, ErrExists
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return 0, pathError(err, rel)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := ".aicode-upload-" + hex.EncodeToString(rnd[:])
	if dir != "." {
		tmp = dir + "/" + tmp
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return 0, pathError(err, dir)
	}
	done := false
	defer func() {
		if !done {
			_ = root.Remove(tmp)
		}
	}()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(f, io.LimitReader(r, up.Limit+1), buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("receive %s: %w", up.Name, err)
	}
	if n > up.Limit {
		return n, ErrTooLarge
	}
	if s.uid >= 0 && os.Geteuid() == 0 {
		if err := root.Lchown(tmp, s.uid, s.gid); err != nil {
			return n, fmt.Errorf("hand %s to the workspace user: %w", up.Name, err)
		}
	}
	if up.Replace {
		err = root.Rename(tmp, rel)
	} else {
		if err = root.Link(tmp, rel); err == nil {
			_ = root.Remove(tmp)
		} else if errors.Is(err, fs.ErrExist) {
			err = ErrExists
		}
	}
	if err != nil {
		return n, err
	}
	done = true
	s.record(ctx, p, "files.upload", w.ID, audit.ResultOK, "file="+rel+" bytes="+strconv.FormatInt(n, 10))
	return n, nil
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
