package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// PGServer is a PostgreSQL server of the test's own, for tests that stop
// and restart the database under the app. The shared server
// (AICODE_TEST_POSTGRES_URL) is never touched.
type PGServer struct {
	URL  string
	bin  string
	data string
	port int
	cred *syscall.Credential
}

// StartPostgres initialises a cluster in a temporary directory and starts
// it on a free loopback port. It needs PostgreSQL's server binaries (the
// Debian package scripts/test-env.sh installs) and, when run as root, the
// postgres system user to run them as. The server stops with the test.
func StartPostgres(t testing.TB) *PGServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install the postgresql package; scripts/test-env.sh does)")
	}
	s := &PGServer{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "aicode-pg-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.data = filepath.Join(dir, "data")
	s.port = loopbackPort(t)
	if out, err := s.run("initdb", "-D", s.data, "-U", "aicode", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.URL = fmt.Sprintf("postgres://aicode@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.Start(t)
	t.Cleanup(func() { _, _ = s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop") })
	return s
}

func (s *PGServer) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = "/"
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// Start starts the server and waits until it accepts queries.
func (s *PGServer) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", s.port, filepath.Dir(s.data))
	if out, err := s.run("pg_ctl", "-D", s.data, "-o", opts, "-l", filepath.Join(filepath.Dir(s.data), "log"), "-w", "-t", "60", "start"); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	db, err := sql.Open("pgx", s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for db.PingContext(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("the test's PostgreSQL server does not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server at once, dropping every connection.
func (s *PGServer) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func loopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
