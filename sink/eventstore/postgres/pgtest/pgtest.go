// Package pgtest runs a throwaway PostgreSQL server for tests: initdb into a temporary directory
// and postgres on a free loopback port, started as a child of the test process (as the
// "postgres" or "nobody" user when the tests run as root, since PostgreSQL refuses root), with
// durability off for speed. Each test gets a database of its own (NewDatabase). Only tests
// import it.
//
// Binaries are looked up in $VIGIL_PG_BIN, `pg_config --bindir`, then /usr/lib/postgresql/*/bin
// (Debian's postgresql package). When none is installed (or $VIGIL_TEST_POSTGRES is "off") Start
// returns an error wrapping ErrUnavailable, and tests skip. With $VIGIL_TEST_POSTGRES_DSN set, that server is used instead
// (a role allowed to CREATE DATABASE).
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrUnavailable is wrapped by Start's error when no PostgreSQL server binaries are installed.
var ErrUnavailable = errors.New("pgtest: PostgreSQL server binaries not found (Debian: apt-get install postgresql; or set VIGIL_PG_BIN, or VIGIL_TEST_POSTGRES_DSN)")

// Server is a running PostgreSQL server.
type Server struct {
	// DSN connects to the server's maintenance database as a superuser.
	DSN string

	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logMu   sync.Mutex
	logTail []string
	dbs     atomic.Int64
}

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	if os.Getenv("VIGIL_TEST_POSTGRES") == "off" {
		return "", fmt.Errorf("%w (VIGIL_TEST_POSTGRES=off)", ErrUnavailable)
	}
	var candidates []string
	if d := os.Getenv("VIGIL_PG_BIN"); d != "" {
		candidates = append(candidates, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return verOf(b) - verOf(a) }) // newest first
	candidates = append(candidates, versions...)
	return findBin(candidates)
}

// findBin returns the first of dirs holding initdb and postgres executables.
func findBin(dirs []string) (string, error) {
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrUnavailable
}

func verOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// runAs returns the credential to run the server with: nil when not root, else the postgres
// (or nobody) user's.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil && uid != 0 {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("pgtest: running as root and no postgres or nobody user to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a server (or, with $VIGIL_TEST_POSTGRES_DSN, checks that server) and returns
// once it accepts connections. Stop it when done.
func Start(ctx context.Context) (*Server, error) {
	if dsn := os.Getenv("VIGIL_TEST_POSTGRES_DSN"); dsn != "" {
		s := &Server{DSN: dsn}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("pgtest: VIGIL_TEST_POSTGRES_DSN: %w", err)
		}
		_ = conn.Close(ctx)
		return s, nil
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "vigil", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Env = []string{"LANG=C", "LC_ALL=C", "PATH=" + os.Getenv("PATH")}
	initdb.Dir = dir
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w: %s", err, lastLines(string(out), 5))
	}
	var lastErr error
	for range 3 { // a free port can be taken between freePort and postgres binding it
		port, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if lastErr = s.run(ctx, bin, data, port, cred); lastErr == nil {
			s.DSN = fmt.Sprintf("postgres://vigil@127.0.0.1:%d/postgres?sslmode=disable", port)
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// run starts postgres and waits until it is ready or has exited.
func (s *Server) run(ctx context.Context, bin, data string, port int, cred *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=100", "-c", "shared_buffers=32MB", "-c", "logging_collector=off")
	cmd.Env = []string{"LANG=C", "LC_ALL=C"}
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr(cred)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	go func() { // owned by the server process: ends when its stderr closes, before Wait returns
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.logTail = append(s.logTail, line)
			if len(s.logTail) > 20 {
				s.logTail = s.logTail[1:]
			}
			s.logMu.Unlock()
			if strings.Contains(line, "ready to accept connections") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
		s.cmd, s.exited = cmd, exited
		return nil
	case <-exited:
		return fmt.Errorf("pgtest: postgres exited: %s", s.tail())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("pgtest: postgres not ready: %w: %s", ctx.Err(), s.tail())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("pgtest: postgres not ready after 60s: %s", s.tail())
	}
}

func (s *Server) tail() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return strings.Join(s.logTail, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// NewDatabase creates an empty database for t and returns its DSN; the database is dropped when
// t ends (register it before anything that must close its connections first).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("vigil_test_%d_%d", os.Getpid(), s.dbs.Add(1))
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User,
		net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), name) + password(cfg.Password)
}

func password(p string) string {
	if p == "" {
		return ""
	}
	return "&password=" + p
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown, then kill after 10 s), waits for it and removes its
// directory. A server from $VIGIL_TEST_POSTGRES_DSN is left running.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return os.RemoveAll(s.dir)
}
