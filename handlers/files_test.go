package handlers_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aicode/services/store"
	"aicode/testutil"
)

type upFile struct {
	name string
	body io.Reader
}

// upload streams a multipart request as a browser's form would (the body
// is produced while it is sent, never whole in memory).
func upload(t *testing.T, c *testutil.Client, wsID, dir string, replace, csrfHeader bool, files ...upFile) testutil.Response {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		if replace {
			_ = mw.WriteField("replace", "1")
		}
		for _, f := range files {
			part, err := mw.CreateFormFile("files", f.name)
			if err == nil {
				_, err = io.Copy(part, f.body)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	u := c.Base + "/workspaces/" + wsID + "/files/upload?dir=" + url.QueryEscape(dir)
	if !csrfHeader {
		u += "&_csrf=" + url.QueryEscape(c.CSRF)
	}
	req, _ := http.NewRequest(http.MethodPost, u, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if csrfHeader {
		req.Header.Set("X-CSRF-Token", c.CSRF)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// The server answers a refused upload before reading all of it.
		t.Logf("upload: %v", err)
		return testutil.Response{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return testutil.Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = rng.Read(b)
	return b
}

func TestFileTransfer(t *testing.T) {
	s := testutil.StartServer(t, testutil.Options{Env: map[string]string{"AICODE_UPLOAD_MAX_MB": "4"}})
	c := testutil.Setup(t, s.URL, "admin", adminPW)
	c.CreateUser("mallory", adminPW, "member")
	c.CreateUser("reader", adminPW, "member")
	w := createWorkspace(t, s, c, url.Values{"name": {testutil.UniqueName("files")}})
	waitStatus(t, s, w.ID, store.StatusRunning, 30*time.Second)
	if err := os.MkdirAll(filepath.Join(w.ProjectPath, "sub/deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(w.ProjectPath, "etc-link")); err != nil {
		t.Fatal(err)
	}
	r := c.Get("/workspaces/" + w.ID + "/files")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `data-name="sub"`) || !strings.Contains(r.Body, `data-testid="upload-form"`) {
		t.Fatalf("files tab: %d", r.Status)
	}

	// Upload (token in the query, as the plain form sends it) and back.
	one := randomBytes(3<<20+123, 1)
	r = upload(t, c, w.ID, "sub", false, false, upFile{"data.bin", bytes.NewReader(one)}, upFile{"notes ü.txt", strings.NewReader("hello")})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/workspaces/"+w.ID+"/files?dir=sub" {
		t.Fatalf("upload: %d %s %s", r.Status, r.Header.Get("Location"), r.Body)
	}
	p := filepath.Join(w.ProjectPath, "sub/data.bin")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, one) {
		t.Fatalf("uploaded file differs (%d bytes, %v)", len(got), err)
	}
	fi, _ := os.Stat(p)
	if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 1000 || st.Gid != 1000) {
		t.Errorf("uploaded file owned by %d:%d, want the workspace user 1000:1000", st.Uid, st.Gid)
	}
	// The container (user 1000) can change it.
	if out := execWrite(t, rawDocker(t), w.ContainerID, "echo more >> '/workspace/sub/notes ü.txt' && cat '/workspace/sub/notes ü.txt'"); !strings.Contains(out, "hellomore") {
		t.Errorf("the workspace user cannot write the uploaded file: %q", out)
	}
	r = c.Get("/workspaces/" + w.ID + "/files?dir=sub")
	if !strings.Contains(r.Body, `data-name="data.bin"`) || !strings.Contains(r.Body, "3.0 MiB") {
		t.Errorf("listing of sub does not show the upload with its size")
	}
	resp, err := c.HTTP.Get(s.URL + "/workspaces/" + w.ID + "/files/download?path=sub/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(dl, one) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(dl))
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="data.bin"`) {
		t.Errorf("Content-Disposition %q", cd)
	}

	// No overwrite without the replace flag; with it (token in a header).
	r = upload(t, c, w.ID, "sub", false, true, upFile{"data.bin", strings.NewReader("other")})
	if r.Status != http.StatusConflict {
		t.Errorf("overwrite without replace: %d", r.Status)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, one) {
		t.Error("the file changed without replace")
	}
	r = upload(t, c, w.ID, "sub", true, true, upFile{"data.bin", strings.NewReader("other")})
	if r.Status != http.StatusSeeOther {
		t.Errorf("replace: %d %s", r.Status, r.Body)
	}
	if got, _ := os.ReadFile(p); string(got) != "other" {
		t.Errorf("after replace: %q", got)
	}

	// Past the limit: 413 with a message, nothing left behind.
	r = upload(t, c, w.ID, ".", false, true, upFile{"huge.bin", bytes.NewReader(randomBytes(6<<20, 2))})
	if r.Status != 0 && (r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.Body, "larger than the limit of 4 MiB")) {
		t.Errorf("over the limit: %d %s", r.Status, r.Body)
	}
	time.Sleep(200 * time.Millisecond)
	ents, _ := os.ReadDir(w.ProjectPath)
	for _, e := range ents {
		if e.Name() == "huge.bin" || strings.HasPrefix(e.Name(), ".aicode-upload-") {
			t.Errorf("%s left behind by a refused upload", e.Name())
		}
	}
	// Declared too large up front: refused before the body is read.
	base, _ := url.Parse(s.URL)
	conn, err := net.Dial("tcp", base.Host)
	if err != nil {
		t.Fatal(err)
	}
	var cookies []string
	for _, ck := range c.HTTP.Jar.Cookies(base) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	fmt.Fprintf(conn, "POST /workspaces/%s/files/upload?dir=. HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nX-CSRF-Token: %s\r\n"+
		"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n--x\r\n",
		w.ID, base.Host, strings.Join(cookies, "; "), c.CSRF, 100<<20)
	// The server reads the body's first few KiB before the handler runs.
	_, _ = conn.Write(bytes.Repeat([]byte("x"), 64<<10))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, _ := io.ReadAll(io.LimitReader(conn, 64<<10))
	conn.Close()
	if !strings.HasPrefix(string(head), "HTTP/1.1 413") || !strings.Contains(string(head), "larger than the limit") {
		t.Errorf("declared over the limit: %q", head)
	}
	if r := upload(t, c, w.ID, ".", false, true, upFile{"ok.txt", strings.NewReader("fine")}); r.Status != http.StatusSeeOther {
		t.Errorf("a small upload after a refused one: %d", r.Status)
	}

	// Path traversal and links out: 400, nothing written.
	for _, tc := range []struct{ dir, name string }{
		{"../..", "evil"}, {"sub/../../x", "evil"}, {"etc-link", "evil"}, {".", "../evil"}, {".", "..\\evil"}, {".", ".."},
	} {
		r := upload(t, c, w.ID, tc.dir, false, true, upFile{tc.name, strings.NewReader("x")})
		if r.Status != http.StatusBadRequest {
			t.Errorf("upload to %q as %q: %d %s", tc.dir, tc.name, r.Status, r.Body)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(w.ProjectPath), "evil")); err == nil {
		t.Error("a file was written outside the workspace")
	}
	for _, q := range []string{"download?path=../../etc/passwd", "download?path=etc-link/passwd", "download?path=%2Fetc%2Fpasswd", "archive?dir=..", "archive?dir=etc-link", "?dir=../"} {
		resp, err := c.HTTP.Get(s.URL + "/workspaces/" + w.ID + "/files/" + strings.TrimPrefix(q, "?"))
		if strings.HasPrefix(q, "?") {
			resp, err = c.HTTP.Get(s.URL + "/workspaces/" + w.ID + "/files" + q)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", q, resp.StatusCode)
		}
		if strings.Contains(string(b), "root:") {
			t.Errorf("GET %s leaked /etc/passwd", q)
		}
	}

	// A folder as a streamed tar.gz.
	resp, err = c.HTTP.Get(s.URL + "/workspaces/" + w.ID + "/files/archive?dir=sub")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="sub.tar.gz"`) {
		t.Fatalf("folder download: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names[h.Name] = string(b)
	}
	resp.Body.Close()
	if names["sub/data.bin"] != "other" || names["sub/notes ü.txt"] != "hello\nmore\n" && !strings.HasPrefix(names["sub/notes ü.txt"], "hellomore") {
		t.Errorf("archive entries: %v", keys(names))
	}
	if _, ok := names["sub/deeper/"]; !ok {
		t.Errorf("archive misses the nested folder: %v", keys(names))
	}

	// CSRF: an upload without a token is refused before it is read.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/workspaces/"+w.ID+"/files/upload", strings.NewReader("--x--"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	resp, err = c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("upload without CSRF token: %d", resp.StatusCode)
	}

	// Authorization: another member sees nothing; a read-only share reads
	// but cannot upload or restore.
	m := testutil.Login(t, s.URL, "mallory", adminPW)
	if r := m.Get("/workspaces/" + w.ID + "/files"); r.Status != http.StatusNotFound {
		t.Errorf("another user's files: %d", r.Status)
	}
	if r := upload(t, m, w.ID, ".", false, true, upFile{"x", strings.NewReader("x")}); r.Status != http.StatusNotFound {
		t.Errorf("upload into another user's workspace: %d", r.Status)
	}
	c.Get("/workspaces/" + w.ID)
	if r := c.Post("/workspaces/"+w.ID+"/shares", url.Values{"username": {"reader"}}, false); r.Status != http.StatusSeeOther {
		t.Fatalf("share: %d %s", r.Status, r.Body)
	}
	rd := testutil.Login(t, s.URL, "reader", adminPW)
	if r := rd.Get("/workspaces/" + w.ID + "/files?dir=sub"); r.Status != http.StatusOK || strings.Contains(r.Body, `data-testid="upload-form"`) {
		t.Errorf("read-only share's files tab: %d (upload form shown: %v)", r.Status, strings.Contains(r.Body, "upload-form"))
	}
	if r := upload(t, rd, w.ID, ".", false, true, upFile{"x", strings.NewReader("x")}); r.Status != http.StatusForbidden {
		t.Errorf("read-only share uploads: %d", r.Status)
	}
	n := store.Snapshot{WorkspaceID: w.ID, CreatedBy: w.OwnerID, Status: store.SnapshotReady, BlobKey: "snapshots/x/y.tar"}
	if err := s.App.Store.CreateSnapshot(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	rd.Get("/workspaces/" + w.ID + "/snapshots")
	for _, path := range []string{"/snapshots/" + n.ID + "/restore", "/snapshots/" + n.ID + "/delete", "/snapshots"} {
		if r := rd.Post("/workspaces/"+w.ID+path, url.Values{"mode": {"over"}, "confirm": {"yes"}}, false); r.Status != http.StatusForbidden {
			t.Errorf("read-only share POST %s: %d", path, r.Status)
		}
	}
	if r := m.Post("/workspaces/"+w.ID+"/snapshots/"+n.ID+"/restore", url.Values{"mode": {"over"}, "confirm": {"yes"}}, false); r.Status != http.StatusNotFound {
		t.Errorf("another user restores: %d", r.Status)
	}
	auditHas(t, s.App.Store, "files.upload", "ok")
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
